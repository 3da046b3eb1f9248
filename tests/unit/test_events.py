"""events/ samples agree with the code: each Telegram sample is handled or skipped as stated, the AWS
envelopes carry exactly what the webhook produces."""

import base64
import hashlib
import importlib.util
import json

import pytest
from unit_helpers import (
    DEDUPE_TTL_SECONDS,
    EVENTS,
    SAMPLE_RECEIVED_AT,
    SAMPLES_BOT_ID,
    SAMPLES_BOT_USERNAME,
    WEBHOOK_SECRET,
    load_event,
    update,
)

from tgrelay.conversation import route
from tgrelay.envelope import UnhandledUpdate, envelope_from_update, message_group_id
from tgrelay.text import utf16_len
from tgrelay_local.lambda_events import http_api_event

# Every file in events/telegram/, and what the webhook does with it.
HANDLED = {
    "private_text": "message",
    "group_text": "message",
    "group_not_addressed": "message",
    "forum_topic_text": "message",
    "callback_query": "callback_query",
    "command_start": "message",
    "photo_with_caption": "message",
    "voice_note": "message",
    "document": "message",
    "photo_without_caption": "message",
    "album_photo_1": "message",
    "album_photo_2": "message",
}
SKIPPED = {
    "sticker": "message without text or caption",
    "edited_message": "edited messages are ignored",
    "my_chat_member": "update kind 'my_chat_member' is not handled",
}
# What the webhook does with the handled ones (the template's defaults; the samples' bot).
ROUTES = {
    "private_text": ("enqueue", None),
    "group_text": ("enqueue", None),
    "group_not_addressed": ("skip", None),
    "forum_topic_text": ("enqueue", None),
    "callback_query": ("enqueue", "answerCallbackQuery"),
    "command_start": ("answer", "sendMessage"),
    "photo_with_caption": ("enqueue", None),
    "voice_note": ("enqueue", None),
    "document": ("enqueue", None),
    "photo_without_caption": ("enqueue", None),
    "album_photo_1": ("enqueue", None),
    "album_photo_2": ("enqueue", None),
}
# The samples with files, and the file kinds their envelopes carry.
ATTACHMENTS = {
    "photo_with_caption": ["photo"],
    "voice_note": ["voice"],
    "document": ["document"],
    "photo_without_caption": ["photo"],
    "album_photo_1": ["photo"],
    "album_photo_2": ["photo"],
}


def test_every_telegram_sample_is_listed_here():
    on_disk = {path.stem for path in (EVENTS / "telegram").glob("*.json")}

    assert on_disk == set(HANDLED) | set(SKIPPED)


@pytest.mark.parametrize(("name", "kind"), sorted(HANDLED.items()))
def test_handled_sample(name, kind):
    sample = update(name)

    envelope = envelope_from_update(sample, SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS)

    assert envelope["kind"] == kind
    assert envelope["update_id"] == sample["update_id"]
    assert envelope["text"].strip() or envelope["attachments"]
    assert [file["kind"] for file in envelope.get("attachments", [])] == ATTACHMENTS.get(name, [])
    assert envelope["sender"] is not None


def test_the_album_samples_are_one_album():
    first, second = (
        envelope_from_update(update(name), SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS)
        for name in ("album_photo_1", "album_photo_2")
    )

    assert first["media_group_id"] == second["media_group_id"] and first["chat_id"] == second["chat_id"]
    assert second["update_id"] == first["update_id"] + 1


@pytest.mark.parametrize(("name", "expected"), sorted(ROUTES.items()))
def test_handled_sample_route(name, expected, monkeypatch):
    monkeypatch.setenv("BOT_USERNAME", SAMPLES_BOT_USERNAME)
    for setting in ("GROUP_MESSAGES", "EDITED_MESSAGES"):
        monkeypatch.delenv(setting, raising=False)
    sample = update(name)

    decision = route(
        sample, envelope_from_update(sample, SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS), lambda: SAMPLES_BOT_ID
    )

    assert (decision.action, decision.method.get("method")) == expected


def test_every_handled_sample_has_a_route():
    assert set(ROUTES) == set(HANDLED)


def test_the_samples_bot_is_the_one_the_callback_message_came_from():
    assert update("callback_query")["callback_query"]["message"]["from"]["id"] == SAMPLES_BOT_ID


@pytest.mark.parametrize(("name", "reason"), sorted(SKIPPED.items()))
def test_skipped_sample(name, reason):
    with pytest.raises(UnhandledUpdate, match=reason):
        envelope_from_update(update(name), SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS)


def _chat(sample: dict) -> dict:
    for kind in ("message", "edited_message", "my_chat_member"):
        if kind in sample:
            return sample[kind]["chat"]
    return sample["callback_query"]["message"]["chat"]


