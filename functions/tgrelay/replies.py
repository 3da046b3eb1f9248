"""The agent's answer: checked against the contract (README: Agent server contract), and
turned into the sendMessage calls that deliver it.

CallAgent keeps what it passes on small (it travels in the execution's state):
    {"text": first message, "parse_mode": ..., "more_messages": [...]?, "buttons": [[...]]?}
SendReply turns that into one flat list of messages: each message of the reply split into
Telegram-sized chunks, the user's message quoted by the first one (in groups), the inline
keyboard on the last one. The list is the same on every attempt, so SendReply's count of
chunks already sent resumes it.
"""

import json
from typing import Any

from tgrelay.errors import AgentBadResponse
from tgrelay.text import split_message

PARSE_MODES = ("HTML", "MarkdownV2", "Markdown")
# Keeps the execution's state small (Step Functions caps it at 256 KiB); 8 Telegram messages.
MAX_REPLY_CHARS = 8 * 4096
# Separate messages one answer may ask for (Telegram allows about one message a second per chat).
MAX_MESSAGES = 10
# Bot API: callback_data is 1-64 bytes; we keep a keyboard to 100 buttons.
MAX_BUTTONS = 100
MAX_CALLBACK_DATA_BYTES = 64
MAX_URL_CHARS = 2048
MAX_BUTTON_TEXT_CHARS = 256
# Step Functions fails an execution whose state passes 256 KiB, and no Catch can take it
# (States.DataLimitExceeded): a reply bigger than this is refused while it can still be named.
MAX_REPLY_BYTES = 150_000
URL_SCHEMES = ("https://", "http://", "tg://")
GROUP_CHATS = ("group", "supergroup")


def reply_from_agent(body: Any, empty_text: str) -> dict:
    """The agent's JSON answer as the reply CallAgent passes on; AgentBadResponse if it breaks the contract.

    `reply` and each of `messages` are sent in that order; blank ones are left out, and if
    nothing is left `empty_text` is sent (Telegram refuses empty messages).
    """
    if not isinstance(body, dict):
        raise AgentBadResponse("agent reply is not a JSON object")
    reply = body.get("reply")
    if reply is not None and not isinstance(reply, str):
        raise AgentBadResponse('agent reply has a "reply" that is not a string')
    parse_mode = body.get("parse_mode")
    if parse_mode is not None and parse_mode not in PARSE_MODES:
        raise AgentBadResponse(f"agent reply has unknown parse_mode {parse_mode!r}")
    messages = _messages(body.get("messages"))
    buttons = _buttons(body.get("buttons"))

    texts = _within_budget([text for text in [reply or "", *messages] if text.strip()])
    if not texts:
        # The user still gets an answer; the agent's formatting does not apply to ours.
        texts, parse_mode = [empty_text], None
    result: dict = {"text": texts[0], "parse_mode": parse_mode}
    if len(texts) > 1:
        result["more_messages"] = texts[1:]
    if buttons:
        result["buttons"] = buttons
    size = len(json.dumps(result).encode())
    if size > MAX_REPLY_BYTES:
        raise AgentBadResponse(f"agent reply is {size} bytes as JSON; at most {MAX_REPLY_BYTES}")
    return result


def _messages(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AgentBadResponse('agent reply has "messages" that is not a list of strings')
    if len(value) > MAX_MESSAGES:
        raise AgentBadResponse(f"agent reply has {len(value)} messages; at most {MAX_MESSAGES}")
    return value


def _buttons(value: Any) -> list[list[dict]]:
    """An inline keyboard: rows of buttons, each a text and exactly one of callback_data / url."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(row, list) and row for row in value):
        raise AgentBadResponse('agent reply has "buttons" that is not a list of non-empty rows')
    count = sum(len(row) for row in value)
    if count > MAX_BUTTONS:
        raise AgentBadResponse(f"agent reply has {count} buttons; at most {MAX_BUTTONS}")
    return [[_button(button, f"buttons[{r}][{c}]") for c, button in enumerate(row)] for r, row in enumerate(value)]


def _button(button: Any, where: str) -> dict:
    if not isinstance(button, dict):
        raise AgentBadResponse(f"agent reply: {where} is not an object")
    text = button.get("text")
    if not isinstance(text, str) or not text.strip():
        raise AgentBadResponse(f"agent reply: {where} has no text")
    if len(text) > MAX_BUTTON_TEXT_CHARS:
        raise AgentBadResponse(f"agent reply: {where}.text is longer than {MAX_BUTTON_TEXT_CHARS} characters")
    actions = set(button) - {"text"}
    if actions not in ({"callback_data"}, {"url"}):
        raise AgentBadResponse(f"agent reply: {where} needs exactly one of callback_data and url: {sorted(actions)}")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8", "surrogatepass")) <= MAX_CALLBACK_DATA_BYTES:
            raise AgentBadResponse(f"agent reply: {where}.callback_data is not 1-{MAX_CALLBACK_DATA_BYTES} bytes")
        return {"text": text, "callback_data": data}
    url = button["url"]
    if not isinstance(url, str) or not url.startswith(URL_SCHEMES) or len(url) > MAX_URL_CHARS:
        raise AgentBadResponse(f"agent reply: {where}.url is not an http(s) or tg URL of at most {MAX_URL_CHARS}")
    return {"text": text, "url": url}


def _within_budget(texts: list[str]) -> list[str]:
    """The texts cut to MAX_REPLY_CHARS in all: the one that crosses it ends with "…", later ones are left out."""
    kept, left = [], MAX_REPLY_CHARS
    for text in texts:
        if len(text) <= left:
            kept.append(text)
            left -= len(text)
            continue
        if left > 1:
            kept.append(text[: left - 1] + "…")
        break
    return kept


def outgoing_messages(update: dict, reply: dict) -> list[dict]:
    """The sendMessage payloads that deliver `reply` to the chat of `update`, in order."""
    texts = [reply["text"], *reply.get("more_messages", [])]
    chunks = [chunk for text in texts for chunk in split_message(text)]
    payloads = []
    for chunk in chunks:
        payload = {"chat_id": update["chat_id"], "text": chunk}
        if update.get("thread_id") is not None:
            payload["message_thread_id"] = update["thread_id"]
        if reply.get("parse_mode"):
            payload["parse_mode"] = reply["parse_mode"]
        payloads.append(payload)
    if payloads and quotes_the_user(update):
        # Sent even if the user's message is gone by now.
        payloads[0]["reply_parameters"] = {"message_id": update["message_id"], "allow_sending_without_reply": True}
    if payloads and reply.get("buttons"):
        payloads[-1]["reply_markup"] = {"inline_keyboard": reply["buttons"]}
    return payloads


def quotes_the_user(update: dict) -> bool:
    """In groups the answer quotes the message it answers, so threads stay readable. In a private
    chat the answer follows the question anyway; a button press has no message of the user's."""
    return update.get("chat_type") in GROUP_CHATS and update.get("kind") != "callback_query"
