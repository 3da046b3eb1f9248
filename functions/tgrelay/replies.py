"""The agent's answer: checked against the contract (README: Agent server contract), rendered
to what Telegram shows, and turned into the sendMessage calls that deliver it.

CallAgent renders each message of the answer (formatting.render: plain text + MessageEntity
list) and passes on, in the execution's state:
    {"text": first message, "entities": [...]?, "more_messages": [{"text", "entities"?}]?, "buttons": [[...]]?,
     "attachments": [{"kind", "url", "file_name"?, "caption"?, "caption_entities"?, "agent_origin", "private_hosts"}]?}
(agent_origin: the URL is under AgentFilesUrl, the agent token goes along; private_hosts: the
agent server is on a loopback or private address, so its files may be; agent.marked_origins.)
("text" is "" when the answer is files only.) SendReply turns that into one flat list of Bot API
calls (`deliveries`): each message split into Telegram-sized chunks with their own entities, then
one send* call per attachment; the user's message quoted by the first call (in groups), the
inline keyboard on the last message (on the last file when there is no text). The list is the
same on every attempt, so SendReply's count of items already sent resumes it.
"""

import json
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from tgrelay.errors import AgentBadResponse
from tgrelay.formatting import PARSE_MODE_FORMATS, EntityParseError, render
from tgrelay.shapes import Envelope
from tgrelay.telegram_limits import CALLBACK_DATA_BYTES, CAPTION_UNITS, MESSAGE_TEXT_UNITS
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
# We keep a keyboard to 100 buttons (callback_data: telegram_limits.CALLBACK_DATA_BYTES).
MAX_BUTTONS = 100
MAX_URL_CHARS = 2048
MAX_BUTTON_TEXT_CHARS = 256
# Step Functions fails an execution whose state passes 256 KiB of UTF-8 text, and no Catch can
# take it (States.DataLimitExceeded): the reply as CallAgent returns it stays within this many
# UTF-8 bytes of JSON (state_bytes), cut further (with CUT_NOTE) if its entities or its
# characters make it bigger. The rest of the 256 KiB is the envelope's (turns.MAX_TURN_TEXT_BYTES).
MAX_REPLY_BYTES = 150_000
URL_SCHEMES = ("https://", "http://", "tg://")
# Files one answer may carry (`attachments`); Telegram allows about one message a second per chat.
MAX_ATTACHMENTS = 10
# The answer's file kinds and the Bot API method that sends each; the multipart part is named
# after the kind (sendPhoto's `photo`, sendDocument's `document`, ...).
SEND_METHODS = {
    "photo": "sendPhoto",
    "document": "sendDocument",
    "voice": "sendVoice",
    "audio": "sendAudio",
    "video": "sendVideo",
    "animation": "sendAnimation",
}
# A caption's length, in UTF-16 units as Telegram counts text (telegram_limits).
MAX_CAPTION_UNITS = CAPTION_UNITS
# Ours: a file name Telegram shows under a document; most file systems stop at 255.
MAX_FILE_NAME_CHARS = 255
ATTACHMENT_FIELDS = ("kind", "url", "caption", "file_name")
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
    files = _attachments(body.get("attachments"), fmt)

    rendered = [_rendered(text, fmt) for text in [reply or "", *messages] if text.strip()]
    rendered = [message for message in rendered if message[0].strip()]
    if not rendered and not files:
        # The user still gets an answer; the agent's formatting does not apply to ours.
        rendered = [(empty_text, [])]
    budget = MAX_REPLY_UNITS
    while True:
        result = _reply_state(_within_budget(rendered, budget) if rendered else [], buttons, files)
        size = state_bytes(result)
        if size <= MAX_REPLY_BYTES:
            return result
        if budget == 0:
            fields = " and ".join(
                f'"{name}"' for name, value in (("buttons", buttons), ("attachments", files)) if value
            )
            raise AgentBadResponse(f"agent reply's {fields} take {size} bytes as JSON; at most {MAX_REPLY_BYTES}")
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


def _reply_state(messages: list[tuple[str, list[dict]]], buttons: list[list[dict]], files: list[dict]) -> dict:
    """The reply as CallAgent returns it (shape: module docstring)."""
    (text, entities), *more = messages or [("", [])]
    result: dict = {"text": text}
    if entities:
        result["entities"] = entities
    if more:
        result["more_messages"] = [{"text": t, "entities": e} if e else {"text": t} for t, e in more]
    if buttons:
        result["buttons"] = buttons
    if files:
        result["attachments"] = files
    return result


