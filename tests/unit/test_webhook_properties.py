"""Properties of the webhook over generated input (hypothesis), against moto.

Whatever arrives, the answer is one of 200/400/401/403/413 — never a 5xx, which would make Telegram
deliver the same garbage again for a day — and its body is JSON naming the problem. Which answer,
and whether a message lands on the queue, is decided by `expected()` from the generated input
alone (never from the answer): it states the webhook's rules (README: Conversation behaviour) for
this test's environment (no allow-list, GroupMessages=addressed, EditedMessages=ignore,
BotUsername=tgrelay_demo_bot, the bot's id 123 from unit_helpers.BOT_TOKEN):

- not a JSON object, or no update_id that is a 64-bit integer >= 0: 400;
- "message" (looked at first), then "callback_query"; any other kind (edited_message too): 200 skipped;
- a message: its text, else its caption, must be a string (else 400), of any length: Telegram's
  own limits (4096 / 1024 UTF-16 units today) are not the webhook's (DESIGN.md §3); the generated
  texts stay below the envelope's 16 KiB budget, so the envelope carries them whole. Blank ones are
  passed over, and a message with neither is skipped (200) before anything else of it
  is looked at — unless it carries a file with a non-empty string file_id (a photo: any size), or a
  location, venue or contact object (enqueued with empty text); then chat.id and message_id must be
  64-bit integers, and message_thread_id too when is_topic_message is true (else 400);
- a callback query: must be an object; without "message" it is skipped; a "message" that is not an
  object is 400; data that is not a non-empty string is skipped, of any length (Telegram's 64 bytes are not
  checked); then
  the message's chat.id / message_id / thread as above. Enqueued, the answer stopping the button's
  spinner (answerCallbackQuery) when the query has a non-empty string id;
- a message whose text starts with a command: "/start" or "/help" (any case, bare or @tgrelay_demo_bot)
  is answered on the spot with sendMessage and not enqueued; a command @another_bot is skipped; any
  other command is enqueued;
- otherwise a message in a group or supergroup is skipped unless it mentions @tgrelay_demo_bot (a
  mention entity over the text, or caption) or replies to one of the bot's messages (not a forum
  topic's first message); every other message is enqueued.

Where that statement would need more than this, the inputs are constrained (and `expected` raises
Undecided, which hypothesis discards, for the rest): mutations of the samples never change an entity
(they may delete a message's whole "entities"), and inputs with a lone surrogate or with a
text_mention / non-integer mention offsets are left out — the generators make neither, so nothing is
discarded in practice. The inputs: arbitrary JSON values, arbitrary bytes, structurally plausible
updates with odd field values, the real samples in events/telegram with random mutations, and
arbitrary secret headers.

Integers stay within 64 bits: larger ids are rejected, see
tests/workflow/test_bad_input.py::test_ids_beyond_telegram_range_are_a_bad_request.
"""

import copy
import json
import os
import string
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from unit_helpers import EVENTS, SAMPLES_BOT_USERNAME, WEBHOOK_SECRET

ANSWERS = {200, 400, 401, 403, 413}
SAMPLES = {path.stem: json.loads(path.read_text("utf-8")) for path in sorted((EVENTS / "telegram").glob("*.json"))}
# Field names of real updates, so generated objects often look like updates.
KEYS = sorted(
    {"update_id", "message", "edited_message", "callback_query", "chat", "id", "type", "text", "caption"}
    | {"message_id", "from", "data", "is_topic_message", "message_thread_id", "username", "language_code"}
)
SQS_ID_LIMIT = 128  # MessageGroupId and MessageDeduplicationId: at most 128 characters

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
scalars = st.none() | st.booleans() | ints | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
# Texts around Telegram's limits (4096 for text, 1024 for captions; not the webhook's), in 1- and 2-unit characters.
edge_texts = st.builds(
    lambda char, count: char * count,
    st.sampled_from(["a", " ", "\N{GRINNING FACE}", "\u00e9", "\n"]),
    st.sampled_from([0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097]),
).filter(lambda text: len(text.encode("utf-8")) <= 16 * 1024)  # within the envelope's budget (test_webhook: the cut)
odd = st.one_of(json_values, edge_texts)
# Texts the webhook routes by: commands for this bot, bare, for another bot, in any case.
commands = st.sampled_from(["/start", "/help", "/HELP@tgrelay_demo_bot", "/start@other_bot", "/weather in Oslo"])


