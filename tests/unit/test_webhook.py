"""tgrelay.webhook.handler against moto: what Telegram gets back, and what lands on the queue."""

import hashlib
import hmac
import importlib
import json
import time

import pytest
from botocore.exceptions import ClientError
from unit_helpers import (
    AGENT_TOKEN,
    BOT_TOKEN,
    DEDUPE_TTL_SECONDS,
    SAMPLE_RECEIVED_AT,
    WEBHOOK_SECRET,
    load_event,
    update,
)

from tgrelay import clients, webhook
from tgrelay import envelope as envelope_module

HEADER = "x-telegram-bot-api-secret-token"
ENVELOPE_KEYS = {
    "v",
    "update_id",
    "kind",
    "chat_id",
    "chat_type",
    "thread_id",
    "message_id",
    "sender",
    "text",
    "received_at",
    "expires_at",
}


def assert_rejected(answer, status: int, names: str) -> None:
    """A 4xx/5xx answer: JSON, ok false, an error naming the problem, no traceback."""
    assert answer.status == status, answer.raw_body
    assert answer.headers["content-type"] == "application/json"
    assert answer.body["ok"] is False
    assert names in answer.body["error"]
    assert "Traceback" not in answer.raw_body
    assert 'File "' not in answer.raw_body


def only_message(aws) -> tuple[dict, dict]:
    """The one message on the queue: (envelope, SQS message)."""
    messages = aws.queued()
    assert len(messages) == 1, messages
    return json.loads(messages[0]["Body"]), messages[0]


def with_message(**fields) -> dict:
    """private_text.json with its message's fields replaced (None removes one)."""
    sample = update("private_text")
    for key, value in fields.items():
        if value is None:
            sample["message"].pop(key, None)
        else:
            sample["message"][key] = value
    return sample


# --- accepted updates -------------------------------------------------------------------------


def test_private_text_is_enqueued_once_with_its_envelope(aws, post_webhook):
    sample = update("private_text")
    before = int(time.time())
    answer = post_webhook.post(sample)
    after = int(time.time())

    assert answer.status == 200
    assert answer.body == {"ok": True}
    envelope, message = only_message(aws)
    assert message["Attributes"]["MessageGroupId"] == "284719365"
    assert message["Attributes"]["MessageDeduplicationId"] == "918273601"
    assert set(envelope) == ENVELOPE_KEYS
    assert envelope["v"] == 1
    assert envelope["update_id"] == 918273601
    assert envelope["kind"] == "message"
    assert envelope["chat_id"] == 284719365
    assert envelope["chat_type"] == "private"
    assert envelope["thread_id"] is None
    assert envelope["message_id"] == 1021
    assert envelope["sender"] == {"id": 284719365, "username": "alice_nowak", "language_code": "en"}
    assert envelope["text"] == sample["message"]["text"]
    assert envelope["text"].endswith("\N{ROCKET}")
    assert before <= envelope["received_at"] <= after
    assert envelope["expires_at"] == envelope["received_at"] + DEDUPE_TTL_SECONDS


