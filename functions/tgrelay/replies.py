"""The agent's answer: checked against the contract (contract/agent-reply.schema.json, then the
rules a schema cannot say), rendered to what Telegram shows, and turned into the Bot API calls
that deliver it.

CallAgent renders each message of the answer (formatting.render: plain text + MessageEntity
list) and passes on, in the execution's state, a shapes.Reply:
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

from tgrelay.contract import check
from tgrelay.errors import AgentBadResponse
from tgrelay.formatting import PARSE_MODE_FORMATS, EntityParseError, render
from tgrelay.shapes import AgentAttachment, AgentReply, Button, Envelope, Reply, ReplyFile, StreamDelta
from tgrelay.telegram_limits import CALLBACK_DATA_BYTES, CAPTION_UNITS, MESSAGE_TEXT_UNITS
from tgrelay.text import cut_entities, split_entities, split_message, utf16_len

logger = Logger(child=True)

# Values of the contract's `format` (any letter case: the schema's pattern): standard Markdown,
# Telegram's HTML and MarkdownV2, plain text. `parse_mode` takes Telegram's own values
# (PARSE_MODE_FORMATS). tests/unit/test_contract.py holds the schema's patterns to these keys.
FORMAT_VALUES = {"markdown": "markdown", "html": "html", "markdownv2": "markdownv2", "text": "text"}
# The whole answer's visible text (after rendering), in UTF-16 units as Telegram counts: 8
# Telegram messages. Past it the answer is cut and says so (CUT_NOTE).
MAX_REPLY_UNITS = 8 * MESSAGE_TEXT_UNITS
CUT_NOTE = "…\n\n[The rest of this answer was cut: it is too long to send.]"
# Separate messages one answer may ask for besides `reply` (Telegram allows about one message a
# second per chat); more are left out, and the last one sent ends with CUT_NOTE.
MAX_MESSAGES = 10
# We keep a keyboard to 100 buttons in all rows (JSON Schema cannot count across rows);
# callback_data: telegram_limits.CALLBACK_DATA_BYTES, bytes (the schema counts characters).
MAX_BUTTONS = 100
# Step Functions fails an execution whose state passes 256 KiB of UTF-8 text, and no Catch can
# take it (States.DataLimitExceeded): the reply as CallAgent returns it stays within this many
# UTF-8 bytes of JSON (state_bytes), cut further (with CUT_NOTE) if its entities or its
# characters make it bigger. The rest of the 256 KiB is the envelope's (turns.MAX_TURN_TEXT_BYTES).
MAX_REPLY_BYTES = 150_000
# The answer's file kinds (the schema's attachment kind) and the Bot API method that sends each;
# the multipart part is named after the kind (sendPhoto's `photo`, sendDocument's `document`, ...).
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
GROUP_CHATS = ("group", "supergroup")


def reply_from_agent(body: Any, empty_text: str) -> Reply:
    """The agent's JSON answer (an AgentReply once checked) as the reply CallAgent passes on
    (shapes.Reply); AgentBadResponse naming the field if it breaks the contract: first the
    published schema (contract.check), then the rules JSON Schema cannot say (its description
    lists them: the button count, callback_data bytes, an attachment URL's host, format and
    parse_mode agreeing, the reply's size as state).

    `reply` and each of `messages` are rendered in the answer's format and sent in that
    order; blank ones are left out, and if nothing is left `empty_text` is sent (Telegram
    refuses empty messages). A message whose markup Telegram could not parse either is sent
    as the agent wrote it, as plain text (what Telegram's own fallback showed). An answer
    longer than MAX_REPLY_UNITS (or MAX_REPLY_BYTES as state), or of more than 1 + MAX_MESSAGES
    messages, is cut and ends with CUT_NOTE.
    """
    check(body, "agent reply")
    answer: AgentReply = body
    fmt = answer_format(answer)
    buttons = _buttons(answer.get("buttons") or [])
    files = _attachments(answer.get("attachments") or [], fmt)

    texts = [answer.get("reply") or "", *(answer.get("messages") or [])]
    rendered = [_rendered(text, fmt) for text in texts if text.strip()]
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


def answer_format(answer: AgentReply | StreamDelta) -> str:
    """The answer's format (one of formatting.FORMATS) from `format` or `parse_mode`, whose values
    the schema checked (any letter case; `parse_mode` "none" and "" for no formatting, as the Bot
    API reads it: telegram-bot-api Client::get_formatted_text); plain text without either.
    AgentBadResponse when the two disagree."""
    given = {}
    for field, values in (("format", FORMAT_VALUES), ("parse_mode", PARSE_MODE_FORMATS)):
        value = answer.get(field)
        if isinstance(value, str):
            given[field] = values[value.lower()]
    if len(set(given.values())) > 1:
        raise AgentBadResponse(
            f"agent reply has format {answer.get('format')!r} and parse_mode {answer.get('parse_mode')!r}: "
            "give one of them"
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


def _reply_state(messages: list[tuple[str, list[dict]]], buttons: list[list[Button]], files: list[ReplyFile]) -> Reply:
    """The reply as CallAgent returns it (shapes.Reply)."""
    (text, entities), *more = messages or [("", [])]
    result: Reply = {"text": text}
    if entities:
        result["entities"] = entities
    if more:
        result["more_messages"] = [{"text": t, "entities": e} if e else {"text": t} for t, e in more]
    if buttons:
        result["buttons"] = buttons
    if files:
        result["attachments"] = files
    return result


def _attachments(files: list[AgentAttachment], fmt: str) -> list[ReplyFile]:
    """The answer's files (schema-checked) as the reply carries them: {"kind", "url",
    "file_name"?, "caption"?, "caption_entities"?}, the caption rendered in the answer's format
    and cut to MAX_CAPTION_UNITS (ending with CUT_NOTE); without a file_name SendReply names the
    file after its URL (reply_files.file_name_for). AgentBadResponse when a URL does not parse
    with a host."""
    return [_attachment(file, f"attachments[{index}]", fmt) for index, file in enumerate(files)]


def _attachment(file: AgentAttachment, where: str, fmt: str) -> ReplyFile:
    url = file["url"]
    if not _has_host(url):
        raise AgentBadResponse(f"agent reply: {where}.url does not parse as a URL with a host (and port)")
    entry: ReplyFile = {"kind": file["kind"], "url": url}
    file_name = file.get("file_name")
    if file_name is not None:
        entry["file_name"] = file_name
    caption = file.get("caption")
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


def _buttons(rows: list[list[Button]]) -> list[list[Button]]:
    """The inline keyboard (schema-checked rows of buttons) as given; AgentBadResponse past
    MAX_BUTTONS buttons or for a callback_data past CALLBACK_DATA_BYTES bytes of UTF-8."""
    count = sum(len(row) for row in rows)
    if count > MAX_BUTTONS:
        raise AgentBadResponse(f"agent reply has {count} buttons; at most {MAX_BUTTONS}")
    for r, row in enumerate(rows):
        for c, button in enumerate(row):
            data = button.get("callback_data")
            if data is not None and len(data.encode("utf-8", "surrogatepass")) > CALLBACK_DATA_BYTES:
                raise AgentBadResponse(
                    f"agent reply: buttons[{r}][{c}].callback_data is not 1-{CALLBACK_DATA_BYTES} bytes"
                )
    return rows


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


def deliveries(envelope: Envelope, reply: dict) -> list[tuple[str, dict]]:
    """The Bot API calls that deliver `reply` (CallAgent's shape) to the chat of `envelope`, in
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
    address: dict = {"chat_id": envelope["chat_id"]}
    if envelope.get("thread_id") is not None:
        address["message_thread_id"] = envelope["thread_id"]
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
    if calls and quotes_the_user(envelope):
        # Sent even if the user's message is gone by now.
        calls[0][1]["reply_parameters"] = {"message_id": envelope["message_id"], "allow_sending_without_reply": True}
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


def quotes_the_user(envelope: Envelope) -> bool:
    """In groups the answer quotes the message it answers, so threads stay readable. In a private
    chat the answer follows the question anyway; a button press has no message of the user's."""
    return envelope.get("chat_type") in GROUP_CHATS and envelope.get("kind") != "callback_query"