def test_samples_have_distinct_update_ids_and_real_shaped_chat_ids():
    samples = {name: update(name) for name in [*HANDLED, *SKIPPED]}

    assert len({sample["update_id"] for sample in samples.values()}) == len(samples)
    for name, sample in samples.items():
        chat = _chat(sample)
        if chat["type"] == "private":
            assert chat["id"] > 0, name
        else:
            assert str(chat["id"]).startswith("-100"), name


@pytest.mark.parametrize("name", ["group_text", "forum_topic_text", "command_start"])
def test_entities_point_into_the_text(name):
    message = update(name)["message"]
    units = message["text"].encode("utf-16-le")

    assert message["entities"]
    for entity in message["entities"]:
        assert entity["offset"] + entity["length"] <= utf16_len(message["text"])
        covered = units[2 * entity["offset"] : 2 * (entity["offset"] + entity["length"])].decode("utf-16-le")
        assert covered[0] == {"mention": "@", "bot_command": "/"}[entity["type"]]
        assert " " not in covered


def test_http_event_carries_private_text_to_the_webhook_route():
    event = load_event("aws/http_api_v2_webhook.json")

    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /telegram/webhook"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/telegram/webhook"
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == update("private_text")
    assert event["headers"]["content-length"] == str(len(event["body"].encode("utf-8")))
    assert event["headers"]["x-telegram-bot-api-secret-token"] == WEBHOOK_SECRET
    assert all(name == name.lower() for name in event["headers"])  # HTTP APIs lower-case header names


def test_sqs_record_body_is_the_envelope_of_private_text():
    record = load_event("aws/sqs_record.json")
    envelope = envelope_from_update(update("private_text"), SAMPLE_RECEIVED_AT, DEDUPE_TTL_SECONDS)

    assert json.loads(record["body"]) == envelope
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode("utf-8")).hexdigest()
    assert record["attributes"]["MessageGroupId"] == message_group_id(envelope)
    assert record["attributes"]["MessageDeduplicationId"] == str(envelope["update_id"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {}
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].startswith("arn:aws:sqs:us-east-1:")
    assert record["eventSourceARN"].endswith(".fifo")
    assert record["awsRegion"] == "us-east-1"


def test_pipe_input_is_the_array_of_that_one_record():
    assert load_event("aws/pipe_input.json") == [load_event("aws/sqs_record.json")]


def test_the_aws_samples_are_what_the_build_script_writes(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("build_aws_events", EVENTS / "build_aws_events.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    (tmp_path / "telegram").mkdir()
    (tmp_path / "aws").mkdir()
    (tmp_path / "telegram" / "private_text.json").write_bytes((EVENTS / "telegram" / "private_text.json").read_bytes())
    monkeypatch.setattr(build, "EVENTS", tmp_path)

    build.main()

    for name in ("http_api_v2_webhook.json", "sqs_record.json", "pipe_input.json"):
        assert (tmp_path / "aws" / name).read_text("utf-8") == (EVENTS / "aws" / name).read_text("utf-8"), name


def test_the_readme_names_every_sample():
    readme = (EVENTS / "README.md").read_text("utf-8")

    for path in [*EVENTS.glob("telegram/*.json"), *EVENTS.glob("aws/*.json")]:
        assert f"`{path.name}`" in readme, path.name


def _shape(value):
    """Keys all the way down (values' types for leaves): what a handler can read from an event."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def test_the_one_event_builder_builds_the_shape_of_the_sample_http_api_event():
    """The engine, the unit tests and the benchmarks build events with lambda_events.http_api_event;
    it must keep the shape of a real HTTP API payload 2.0 event (the sample, as API Gateway sends it)."""
    sample = load_event("aws/http_api_v2_webhook.json")
    built = http_api_event(sample["body"], headers=sample["headers"])

    assert _shape(built) == _shape(sample)
    assert built["body"] == sample["body"] and built["isBase64Encoded"] is False
    assert built["routeKey"] == built["requestContext"]["routeKey"] == sample["routeKey"]
    assert built["rawPath"] == built["requestContext"]["http"]["path"] == sample["rawPath"]


def test_the_event_builder_encodes_a_body_that_is_not_utf8_as_base64():
    built = http_api_event(b"\xff\xfe{}", headers={"Content-Type": "application/json"})

    assert built["isBase64Encoded"] is True
    assert base64.b64decode(built["body"]) == b"\xff\xfe{}"
    assert built["headers"]["content-type"] == "application/json"  # names lower-cased, as HTTP APIs do
    assert "body" not in http_api_event(None, method="GET")