@st.composite
def updates(draw) -> dict:
    """An update whose fields are each, now and then, missing, of the wrong type or at a limit."""

    def maybe(value):
        # Mostly the plausible value, so that some updates pass and the rest fail one field at a time.
        return value if draw(st.integers(min_value=0, max_value=5)) else draw(odd)

    chat = {"id": maybe(draw(ints)), "type": maybe("private")}
    message = {"message_id": maybe(draw(ints)), "chat": maybe(chat), "date": 1763800000}
    for name in ("text", "caption"):
        if draw(st.booleans()):
            message[name] = draw(st.text(max_size=30) | edge_texts | json_values | commands)
    if draw(st.booleans()):
        message["is_topic_message"] = maybe(True)
        message["message_thread_id"] = maybe(draw(ints))
    if draw(st.booleans()):
        message["from"] = maybe({"id": draw(ints), "username": maybe("someone")})
    kind = draw(st.sampled_from(["message", "message", "message", "edited_message", "callback_query", "poll"]))
    body = message
    if kind == "callback_query":
        body = {"id": "1", "from": {"id": draw(ints)}, "data": draw(st.text(max_size=70) | json_values)}
        if draw(st.integers(min_value=0, max_value=3)):
            body["message"] = message
    return {"update_id": maybe(draw(st.integers(min_value=0, max_value=2**63 - 1))), kind: maybe(body)}


