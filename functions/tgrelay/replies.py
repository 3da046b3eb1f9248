"""The agent's answer: checked against the contract (README: Agent server contract), rendered
to what Telegram shows, and turned into the sendMessage calls that deliver it.

CallAgent renders each message of the answer (formatting.render: plain text + MessageEntity
list) and passes on, in the execution's state:
    {"text": first message, "entities": [...]?, "more_messages": [{"text", "entities"?}]?, "buttons": [[...]]?}
SendReply turns that into one flat list of messages: each message split into Telegram-sized
chunks with their own entities, the user's message quoted by the first one (in groups), the
inline keyboard on the last one. The list is the same on every attempt, so SendReply's count of
chunks already sent resumes it.
"""

import json
from typing import Any

from aws_lambda_powertools import Logger

from tgrelay.errors import AgentBadResponse
from tgrelay.formatting import PARSE_MODE_FORMATS, EntityParseError, render
from tgrelay.shapes import Envelope
from tgrelay.telegram_limits import CALLBACK_DATA_BYTES, MESSAGE_TEXT_UNITS
from tgrelay.text import cut_entities, split_entities, split_message, utf16_len

logger = Logger(child=True)

# Values of the contract's `format` (matched case-insensitively): standard Markdown, Telegram's
# HTML and MarkdownV2, plain text. `parse_mode` takes Telegram's own values (PARSE_MODE_FORMATS).
FORMAT_VALUES = {"markdown": "markdown", "html": "html", "markdownv2": "markdownv2", "text": "text"}
# The whole answer's visible text (after rendering), in UTF-16 units as Telegram counts: 8
# Telegram messages. Past it the answer is cut and says so (CUT_NOTE).
MAX_REPLY_UNITS = 8 * MESSAGE_TEXT_UNITS
CUT_NOTE = "…\n\n[The rest of this answer was cut: it is too long to send.]"
# Separate messages one answer may ask for besides `reply` (Telegram allows about one message a
# second per chat); more are left out, and the last one sent ends with CUT_NOTE.
MAX_MESSAGES = 10
# We keep a keyboard to 100 buttons; callback_data is Telegram's 1-64 bytes.
MAX_BUTTONS = 100
MAX_CALLBACK_DATA_BYTES = CALLBACK_DATA_BYTES
MAX_URL_CHARS = 2048
MAX_BUTTON_TEXT_CHARS = 256
# Step Functions fails an execution whose state passes 256 KiB of UTF-8 text, and no Catch can
# take it (States.DataLimitExceeded): the reply as CallAgent returns it stays within this many
# UTF-8 bytes of JSON (state_bytes), cut further (with CUT_NOTE) if its entities or its
# characters make it bigger. The rest of the 256 KiB is the envelope's (turns.MAX_TURN_TEXT_BYTES).
MAX_REPLY_BYTES = 150_000
URL_SCHEMES = ("https://", "http://", "tg://")
GROUP_CHATS = ("group", "supergroup")


