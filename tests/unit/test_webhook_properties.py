"""Properties of the webhook over generated input (hypothesis), against moto.

Whatever arrives, the answer is one of 200/400/401/403/413 — never a 5xx, which would make Telegram
deliver the same garbage again for a day — its body is JSON naming the problem, and a message is on
the queue exactly when the answer is a 200 without "skipped" (and not answered on the spot: /start
and /help get a 200 carrying a sendMessage for Telegram to perform). The inputs: arbitrary JSON values,
arbitrary bytes, structurally plausible updates with odd field values, the real samples in
events/telegram with random mutations, and arbitrary secret headers.

Integers stay within 64 bits: larger ids are rejected, see
tests/workflow/test_bad_input.py::test_ids_beyond_telegram_range_are_a_bad_request.
"""

import copy
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from unit_helpers import EVENTS, WEBHOOK_SECRET

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
# Texts around Telegram's limits (4096 for text, 1024 for captions), in 1- and 2-unit characters.
edge_texts = st.builds(
    lambda char, count: char * count,
    st.sampled_from(["a", " ", "\N{GRINNING FACE}", "\u00e9", "\n"]),
    st.sampled_from([0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097]),
)
odd = st.one_of(json_values, edge_texts)


@st.composite
def updates(draw) -> dict:
    """An update whose fields are each, now and then, missing, of the wrong type or at a limit."""

    def maybe(value):
        # Mostly the plausible value, so that some updates pass and the rest fail one field at a time.
        return value if draw(st.integers(min_value=0, max_value=5)) else draw(odd)

    chat = {"id": maybe(draw(ints)), "type": maybe("private")}
    message = {"message_id": maybe(draw(ints)), "chat": maybe(chat), "date": 1763800000}
    for field in ("text", "caption"):
        if draw(st.booleans()):
            message[field] = draw(st.text(max_size=30) | edge_texts | json_values)
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


@st.composite
def mutated_samples(draw) -> dict:
    """A real sample from events/telegram with a few values replaced or removed."""
    update = copy.deepcopy(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = list(_paths(update))[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = update
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(odd)
    return update


def check(aws, answer, posted) -> None:
    """The properties every answer must have; leaves the queue empty for the next example."""
    try:
        assert answer.status in ANSWERS, answer.raw_body
        assert answer.headers["content-type"] == "application/json"
        assert "Traceback" not in answer.raw_body and 'File "' not in answer.raw_body
        body = answer.body
        assert body["ok"] is (answer.status == 200)
        # A 200 may also be a Bot API request Telegram performs (README: Conversation behaviour):
        # /start and /help are answered there instead of enqueued; a button press is enqueued and
        # its spinner stopped.
        method = body.get("method") if answer.status == 200 else None
        if method is not None:
            assert method in ("sendMessage", "answerCallbackQuery") and "skipped" not in body
        elif answer.status == 200:
            assert set(body) <= {"ok", "skipped"}
            if "skipped" in body:
                assert isinstance(body["skipped"], str) and body["skipped"]
        else:
            assert set(body) == {"ok", "error"} and isinstance(body["error"], str) and body["error"]
        should_enqueue = answer.status == 200 and "skipped" not in body and method != "sendMessage"
        event(f"{answer.status} {'enqueued' if should_enqueue else body.get('skipped') and 'skipped' or ''}".strip())
        messages = aws.queued()
        assert len(messages) == (1 if should_enqueue else 0)
        for message in messages:
            assert posted is not None
            assert json.loads(message["Body"])["update_id"] == posted["update_id"]
            assert len(message["Attributes"]["MessageGroupId"]) <= SQS_ID_LIMIT
            assert len(message["Attributes"]["MessageDeduplicationId"]) <= SQS_ID_LIMIT
    finally:
        aws.sqs.purge_queue(QueueUrl=aws.queue_url)


@pytest.fixture
def purgeable(aws, monkeypatch):
    """moto refuses a second PurgeQueue within 60 s unless told not to; each example purges."""
    monkeypatch.setenv("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")
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
    check(purgeable, post_webhook.post(json.dumps(value)), value)


@examples(30)
@given(body=st.binary(max_size=600))
def test_any_bytes(purgeable, post_webhook, body):
    check(purgeable, post_webhook.post(body), None)


@examples(80)
@given(update=updates())
def test_generated_updates(purgeable, post_webhook, update):
    check(purgeable, post_webhook.post(update), update)


@examples(80)
@given(update=mutated_samples())
def test_mutated_real_samples(purgeable, post_webhook, update):
    check(purgeable, post_webhook.post(update), update)


@examples(20)
@given(secret=st.text(max_size=300))
def test_any_other_secret_is_refused(purgeable, post_webhook, secret):
    answer = post_webhook.post(SAMPLES["private_text"], secret=secret)
    if secret == WEBHOOK_SECRET:
        assert answer.status == 200
    else:
        assert answer.status == (401 if not secret else 403)
    check(purgeable, answer, SAMPLES["private_text"])
