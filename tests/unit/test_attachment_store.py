"""tgrelay.attachments against moto S3 and the fake Bot API: the outcomes the workflow tests do not
reach (tests/workflow/test_attachments.py runs the whole path)."""

import hashlib

import boto3
import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    BOT_TOKEN,
    agent_server_fixture,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)

from tgrelay import attachments
from tgrelay.contract import REQUEST_SCHEMA, validator
from tgrelay.errors import DependencyUnavailable, TelegramUnavailable
from tgrelay_local.fakes import file_bytes

BUCKET = "tgrelay-files-unit"
KEY_SECRET = "stack-secret"


@pytest.fixture
def bucket(relay, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("FILES_BUCKET_NAME", BUCKET)
    monkeypatch.setenv("FILE_URL_MINUTES", "15")
    return s3


def voice(file_id: str = "voice-1", size: int | None = 3000) -> dict:
    return {
        "kind": "voice",
        "file_id": file_id,
        "file_unique_id": f"u-{file_id}",
        "mime_type": "audio/ogg",
        "file_name": None,
        "file_size": size,
        "duration": 2,
        "width": None,
        "height": None,
    }


def turn(*files: dict) -> list[dict]:
    return [{"message_id": 7, "attachments": list(files)}]


@pytest.fixture(autouse=True)
def sizes_known(fake_telegram):
    """The fake Bot API serves the sizes the tests' files say (Telegram knows its files)."""
    for file_id, size in (("voice-1", 3000), ("exact", 70_001)):
        fake_telegram.file_sizes[file_id] = size


def objects(s3) -> dict[str, bytes]:
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def test_object_keys_are_stable_per_file_and_secret_and_unguessable_without_the_secret():
    key = attachments.object_key("AgADpmYAAoivEEk", KEY_SECRET)

    assert key == attachments.object_key("AgADpmYAAoivEEk", KEY_SECRET)
    assert key.startswith("files/") and len(key) == len("files/") + 64
    assert "AgADpmYAAoivEEk" not in key
    assert key != attachments.object_key("AgADpmYAAoivEEk", "another stack")
    assert key != attachments.object_key("AgADpmYAAoivEEl", KEY_SECRET)


def test_a_file_is_stored_once_under_its_key_with_its_type_and_presigned(relay, bucket):
    (first,) = attachments.files_for_agent(turn(voice()), BOT_TOKEN, KEY_SECRET)
    (again,) = attachments.files_for_agent(turn(voice()), BOT_TOKEN, KEY_SECRET)

    key = attachments.object_key("u-voice-1", KEY_SECRET)
    assert objects(bucket) == {key: file_bytes("voice-1", 3000)}
    assert bucket.head_object(Bucket=BUCKET, Key=key)["ContentType"] == "audio/ogg"
    assert [call["method"] for call in relay.telegram.calls_snapshot()] == ["getFile", "download"]  # once
    assert first["url"].split("?")[0].endswith(key) and "X-Amz-Expires=900" in first["url"]
    assert BOT_TOKEN not in first["url"]
    assert (
        {**first, "url": None}
        == {**again, "url": None}
        == {
            "kind": "voice",
            "url": None,
            "mime_type": "audio/ogg",
            "file_name": None,
            "size": 3000,
            "duration": 2,
            "width": None,
            "height": None,
            "message_id": 7,
        }
    )


def test_a_download_longer_than_the_limit_is_cut_off_and_not_stored(relay, bucket, monkeypatch):
    monkeypatch.setattr(attachments, "MAX_DOWNLOAD_BYTES", 1000)
    relay.telegram.file_sizes["long"] = 5000  # the update did not say; getFile lets it through

    (entry,) = attachments.files_for_agent(turn(voice("long", size=None)), BOT_TOKEN, KEY_SECRET)

    assert entry["url"] is None and "larger than" in entry["reason"]
    assert objects(bucket) == {}


def test_a_file_telegram_refuses_reaches_the_agent_with_the_reason(relay, bucket):
    relay.telegram.add_fault({"method": "getFile", "status": 400, "description": "Bad Request: wrong file_id"})

    (entry,) = attachments.files_for_agent(turn(voice()), BOT_TOKEN, KEY_SECRET)

    assert entry["url"] is None
    assert entry["reason"] == "Telegram refused the file: Bad Request: wrong file_id"


def test_the_files_follow_the_request_schemas_file(relay, bucket):
    relay.telegram.add_fault({"method": "getFile", "status": 400, "description": "Bad Request: wrong file_id"})

    files = attachments.files_for_agent(turn(voice("refused"), voice()), BOT_TOKEN, KEY_SECRET)

    assert [file["url"] is None for file in files] == [True, False]
    for file in files:
        validator(REQUEST_SCHEMA, "file")(file)  # raises naming the field that does not


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"method": "getFile", "status": 502}, "getFile: Telegram answered 502"),
        ({"method": "download", "status": 503}, "file download: Telegram answered 503"),
        ({"method": "download", "close": True}, "file download: network error (RemoteProtocolError)"),
    ],
    ids=["getFile-5xx", "download-5xx", "download-dropped"],
)
def test_telegram_trouble_is_retried_and_names_no_url(relay, bucket, fault, message):
    relay.telegram.add_fault(fault)

    with pytest.raises(TelegramUnavailable) as raised:
        attachments.files_for_agent(turn(voice()), BOT_TOKEN, KEY_SECRET)

    assert str(raised.value).startswith(message)
    assert BOT_TOKEN not in str(raised.value) and "http" not in str(raised.value)
    assert objects(bucket) == {}


def test_s3_trouble_is_dependency_unavailable(relay, bucket, monkeypatch):
    monkeypatch.setenv("FILES_BUCKET_NAME", "tgrelay-no-such-bucket")

    with pytest.raises(DependencyUnavailable, match="files bucket|store the file"):
        attachments.files_for_agent(turn(voice()), BOT_TOKEN, KEY_SECRET)


def test_the_stored_bytes_are_the_downloaded_bytes(relay, bucket):
    attachments.files_for_agent(turn(voice("exact", size=70_001)), BOT_TOKEN, KEY_SECRET)

    (stored,) = objects(bucket).values()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(file_bytes("exact", 70_001)).hexdigest()