def reply_from_agent(body: Any, empty_text: str) -> dict:
    """The agent's JSON answer as the reply CallAgent passes on (shape: module docstring);
    AgentBadResponse naming the field if it breaks the contract.

    `reply` and each of `messages` are rendered in the answer's format and sent in that
    order; blank ones are left out, and if nothing is left `empty_text` is sent (Telegram
    refuses empty messages). A message whose markup Telegram could not parse either is sent
    as the agent wrote it, as plain text (what Telegram's own fallback showed). An answer
    longer than MAX_REPLY_UNITS (or MAX_REPLY_BYTES as state), or of more than 1 + MAX_MESSAGES
    messages, is cut and ends with CUT_NOTE.
    """
    if not isinstance(body, dict):
        raise AgentBadResponse("agent reply is not a JSON object")
    reply = body.get("reply")
    if reply is not None and not isinstance(reply, str):
        raise AgentBadResponse('agent reply has a "reply" that is not a string')
    fmt = answer_format(body)
    messages = _messages(body.get("messages"))
    buttons = _buttons(body.get("buttons"))

    rendered = [_rendered(text, fmt) for text in [reply or "", *messages] if text.strip()]
    rendered = [message for message in rendered if message[0].strip()]
    if not rendered:
        # The user still gets an answer; the agent's formatting does not apply to ours.
        rendered = [(empty_text, [])]
    budget = MAX_REPLY_UNITS
    while True:
        result = _reply_state(_within_budget(rendered, budget), buttons)
        size = state_bytes(result)
        if size <= MAX_REPLY_BYTES:
            return result
        if budget == 0:
            raise AgentBadResponse(f'agent reply\'s "buttons" take {size} bytes as JSON; at most {MAX_REPLY_BYTES}')
        # Cut in proportion to the excess; the loop ends as the budget shrinks every round.
        budget = max(0, min(budget - 1, budget * MAX_REPLY_BYTES // size))


def answer_format(body: dict) -> str:
    """The answer's format (one of formatting.FORMATS) from `format` or `parse_mode`; plain text
    without either. `parse_mode` is matched as the Bot API matches it: case-insensitively, with
    "none" and "" for no formatting (telegram-bot-api Client::get_formatted_text)."""
    given = {}
    for field, values in (("format", FORMAT_VALUES), ("parse_mode", PARSE_MODE_FORMATS)):
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, str) or value.lower() not in values:
            allowed = ", ".join(repr(name) for name in values if name)
            raise AgentBadResponse(f"agent reply has {field} {value!r}; it is one of {allowed} (any case) or null")
        given[field] = values[value.lower()]
    if len(set(given.values())) > 1:
        raise AgentBadResponse(
            f"agent reply has format {body['format']!r} and parse_mode {body['parse_mode']!r}: give one of them"
        )
    return next(iter(given.values()), "text")


def _rendered(text: str, fmt: str) -> tuple[str, list[dict]]:
    try:
        return render(text, fmt)
    except EntityParseError as error:
        logger.warning("formatting does not parse, sent as plain text", extra={"format": fmt, "reason": str(error)})
        return text, []


def state_bytes(value: Any) -> int:
    """Size of `value` as Step Functions counts state: UTF-8 bytes of its JSON (non-ASCII
    characters as themselves, not as 6-byte \\u escapes)."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _reply_state(messages: list[tuple[str, list[dict]]], buttons: list[list[dict]]) -> dict:
    """The reply as CallAgent returns it (shape: module docstring)."""
    (text, entities), *more = messages
    result: dict = {"text": text}
    if entities:
        result["entities"] = entities
    if more:
        result["more_messages"] = [{"text": t, "entities": e} if e else {"text": t} for t, e in more]
    if buttons:
        result["buttons"] = buttons
    return result


def _messages(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AgentBadResponse('agent reply has "messages" that is not a list of strings')
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


def _within_budget(messages: list[tuple[str, list[dict]]], budget: int) -> list[tuple[str, list[dict]]]:
    """The rendered messages cut to `budget` UTF-16 units in all and to 1 + MAX_MESSAGES messages:
    the one that crosses the budget is cut there and ends with CUT_NOTE, later ones are left out
    (the note then ends the last one kept)."""
    kept: list[tuple[str, list[dict]]] = []
    left = budget
    for index, (text, entities) in enumerate(messages):
        size = utf16_len(text)
        if size <= left and index <= MAX_MESSAGES:
            kept.append((text, entities))
            left -= size
            continue
        if index <= MAX_MESSAGES and (left > 0 or not kept):
            kept.append(cut_entities(text, entities, left))
        text, entities = kept[-1]
        kept[-1] = (text + CUT_NOTE, entities)
        break
    return kept


def outgoing_messages(update: Envelope, reply: dict) -> list[dict]:
    """The sendMessage payloads that deliver `reply` (CallAgent's shape) to the chat of `update`, in order."""
    chunks = [
        chunk
        for text, entities in _reply_messages(reply)
        for chunk in (split_entities(text, entities) if entities else [(c, []) for c in split_message(text)])
    ]
    payloads = []
    for text, entities in chunks:
        payload: dict = {"chat_id": update["chat_id"], "text": text}
        if update.get("thread_id") is not None:
            payload["message_thread_id"] = update["thread_id"]
        if entities:
            payload["entities"] = entities
        payloads.append(payload)
    if payloads and quotes_the_user(update):
        # Sent even if the user's message is gone by now.
        payloads[0]["reply_parameters"] = {"message_id": update["message_id"], "allow_sending_without_reply": True}
    if payloads and reply.get("buttons"):
        payloads[-1]["reply_markup"] = {"inline_keyboard": reply["buttons"]}
    return payloads


def _reply_messages(reply: dict) -> list[tuple[str, list[dict]]]:
    """Each message of `reply` as (text, entities). A reply of an execution that CallAgent
    answered before replies were rendered ({"text", "parse_mode", "more_messages": [str]}) is
    rendered here."""
    more = [{"text": message} if isinstance(message, str) else message for message in reply.get("more_messages", [])]
    messages: list[dict[str, Any]] = [{"text": reply["text"], "entities": reply.get("entities", [])}, *more]
    parse_mode = reply.get("parse_mode")
    if isinstance(parse_mode, str) and parse_mode.lower() in PARSE_MODE_FORMATS:
        fmt = PARSE_MODE_FORMATS[parse_mode.lower()]
        return [_rendered(message["text"], fmt) for message in messages]
    return [(message["text"], message.get("entities", [])) for message in messages]


def quotes_the_user(update: Envelope) -> bool:
    """In groups the answer quotes the message it answers, so threads stay readable. In a private
    chat the answer follows the question anyway; a button press has no message of the user's."""
    return update.get("chat_type") in GROUP_CHATS and update.get("kind") != "callback_query"