def _attachments(value: Any, fmt: str) -> list[dict]:
    """The answer's files: at most MAX_ATTACHMENTS, each {"kind": one of SEND_METHODS, "url": an
    http(s) URL of at most MAX_URL_CHARS, "caption"?: text in the answer's format (cut
    to MAX_CAPTION_UNITS once rendered, ending with CUT_NOTE), "file_name"?: 1-MAX_FILE_NAME_CHARS characters}, as
    {"kind", "url", "file_name"?, "caption"?, "caption_entities"?} (without a file_name SendReply
    names the file after its URL: reply_files.file_name_for). AgentBadResponse naming the field
    otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise AgentBadResponse('agent reply has "attachments" that is not a list')
    if len(value) > MAX_ATTACHMENTS:
        raise AgentBadResponse(f"agent reply has {len(value)} attachments; at most {MAX_ATTACHMENTS}")
    return [_attachment(file, f"attachments[{index}]", fmt) for index, file in enumerate(value)]


def _attachment(file: Any, where: str, fmt: str) -> dict:
    if not isinstance(file, dict):
        raise AgentBadResponse(f"agent reply: {where} is not an object")
    unknown = sorted(set(file) - set(ATTACHMENT_FIELDS))
    if unknown:
        raise AgentBadResponse(f"agent reply: {where} has unknown fields {unknown}; it has {list(ATTACHMENT_FIELDS)}")
    kind = file.get("kind")
    if kind not in SEND_METHODS:
        raise AgentBadResponse(f"agent reply: {where}.kind is {kind!r}; it is one of {', '.join(SEND_METHODS)}")
    url = file.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")) or len(url) > MAX_URL_CHARS:
        raise AgentBadResponse(f"agent reply: {where}.url is not an http(s) URL of at most {MAX_URL_CHARS}")
    if not _has_host(url):
        raise AgentBadResponse(f"agent reply: {where}.url does not parse as a URL with a host (and port)")
    file_name = file.get("file_name")
    if file_name is not None and (
        not isinstance(file_name, str) or not file_name.strip() or len(file_name) > MAX_FILE_NAME_CHARS
    ):
        raise AgentBadResponse(f"agent reply: {where}.file_name is not 1-{MAX_FILE_NAME_CHARS} characters")
    entry: dict = {"kind": kind, "url": url}
    if file_name is not None:
        entry["file_name"] = file_name
    caption = file.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise AgentBadResponse(f"agent reply: {where}.caption is not a string")
    if caption and caption.strip():
        text, entities = _rendered(caption, fmt)
        if utf16_len(text) > MAX_CAPTION_UNITS:
            # Cut like a too-long answer, not refused: the person still gets the answer and the file.
            text, entities = cut_entities(text, entities, MAX_CAPTION_UNITS - utf16_len(CUT_NOTE))
            text += CUT_NOTE
        if text.strip():
            entry["caption"] = text
            if entities:
                entry["caption_entities"] = entities
    return entry


def _has_host(url: str) -> bool:
    """Whether `url` parses (urllib.parse.urlsplit, as reply_files reads it) with a host and, if
    it gives one, a port number that is one, and has no whitespace or control characters."""
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return False
    return bool(parts.hostname)


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
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8", "surrogatepass")) <= CALLBACK_DATA_BYTES:
            raise AgentBadResponse(f"agent reply: {where}.callback_data is not 1-{CALLBACK_DATA_BYTES} bytes")
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


def deliveries(update: Envelope, reply: dict) -> list[tuple[str, dict]]:
    """The Bot API calls that deliver `reply` (CallAgent's shape) to the chat of `update`, in
    order, as (method, payload): sendMessage for each chunk of text, then one send* per
    attachment (SEND_METHODS), whose payload names the file by
    {kind: {"url", "file_name"?, "agent_origin"?, "private_hosts"?}} for SendReply to download and
    upload in its place."""
    chunks = [
        chunk
        for text, entities in _reply_messages(reply)
        if text
        for chunk in (split_entities(text, entities) if entities else [(c, []) for c in split_message(text)])
    ]
    address: dict = {"chat_id": update["chat_id"]}
    if update.get("thread_id") is not None:
        address["message_thread_id"] = update["thread_id"]
    calls: list[tuple[str, dict]] = []
    for text, entities in chunks:
        payload: dict = {**address, "text": text}
        if entities:
            payload["entities"] = entities
        calls.append(("sendMessage", payload))
    texts = len(calls)
    for file in reply.get("attachments", []):
        source = {key: file[key] for key in ("url", "file_name", "agent_origin", "private_hosts") if key in file}
        payload = {**address, file["kind"]: source}
        payload.update({key: file[key] for key in ("caption", "caption_entities") if key in file})
        calls.append((SEND_METHODS[file["kind"]], payload))
    if calls and quotes_the_user(update):
        # Sent even if the user's message is gone by now.
        calls[0][1]["reply_parameters"] = {"message_id": update["message_id"], "allow_sending_without_reply": True}
    if calls and reply.get("buttons"):
        calls[texts - 1 if texts else -1][1]["reply_markup"] = {"inline_keyboard": reply["buttons"]}
    return calls


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