def _paths(value, prefix=()):
    """Every path into a JSON value (keys and list indexes), the value itself first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


_ENTITIES = {"entities", "caption_entities"}


@st.composite
def mutated_samples(draw) -> dict:
    """A real sample from events/telegram with a few values replaced or removed."""
    update = copy.deepcopy(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        # Never inside an entity (see the module's docstring): a message's entities go whole or stay.
        paths = [path for path in list(_paths(update))[1:] if not _ENTITIES.intersection(path[:-1])]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = update
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and (path[-1] in _ENTITIES or draw(st.booleans())):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(odd)
    return update


# --- the oracle: what the answer must be, from the input alone ------------------------------------

BOT_ID = 123  # the number before ":" in unit_helpers.BOT_TOKEN, the secret's bot_token
COMMAND_CHARACTERS = set(string.ascii_letters + string.digits + "_")


class Undecided(Exception):
    """An input outside what `expected` states (see the module's docstring); the example is discarded."""


@dataclass(frozen=True)
class Expected:
    status: int
    outcome: str  # "enqueued", "answered", "skipped" or "refused"
    answer: dict = field(default_factory=dict)  # fields of the 200's body besides ok (a Bot API request)
    envelope: dict = field(default_factory=dict)  # fields of the enqueued envelope


REFUSED = Expected(400, "refused")
SKIPPED = Expected(200, "skipped")


def expected(value) -> Expected:
    """The webhook's answer to `value` (the parsed body), by the rules in the module's docstring."""
    if _has_lone_surrogate(value):
        raise Undecided("a lone surrogate")
    if not isinstance(value, dict):
        return REFUSED
    update_id = value.get("update_id")
    if not _is_id(update_id) or update_id < 0:
        return REFUSED
    if "message" in value:
        return _expected_message(update_id, value["message"])
    if "callback_query" in value:
        return _expected_callback(update_id, value["callback_query"])
    return SKIPPED


def expected_for_bytes(body: bytes) -> Expected:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # not UTF-8, empty, not JSON, too deep
        return REFUSED
    return expected(value)


def _expected_message(update_id: int, message) -> Expected:
    if not isinstance(message, dict):
        return REFUSED
    text = None
    for name in ("text", "caption"):
        candidate = message.get(name)
        if candidate is None:
            continue
        if not isinstance(candidate, str):
            return REFUSED
        if candidate.strip():
            text = candidate
            break
    if text is None and _has_media(message):
        text = ""  # a file, a location, a venue or a contact is a question of its own
    if text is None:
        return SKIPPED
    chat = _checked_chat(message)
    if chat is None:
        return REFUSED
    enqueued = Expected(
        200, "enqueued", envelope={"update_id": update_id, "kind": "message", "chat_id": chat["id"], "text": text}
    )
    command = _command(message.get("text"))
    if command is not None:
        name, target = command
        if target is not None and target.lower() != SAMPLES_BOT_USERNAME:
            return SKIPPED
        if name.lower() in ("start", "help"):
            greeting = os.environ["START_TEXT" if name.lower() == "start" else "HELP_TEXT"]
            return Expected(200, "answered", answer={"method": "sendMessage", "chat_id": chat["id"], "text": greeting})
        return enqueued  # other commands are the agent's
    if chat.get("type") in ("group", "supergroup") and not _addressed(message):
        return SKIPPED
    return enqueued


def _expected_callback(update_id: int, query) -> Expected:
    if not isinstance(query, dict):
        return REFUSED
    if "message" not in query:
        return SKIPPED  # from an inline message: no chat to answer in
    if not isinstance(query["message"], dict):
        return REFUSED
    data = query.get("data")
    if not isinstance(data, str) or data == "":
        return SKIPPED
    chat = _checked_chat(query["message"])
    if chat is None:
        return REFUSED
    query_id = query.get("id")
    spinner = {"method": "answerCallbackQuery", "callback_query_id": query_id}
    return Expected(
        200,
        "enqueued",
        answer=spinner if isinstance(query_id, str) and query_id else {},
        envelope={"update_id": update_id, "kind": "callback_query", "chat_id": chat["id"], "text": data},
    )


FILE_FIELDS = ("photo", "document", "voice", "audio", "video", "video_note", "animation")


def _has_media(message: dict) -> bool:
    """A file with a file_id (a photo: any of its sizes), or a location, venue or contact object."""

    def readable(file) -> bool:
        return isinstance(file, dict) and isinstance(file.get("file_id"), str) and file["file_id"] != ""

    for name in FILE_FIELDS:
        value = message.get(name)
        if name == "photo":
            if isinstance(value, list) and any(readable(size) for size in value):
                return True
        elif readable(value):
            return True
    return any(isinstance(message.get(name), dict) for name in ("location", "venue", "contact"))


def _checked_chat(message: dict) -> dict | None:
    """The message's chat if the message names its chat, itself and (in a forum topic) its thread."""
    chat = message.get("chat")
    if not isinstance(chat, dict) or not _is_id(chat.get("id")) or not _is_id(message.get("message_id")):
        return None
    if message.get("is_topic_message") is True and not _is_id(message.get("message_thread_id")):
        return None
    return chat


def _command(text) -> tuple[str, str | None] | None:
    """("start", None) for "/start ...", ("start", "bot") for "/start@bot ...": the first word of the
    text, if it is a command (a name of 1-32, a bot of 1-64 letters, digits or underscores)."""
    if not isinstance(text, str) or not text.startswith("/"):
        return None
    word = text[1:]
    for index, character in enumerate(word):
        if character.isspace():
            word = word[:index]
            break
    name, at, target = word.partition("@")
    if not 1 <= len(name) <= 32 or not set(name) <= COMMAND_CHARACTERS:
        return None
    if at and (not 1 <= len(target) <= 64 or not set(target) <= COMMAND_CHARACTERS):
        return None
    return name, target if at else None


def _addressed(message: dict) -> bool:
    """A mention of the bot in the text (or, without a text, the caption), or a reply to the bot."""
    if message.get("text") is not None:
        text, entities = message["text"], message.get("entities")
    else:
        text, entities = message.get("caption"), message.get("caption_entities")
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        if entity.get("type") == "text_mention":
            raise Undecided("a text_mention")
        if entity.get("type") == "mention" and isinstance(text, str):
            offset, length = entity.get("offset"), entity.get("length")
            if type(offset) is not int or type(length) is not int:
                raise Undecided("a mention whose offset or length is not an integer")
            if _utf16_slice(text, offset, length).lower() == f"@{SAMPLES_BOT_USERNAME}":
                return True
    replied = message.get("reply_to_message")
    if isinstance(replied, dict) and "forum_topic_created" not in replied:
        sender = replied.get("from")
        return isinstance(sender, dict) and sender.get("id") == BOT_ID
    return False


def _is_id(value) -> bool:
    return type(value) is int and -(2**63) < value < 2**63


def _utf16_slice(text: str, offset: int, length: int) -> str:
    """The characters lying wholly within UTF-16 units [offset, offset + length)."""
    kept, position = [], 0
    for character in text:
        units = 2 if ord(character) > 0xFFFF else 1
        if offset <= position and position + units <= offset + length:
            kept.append(character)
        position += units
    return "".join(kept)


def _has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(character) <= 0xDFFF for character in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def decided(decide, *args) -> Expected:
    """`decide(*args)`, the example discarded if the oracle does not state its answer."""
    try:
        return decide(*args)
    except Undecided:
        assume(False)
        raise


# --- the check ------------------------------------------------------------------------------------


def check(aws, answer, want: Expected) -> None:
    """The answer is `want`, and it is well formed; leaves the queue empty for the next example."""
    try:
        event(want.outcome + (" " + want.answer["method"] if want.answer else ""))
        assert answer.status in ANSWERS, answer.raw_body
        assert answer.headers["content-type"] == "application/json"
        assert "Traceback" not in answer.raw_body and 'File "' not in answer.raw_body
        body = answer.body
        assert answer.status == want.status, (want, answer.raw_body)
        if want.outcome == "refused" or answer.status != 200:
            assert set(body) == {"ok", "error"} and body["ok"] is False, answer.raw_body
            assert isinstance(body["error"], str) and body["error"], answer.raw_body
        elif want.outcome == "skipped":
            assert set(body) == {"ok", "skipped"} and body["ok"] is True, answer.raw_body
            assert isinstance(body["skipped"], str) and body["skipped"], answer.raw_body
        elif want.outcome == "answered":
            assert body["ok"] is True and "skipped" not in body, answer.raw_body
            assert {key: body.get(key) for key in want.answer} == want.answer, answer.raw_body
        else:
            assert body == {"ok": True, **want.answer}, answer.raw_body
        messages = aws.queued()
        assert len(messages) == (1 if want.outcome == "enqueued" else 0), (want, answer.raw_body)
        for message in messages:
            envelope = json.loads(message["Body"])
            assert {key: envelope.get(key) for key in want.envelope} == want.envelope
            assert len(message["Attributes"]["MessageGroupId"]) <= SQS_ID_LIMIT
            assert len(message["Attributes"]["MessageDeduplicationId"]) <= SQS_ID_LIMIT
    finally:
        aws.sqs.purge_queue(QueueUrl=aws.queue_url)


@pytest.fixture
def purgeable(aws, monkeypatch):
    """moto refuses a second PurgeQueue within 60 s unless told not to; each example purges."""
    monkeypatch.setenv("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")
    # The environment `expected` states the rules for (the aws fixture leaves the others at their defaults).
    monkeypatch.delenv("ALLOWED_IDS", raising=False)
    assert os.environ["BOT_USERNAME"] == SAMPLES_BOT_USERNAME
    return aws


def examples(count: int) -> settings:
    # One moto account per test, shared by its examples: each example leaves the queue empty.
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@examples(50)
@given(value=json_values)
def test_any_json_value(purgeable, post_webhook, value):
    want = decided(expected, value)
    check(purgeable, post_webhook.post(json.dumps(value)), want)


@examples(30)
@given(body=st.binary(max_size=600))
def test_any_bytes(purgeable, post_webhook, body):
    want = decided(expected_for_bytes, body)
    check(purgeable, post_webhook.post(body), want)


def _private(**message) -> dict:
    """An update of a private message with these fields (besides message_id and chat)."""
    return {"update_id": 7, "message": {"message_id": 1, "chat": {"id": 5, "type": "private"}, **message}}


def _button(data: str) -> dict:
    return {"update_id": 7, "callback_query": {"id": "q", "data": data, "message": _private()["message"]}}


@examples(80)
@given(update=updates())
# Telegram's limits, each side: none of them is the webhook's (the generator reaches them only now and then).
@example(update=_private(text="a" * 4096)).via("Telegram's text limit")
@example(update=_private(text="a" * 4097)).via("Telegram's text limit")
@example(update=_private(caption="\N{GRINNING FACE}" * 512)).via("Telegram's caption limit, in UTF-16 units")
@example(update=_private(caption="a" * 1025)).via("Telegram's caption limit")
@example(update=_private(text=" ", caption="a" * 1025)).via("a blank text passed over")
@example(update=_button("é" * 32)).via("Telegram's callback data limit, in bytes")
@example(update=_button("é" * 32 + "a")).via("Telegram's callback data limit, in bytes")
@example(update=_private(text="/help me")).via("a command")
def test_generated_updates(purgeable, post_webhook, update):
    want = decided(expected, update)
    check(purgeable, post_webhook.post(update), want)


@examples(80)
@given(update=mutated_samples())
def test_mutated_real_samples(purgeable, post_webhook, update):
    want = decided(expected, update)
    check(purgeable, post_webhook.post(update), want)


@examples(20)
@given(secret=st.text(max_size=300))
def test_any_other_secret_is_refused(purgeable, post_webhook, secret):
    if secret == WEBHOOK_SECRET:
        want = expected(SAMPLES["private_text"])
        assert want.outcome == "enqueued"
    else:
        want = Expected(401 if not secret else 403, "refused")
    check(purgeable, post_webhook.post(SAMPLES["private_text"], secret=secret), want)


def test_the_oracle_on_the_samples():
    """`expected` itself, on the real samples: what the README says each one gets."""
    outcomes = {name: expected(sample).outcome for name, sample in SAMPLES.items()}
    assert outcomes == {
        "album_photo_1": "enqueued",
        "album_photo_2": "enqueued",
        "callback_query": "enqueued",
        "command_start": "answered",
        "document": "enqueued",
        "photo_without_caption": "enqueued",
        "voice_note": "enqueued",
        "edited_message": "skipped",
        "forum_topic_text": "enqueued",
        "group_not_addressed": "skipped",
        "group_text": "enqueued",
        "my_chat_member": "skipped",
        "photo_with_caption": "enqueued",
        "private_text": "enqueued",
        "sticker": "skipped",
    }
    assert expected(SAMPLES["callback_query"]).answer == {
        "method": "answerCallbackQuery",
        "callback_query_id": "1222883054137291716",
    }