class _FrozenClock:
    """Stands in for the time module inside tgrelay.webhook."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_the_sample_sqs_record_is_exactly_what_the_webhook_enqueues(aws, post_webhook, monkeypatch):
    monkeypatch.setattr(webhook, "time", _FrozenClock(SAMPLE_RECEIVED_AT + 0.9))
    record = load_event("aws/sqs_record.json")

    # The sample HTTP event itself, unchanged.
    answer = post_webhook.invoke(load_event("aws/http_api_v2_webhook.json"))

    assert answer.status == 200
    [message] = aws.queued()
    assert message["Body"] == record["body"]
    assert message["MD5OfBody"] == record["md5OfBody"]
    for attribute in ("MessageGroupId", "MessageDeduplicationId"):
        assert message["Attributes"][attribute] == record["attributes"][attribute]


@pytest.mark.parametrize(
    ("sample", "group_id", "expected"),
    [
        pytest.param(
            "forum_topic_text",
            "-1002233445566:7690",
            {"kind": "message", "chat_id": -1002233445566, "chat_type": "supergroup", "thread_id": 7690},
            id="forum-topic",
        ),
        pytest.param(
            "group_text",
            "-1001987654321",
            {
                "kind": "message",
                "chat_id": -1001987654321,
                "thread_id": None,
                "text": "@tgrelay_demo_bot what changed in v2.3?",
            },
            id="supergroup-mention",
        ),
        pytest.param(
            "photo_with_caption",
            "284719365",
            {"kind": "message", "text": "What does this error on the deploy page mean?", "message_id": 1023},
            id="photo-caption",
        ),
        pytest.param(
            "private_text",
            "284719365",
            {"text": "/weather Berlin", "sender": {"id": 284719365, "username": "alice_nowak", "language_code": "en"}},
            id="other-command",
        ),
    ],
)
def test_handled_kinds_are_enqueued(aws, post_webhook, sample, group_id, expected):
    payload = update(sample)
    if "text" in expected and expected["text"].startswith("/"):
        payload["message"]["text"] = expected["text"]  # a command the webhook does not answer itself

    answer = post_webhook.post(payload)

    assert answer.status == 200
    assert answer.body == {"ok": True}
    envelope, message = only_message(aws)
    assert message["Attributes"]["MessageGroupId"] == group_id
    assert message["Attributes"]["MessageDeduplicationId"] == str(payload["update_id"])
    assert envelope["update_id"] == payload["update_id"]
    assert {key: envelope[key] for key in expected} == expected


def test_a_button_press_is_enqueued_and_its_spinner_stopped(aws, post_webhook):
    answer = post_webhook.post(update("callback_query"))

    assert answer.status == 200
    # Telegram performs the request in the answer: the button stops showing a spinner.
    assert answer.body == {"ok": True, "method": "answerCallbackQuery", "callback_query_id": "1222883054137291716"}
    envelope, message = only_message(aws)
    assert message["Attributes"]["MessageGroupId"] == "284719365"
    assert (envelope["kind"], envelope["text"], envelope["message_id"]) == ("callback_query", "notes:weekly", 1022)
    # who pressed the button, not the bot that sent the message
    assert envelope["sender"] == {"id": 284719365, "username": "alice_nowak", "language_code": "en"}


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("sticker", "message without text or caption"),
        ("edited_message", "edited messages are ignored"),
        ("my_chat_member", "'my_chat_member'"),
    ],
)
def test_unhandled_kinds_are_acknowledged_and_not_enqueued(aws, post_webhook, sample, reason):
    answer = post_webhook.post(update(sample))

    assert answer.status == 200
    assert answer.body["ok"] is True
    assert reason in answer.body["skipped"]
    assert aws.queued() == []


def test_the_same_update_twice_is_queued_once(aws, post_webhook):
    """SQS FIFO dedupe on MessageDeduplicationId = update_id (moto 5.2.5 implements it)."""
    first = post_webhook.post(update("private_text"))
    again = post_webhook.post(update("private_text"))

    assert (first.status, again.status) == (200, 200)
    assert aws.depth() == 1
    assert len(aws.queued()) == 1


def test_two_updates_of_one_chat_are_both_queued(aws, post_webhook):
    """The control for the dedupe test: distinct update ids in one group are not collapsed."""
    second = update("private_text")
    second["update_id"] += 100
    second["message"]["message_id"] += 1

    post_webhook.post(update("private_text"))
    post_webhook.post(second)

    assert aws.depth() == 2
    assert [json.loads(m["Body"])["update_id"] for m in aws.queued()] == [918273601, 918273701]


def test_a_base64_encoded_body_is_decoded(aws, post_webhook):
    sample = update("private_text")

    answer = post_webhook.post(json.dumps(sample, ensure_ascii=False).encode("utf-8"))

    assert answer.status == 200
    envelope, _ = only_message(aws)
    assert envelope["text"] == sample["message"]["text"]


@pytest.mark.parametrize(
    "text",
    [pytest.param("a" * 4096, id="ascii"), pytest.param("\N{GRINNING FACE}" * 2048, id="astral")],
)
def test_text_of_exactly_4096_utf16_units_is_accepted(aws, post_webhook, text):
    answer = post_webhook.post(with_message(text=text))

    assert answer.status == 200
    envelope, _ = only_message(aws)
    assert envelope["text"] == text


def test_a_caption_of_exactly_1024_utf16_units_is_accepted(aws, post_webhook):
    caption = "\N{GRINNING FACE}" * 512
    answer = post_webhook.post(with_message(text=None, caption=caption))

    assert answer.status == 200
    envelope, _ = only_message(aws)
    assert envelope["text"] == caption


def test_a_body_of_exactly_max_body_bytes_is_accepted(aws, post_webhook):
    text = json.dumps(update("private_text"))
    body = text + " " * (webhook.MAX_BODY_BYTES - len(text.encode()))

    assert post_webhook.post(body).status == 200
    assert post_webhook.post(body.encode()).status == 200  # base64, decoded size at the limit
    assert aws.depth() == 1


# --- what Telegram really sends is never refused for its length or for fields we do not know -----


def _entities(count: int) -> list[dict]:
    """A text_link entity per character (about 100 bytes each)."""
    url = "https://docs.example.com/release-notes/2026/v2.3#section-"
    return [{"offset": index, "length": 1, "type": "text_link", "url": f"{url}{index}"} for index in range(count)]


def _cut(text: str) -> str:
    """What the envelope carries of a text longer than its budget."""
    size = len(text.encode())
    kept = text.encode()[: envelope_module.MAX_TEXT_BYTES].decode("utf-8", "ignore")
    while len((kept + envelope_module.CUT_NOTE.format(size=size, kept=len(kept.encode()))).encode()) > (
        envelope_module.MAX_TEXT_BYTES
    ):
        kept = kept[:-1]
    return kept + envelope_module.CUT_NOTE.format(size=size, kept=len(kept.encode()))


GENUINE = [
    # (id, the update, the text the envelope must carry)
    pytest.param(
        {**update("photo_with_caption"), "message": {**update("photo_with_caption")["message"], "caption": "c" * 1025}},
        "c" * 1025,
        id="caption-1025",
    ),
    pytest.param(
        with_message(text=None, caption="\N{GRINNING FACE}" * 2048),
        "\N{GRINNING FACE}" * 2048,
        id="caption-4096-utf16-premium",
    ),
    pytest.param(with_message(text="t" * 5000), "t" * 5000, id="text-5000"),
    pytest.param(with_message(text="\N{GRINNING FACE}" * 2049), "\N{GRINNING FACE}" * 2049, id="text-4098-utf16"),
    pytest.param(with_message(text="a" * 200_000), _cut("a" * 200_000), id="text-200000-cut"),
    pytest.param(with_message(text="界" * 25_000), _cut("界" * 25_000), id="text-25000-cjk-cut"),
    pytest.param(
        with_message(text="b" * 4096, entities=_entities(4096)), "b" * 4096, id="entities-4096-body-over-256kib"
    ),
    pytest.param(
        with_message(
            text="launch notes",
            link_preview_options={"is_disabled": True},
            effect_id="5104841245755180586",
            sender_boost_count=3,
            some_field_from_bot_api_12={"nested": [{"deep": True}]},
        ),
        "launch notes",
        id="unknown-message-fields",
    ),
    pytest.param(
        {**with_message(text=None, caption="look", paid_media={"star_count": 5, "paid_media": []}), "business_v12": 1},
        "look",
        id="new-message-type-with-caption",
    ),
    pytest.param(
        with_message(text=None, caption="checklist", checklist={"title": "todo", "tasks": [{"id": 1, "text": "x"}]}),
        "checklist",
        id="checklist-with-caption",
    ),
    pytest.param(
        with_message(
            text="hi", chat={"id": 284719365, "type": "private", "first_name": "Ana", "accent_color_id": 3, "new": {}}
        ),
        "hi",
        id="unknown-chat-fields",
    ),
]


@pytest.mark.parametrize(("sample", "text"), GENUINE)
def test_an_update_telegram_sends_is_enqueued_whatever_its_length_or_new_fields(aws, post_webhook, sample, text):
    body = json.dumps(sample, ensure_ascii=False).encode("utf-8")
    if "entities" in sample["message"]:
        assert len(body) > 256 * 1024  # what the webhook used to refuse (413)

    answer = post_webhook.post(body)

    assert answer.status == 200, answer.raw_body
    assert answer.body == {"ok": True}
    envelope, _ = only_message(aws)
    assert set(envelope) == ENVELOPE_KEYS | ({"attachments"} if "photo" in sample["message"] else set())
    assert envelope["text"] == text
    assert len(envelope["text"].encode()) <= envelope_module.MAX_TEXT_BYTES
    assert envelope["update_id"] == sample["update_id"]
    assert envelope["chat_id"] == sample["message"]["chat"]["id"]


def test_callback_data_longer_than_telegrams_64_bytes_is_enqueued(aws, post_webhook):
    sample = update("callback_query")
    sample["callback_query"]["data"] = "d" * 300

    answer = post_webhook.post(sample)

    assert answer.status == 200
    envelope, _ = only_message(aws)
    assert envelope["text"] == "d" * 300


def test_the_cut_text_keeps_whole_characters_and_names_the_sizes():
    text = "x" + "\N{GRINNING FACE}" * 10_000  # 40,001 bytes: a cut inside a 4-byte character is avoided

    carried = envelope_module.carried_text(text)

    kept, note = carried.split("\n\n[tgrelay:")
    assert text.startswith(kept)
    assert len(carried.encode()) <= envelope_module.MAX_TEXT_BYTES
    assert len(carried.encode()) > envelope_module.MAX_TEXT_BYTES - 8  # no more than a character and a digit lost
    assert f"was {len(text.encode())} bytes long" in note
    assert f"first {len(kept.encode())} bytes" in note


def test_a_text_at_the_budget_is_carried_whole():
    text = "y" * envelope_module.MAX_TEXT_BYTES

    assert envelope_module.carried_text(text) == text
    assert envelope_module.carried_text(text + "y") != text + "y"


def test_the_secret_header_name_is_case_insensitive(aws, post_webhook):
    answer = post_webhook.post(
        update("private_text"), secret=None, headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    )

    assert answer.status == 200
    assert aws.depth() == 1


# --- rejected requests: nothing is enqueued ----------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("wrong", id="other"),
        pytest.param(WEBHOOK_SECRET[:-1], id="prefix"),
        pytest.param(WEBHOOK_SECRET + "x", id="longer"),
        pytest.param(WEBHOOK_SECRET.upper(), id="case"),
        pytest.param(WEBHOOK_SECRET[:-1] + "\N{LATIN SMALL LETTER E WITH ACUTE}", id="non-ascii"),
        pytest.param(" " + WEBHOOK_SECRET, id="padded"),
    ],
)
def test_a_wrong_secret_is_forbidden(aws, post_webhook, secret):
    answer = post_webhook.post(update("private_text"), secret=secret)

    assert_rejected(answer, 403, HEADER)
    assert aws.queued() == []


@pytest.mark.parametrize("secret", [None, ""], ids=["absent", "empty"])
def test_a_missing_secret_is_unauthorized(aws, post_webhook, secret):
    answer = post_webhook.post(update("private_text"), secret=secret)

    assert_rejected(answer, 401, HEADER)
    assert aws.queued() == []


@pytest.mark.parametrize(
    "secret",
    [pytest.param(WEBHOOK_SECRET + "x" * 300, id="secret-then-padding"), pytest.param("a" * 100_000, id="100k")],
)
def test_an_oversized_secret_is_forbidden_without_comparing(aws, post_webhook, monkeypatch, secret):
    compared = []
    monkeypatch.setattr(hmac, "compare_digest", lambda *args: compared.append(args) or False)

    answer = post_webhook.post(update("private_text"), secret=secret)

    assert_rejected(answer, 403, HEADER)
    assert compared == []
    assert aws.queued() == []


def test_the_secret_is_compared_in_constant_time(aws, post_webhook, monkeypatch):
    real_compare = hmac.compare_digest
    calls = []

    def spy(given, expected):
        calls.append((given, expected))
        return real_compare(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)

    assert post_webhook.post(update("private_text")).status == 200
    assert post_webhook.post(update("group_text"), secret="local-webhook-secreT").status == 403

    assert calls == [
        (WEBHOOK_SECRET.encode(), WEBHOOK_SECRET.encode()),
        (b"local-webhook-secreT", WEBHOOK_SECRET.encode()),
    ]
    assert aws.depth() == 1


def test_the_secret_is_checked_before_the_body_is_read(aws, post_webhook):
    answer = post_webhook.post("{not json", secret="wrong")

    assert_rejected(answer, 403, HEADER)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_is_accepted(aws, post_webhook, method):
    answer = post_webhook.post(update("private_text"), method=method)

    assert_rejected(answer, 405, "POST")
    assert aws.queued() == []


def test_an_empty_secret_field_is_a_configuration_error(aws, post_webhook, handler_logs):
    aws.secrets.put_secret_value(
        SecretId=aws.secret_arn, SecretString=json.dumps({"bot_token": BOT_TOKEN, "webhook_secret": ""})
    )

    answer = post_webhook.post(update("private_text"))

    assert_rejected(answer, 500, "not configured")
    assert answer.body == {"ok": False, "error": "webhook is not configured"}
    assert aws.queued() == []
    [failure] = [json.loads(line) for line in handler_logs() if "webhook secret unavailable" in line]
    assert failure["reason"] == "field 'webhook_secret' of the bot secret is empty"


@pytest.mark.parametrize(
    ("breakage", "status", "error", "logged"),
    [
        # Secrets Manager cannot give the secret (here: it is gone): a dependency failing, worth a
        # redelivery, reported as DependencyUnavailable by secrets.py.
        pytest.param(
            "secret-gone",
            503,
            "webhook secret unavailable, deliver again",
            {"error_type": "DependencyUnavailable"},
            id="secret-gone",
        ),
        # The secret is there but unusable: a configuration error, named in the log.
        pytest.param(
            "secret-not-json",
            500,
            "webhook is not configured",
            {"reason": "the bot secret is not a JSON object"},
            id="secret-not-json",
        ),
    ],
)
def test_an_unreadable_secret_never_acknowledges_the_update(
    aws, post_webhook, monkeypatch, handler_logs, breakage, status, error, logged
):
    """Secrets Manager failing must not turn into a 2xx (update lost) or a 4xx (Telegram drops it).

    The handler answers these itself, with its own JSON body; the log says which failure it met, so
    another crash on the way (a TypeError in a dependency, say) cannot pass for the expected one."""
    if breakage == "secret-gone":
        monkeypatch.setenv("SECRET_ARN", aws.secret_arn.rsplit(":", 1)[0] + ":tgrelay-Gone-AbCdEf")
    else:
        aws.secrets.put_secret_value(SecretId=aws.secret_arn, SecretString="not json")

    answer = post_webhook.post(update("private_text"))

    assert (answer.status, answer.body) == (status, {"ok": False, "error": error})
    assert answer.headers == {"content-type": "application/json"}
    assert aws.queued() == []
    [failure] = [json.loads(line) for line in handler_logs() if "webhook secret unavailable" in line]
    assert failure["level"] == "ERROR"
    assert {key: failure.get(key) for key in logged} == logged


def _nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("body", "names"),
    [
        pytest.param('{"update_id": 918273601, "message": {', "not valid JSON", id="truncated-json"),
        pytest.param("update_id=1", "not valid JSON", id="form-encoded"),
        pytest.param("", "empty body", id="empty"),
        pytest.param(None, "empty body", id="no-body"),
        pytest.param(" \n ", "empty body", id="whitespace"),
        pytest.param(json.dumps([update("private_text")]), "not a JSON object", id="array"),
        pytest.param('"hello"', "not a JSON object", id="string"),
        pytest.param("42", "not a JSON object", id="number"),
        pytest.param("null", "not a JSON object", id="null"),
        pytest.param("[" * 100_000 + "]" * 100_000, "nested too deeply", id="100k-nested-lists"),
        pytest.param(_nested_objects(40_000), "nested too deeply", id="40k-nested-objects"),
        pytest.param(b'{"update_id": 1, "message": {"text": "caf\xe9"}}', "not UTF-8", id="latin-1"),
        pytest.param(b"\xff\xfe{\x00}\x00", "not UTF-8", id="utf-16"),
        pytest.param(b"\xc3\x28", "not UTF-8", id="invalid-utf8-sequence"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_bad_request(aws, post_webhook, body, names):
    answer = post_webhook.post(body)

    assert_rejected(answer, 400, names)
    assert aws.queued() == []


def test_a_body_that_is_not_base64_is_a_bad_request(aws, post_webhook):
    event = post_webhook.event(b"x")
    event["body"] = "eyJ1cGRhdGVfaWQiOjF9a"  # one character too many: incorrect padding

    answer = post_webhook.invoke(event)

    assert_rejected(answer, 400, "base64")
    assert aws.queued() == []


def _without_update_id():
    sample = update("private_text")
    del sample["update_id"]
    return sample


def _with_update_id(value):
    sample = update("private_text")
    sample["update_id"] = value
    return sample


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        pytest.param(_without_update_id(), "update_id", id="no-update_id"),
        pytest.param(_with_update_id("918273601"), "update_id", id="update_id-string"),
        pytest.param(_with_update_id(-1), "update_id", id="update_id-negative"),
        pytest.param(_with_update_id(True), "update_id", id="update_id-bool"),
        pytest.param(_with_update_id(9.5), "update_id", id="update_id-float"),
        pytest.param(with_message(chat=None), "message.chat", id="no-chat"),
        pytest.param(with_message(chat={"type": "private"}), "message.chat.id", id="chat-without-id"),
        pytest.param(with_message(chat={"id": "284719365"}), "message.chat.id", id="chat-id-string"),
        pytest.param(with_message(message_id=None), "message.message_id", id="no-message_id"),
        pytest.param({"update_id": 1, "message": None}, "message", id="message-null"),
        pytest.param({"update_id": 1, "message": "hi"}, "message", id="message-string"),
        pytest.param(with_message(text=["hi"]), "message.text", id="text-not-string"),
        pytest.param(with_message(text=None, caption={"b": 1}), "message.caption", id="caption-not-string"),
    ],
)
def test_an_object_that_is_not_a_valid_update_is_a_bad_request(aws, post_webhook, payload, names):
    answer = post_webhook.post(payload)

    assert_rejected(answer, 400, names)
    assert aws.queued() == []


@pytest.mark.parametrize("base64_encoded", [False, True], ids=["plain", "base64"])
def test_a_body_over_max_body_bytes_is_too_large(aws, post_webhook, base64_encoded):
    text = json.dumps(update("private_text"))
    body = text + " " * (webhook.MAX_BODY_BYTES + 1 - len(text.encode()))

    answer = post_webhook.post(body.encode() if base64_encoded else body)

    assert_rejected(answer, 413, str(webhook.MAX_BODY_BYTES))
    assert aws.queued() == []


def test_a_huge_body_is_refused_before_decoding(aws, post_webhook, monkeypatch):
    def no_decoding(*_):
        raise AssertionError("the body was decoded")

    monkeypatch.setattr(webhook.binascii, "a2b_base64", no_decoding)

    answer = post_webhook.post(b"x" * (2 * webhook.MAX_BODY_BYTES))

    assert_rejected(answer, 413, str(webhook.MAX_BODY_BYTES))


# --- SQS failure -------------------------------------------------------------------------------


def test_when_sqs_fails_the_answer_is_503_and_nothing_is_enqueued(aws, post_webhook, monkeypatch, handler_logs):
    missing_queue = aws.queue_url.replace("tgrelay-UpdatesQueue.fifo", "no-such-queue.fifo")
    with pytest.raises(ClientError) as refused:
        clients.sqs().send_message(
            QueueUrl=missing_queue, MessageBody="{}", MessageGroupId="1", MessageDeduplicationId="1"
        )
    assert "NonExistentQueue" in refused.value.response["Error"]["Code"]
    monkeypatch.setenv("QUEUE_URL", missing_queue)

    answer = post_webhook.post(update("private_text"))

    assert_rejected(answer, 503, "queue unavailable")
    assert aws.queued() == []
    [failure] = [json.loads(line) for line in handler_logs() if "enqueue failed" in line]
    assert failure["level"] == "ERROR"
    assert failure["error_type"] == "QueueDoesNotExist"
    assert failure["update_id"] == 918273601


# --- logs --------------------------------------------------------------------------------------


def test_no_log_line_contains_a_secret(aws, post_webhook, monkeypatch, handler_logs):
    post_webhook.post(update("private_text"))
    post_webhook.post(update("sticker"))
    post_webhook.post("{not json")
    post_webhook.post(update("group_text"), secret="wrong")
    post_webhook.post(update("group_text"), secret=None)
    monkeypatch.setenv("QUEUE_URL", aws.queue_url + "-gone")
    post_webhook.post(update("forum_topic_text"))

    lines = handler_logs()
    records = [json.loads(line) for line in lines]
    # Metric lines (EMF, no "message") are scanned for secrets too.
    messages = [record["message"] for record in records if "message" in record]
    assert {"enqueued update", "skipped update", "rejected update", "enqueue failed"} <= set(messages)
    for line in lines:
        for secret in (WEBHOOK_SECRET, BOT_TOKEN, AGENT_TOKEN):
            assert secret not in line


def test_log_keys_of_one_update_do_not_leak_into_the_next(aws, post_webhook, handler_logs):
    post_webhook.post(update("private_text"))
    post_webhook.post("{not json")

    records = {record["message"]: record for record in map(json.loads, handler_logs()) if "message" in record}
    assert records["enqueued update"]["update_id"] == 918273601
    assert records["enqueued update"]["chat_id"] == 284719365
    assert records["enqueued update"]["kind"] == "message"
    assert "update_id" not in records["rejected update"]
    assert "chat_id" not in records["rejected update"]


# --- defects found and fixed: kept as regression tests -------------------------------------------


def test_a_lone_surrogate_in_the_text_is_a_bad_request(aws, post_webhook):
    body = json.dumps(update("private_text")).replace("\\ud83d\\ude80", "\\ud83d")
    assert "\\ud83d" in body and "\\ude80" not in body

    answer = post_webhook.post(body)

    assert_rejected(answer, 400, "message.text")
    assert aws.queued() == []


# The characters SQS allows in a message body (SendMessage API reference): #x9 | #xA | #xD | #x20-#xD7FF |
# #xE000-#xFFFD | #x10000-#x10FFFF. moto does not check this. Real SQS answers InvalidMessageContents (older
# versions of the reference say it replaces them with U+FFFD instead): an outage or a changed text.
def _sqs_allowed(char: str) -> bool:
    code = ord(char)
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


def test_the_enqueued_body_only_has_characters_sqs_accepts(aws, post_webhook):
    text = "odd \ufffe and \uffff characters"

    answer = post_webhook.post(with_message(text=text))

    assert answer.status == 200
    envelope, message = only_message(aws)
    assert envelope["text"] == text
    assert hashlib.md5(message["Body"].encode()).hexdigest() == message["MD5OfBody"]
    assert all(_sqs_allowed(char) for char in message["Body"])


@pytest.fixture
def event_logging_switched_on(aws, monkeypatch):
    """tgrelay.webhook as a cold start with POWERTOOLS_LOGGER_LOG_EVENT=true imports it (read at decoration)."""
    original = dict(vars(webhook))
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    importlib.reload(webhook)
    yield
    vars(webhook).update(original)  # the module's own handler and logger again


def test_event_logging_switched_on_does_not_log_the_secret(event_logging_switched_on, aws, post_webhook, handler_logs):
    assert post_webhook.post(update("private_text")).status == 200

    lines = handler_logs()
    assert any("enqueued update" in line for line in lines)
    assert not [line for line in lines if WEBHOOK_SECRET in line]


# --- allow-list ---------------------------------------------------------------------------------


def test_with_an_allow_list_other_chats_are_acknowledged_and_dropped(aws, post_webhook, monkeypatch, capsys):
    monkeypatch.setenv("ALLOWED_IDS", "-100123, 42")
    answer = post_webhook.post(update("private_text"))  # chat and sender 284719365: not listed

    assert answer.status == 200
    assert "allow-list" in answer.body["skipped"]
    assert aws.queued() == []
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (metric_line,) = emitted  # Powertools prints one EMF record per invocation
    assert metric_line["DroppedUpdates"] == [1.0]
    assert "EnqueuedUpdates" not in metric_line


@pytest.mark.parametrize("allowed", ["284719365", "1, 284719365 ,2"])
def test_a_listed_chat_or_sender_is_enqueued(aws, post_webhook, monkeypatch, allowed):
    monkeypatch.setenv("ALLOWED_IDS", allowed)
    assert post_webhook.post(update("private_text")).status == 200
    assert len(aws.queued()) == 1


def test_a_listed_sender_in_an_unlisted_group_is_answered(aws, post_webhook, monkeypatch):
    group_update = update("group_text")
    monkeypatch.setenv("ALLOWED_IDS", str(group_update["message"]["from"]["id"]))
    assert post_webhook.post(group_update).status == 200
    assert len(aws.queued()) == 1
