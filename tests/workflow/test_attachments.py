"""Attachments in (README: Attachments): the real ASL and handlers fetch each file from the fake Bot
API into the stack's bucket (moto S3, served over HTTP) and give the agent a presigned URL, which
the echo agent fetches: what it got (status, size, SHA-256) is in its recorded call (`fetched`)."""

import hashlib
import threading
import uuid
from unittest import mock

from workflow_helpers import HAPPY_PATH, configure, make_update, mark, path_of, settle, wait_for

from tgrelay.attachments import MAX_DOWNLOAD_BYTES, object_key
from tgrelay_local.engine import FAKE_BOT_TOKEN, LocalRelay

# One of each file kind Telegram sends, with the metadata its update carries.
FILES = {
    "photo": [
        {"file_unique_id": "small", "width": 90, "height": 68, "file_size": 1_412},
        {"file_unique_id": "large", "width": 1280, "height": 960, "file_size": 35_127},
    ],
    "document": {"file_name": "invoice.pdf", "mime_type": "application/pdf", "file_size": 48_213},
    "voice": {"duration": 4, "mime_type": "audio/ogg", "file_size": 11_854},
    "audio": {"duration": 181, "mime_type": "audio/mpeg", "file_name": "song.mp3", "file_size": 90_001},
    "video": {"duration": 9, "width": 640, "height": 360, "mime_type": "video/mp4", "file_size": 120_000},
    "video_note": {"duration": 5, "length": 240, "file_size": 60_000},
    "animation": {"duration": 2, "width": 320, "height": 240, "mime_type": "video/mp4", "file_size": 30_000},
}


def fresh(file: dict) -> dict:
    """`file` with ids no other test uses (the bucket outlives a test: keys are per file)."""
    suffix = uuid.uuid4().hex[:12]
    return {**file, "file_id": f"F-{suffix}-{file.get('file_unique_id', '')}", "file_unique_id": f"U-{suffix}"}


def with_file(kind: str, file, *, caption: str | None = None, chat_id: int | None = None, **fields) -> dict:
    """A private message carrying `file` as `kind`, without text (a caption if given)."""
    update = make_update(chat_id=chat_id)
    message = update["message"]
    del message["text"]
    message[kind] = [fresh(size) for size in file] if kind == "photo" else fresh(file)
    if caption is not None:
        message["caption"] = caption
    message.update(fields)
    return update


def the_file(update: dict) -> dict:
    """The file of an update the agent should get: a photo's largest size."""
    message = update["message"]
    kind = next(kind for kind in FILES if kind in message)
    return message[kind][-1] if kind == "photo" else message[kind]


def agent_calls(relay: LocalRelay, chat_id: int) -> list[dict]:
    return [call for call in relay.agent.calls_snapshot() if call["request"]["chat"]["id"] == chat_id]


def stored_keys(relay: LocalRelay) -> list[str]:
    bucket = relay.template.refs["FilesBucket"]
    return [item["Key"] for item in relay.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def telegram_calls(relay: LocalRelay, method: str) -> list[dict]:
    return [call for call in relay.telegram.calls_snapshot() if call["method"] == method]


def test_every_file_kind_reaches_the_agent_as_a_url_to_the_bytes_telegram_served(relay):
    since = mark(relay)
    updates = {kind: with_file(kind, file) for kind, file in FILES.items()}
    for update in updates.values():
        assert relay.post_update(update).json() == {"ok": True}
    executions = settle(relay, since)

    assert [path_of(relay, execution) for execution in executions] == [HAPPY_PATH] * len(FILES)
    for kind, update in updates.items():
        file = the_file(update)
        (call,) = agent_calls(relay, update["message"]["chat"]["id"])
        (attachment,) = call["request"]["attachments"]
        (fetched,) = call["fetched"]
        served = relay.telegram.served_bytes(file["file_id"])
        assert len(served) == file["file_size"]  # the fake serves the size the update gave
        assert fetched["status"] == 200, kind
        assert fetched["sha256"] == hashlib.sha256(served).hexdigest(), kind
        assert FAKE_BOT_TOKEN not in attachment["url"] and relay.telegram_api_url not in attachment["url"]
        assert attachment["kind"] == kind and attachment["size"] == file["file_size"]
        assert attachment["message_id"] == update["message"]["message_id"]
        assert call["request"]["text"] == ""
    (photo,) = agent_calls(relay, updates["photo"]["message"]["chat"]["id"])
    assert {key: photo["request"]["attachments"][0][key] for key in ("width", "height", "mime_type")} == {
        "width": 1280,
        "height": 960,
        "mime_type": "image/jpeg",
    }
    assert relay.telegram.sent_messages(updates["photo"]["message"]["chat"]["id"])[0]["text"] == (
        "echo: [photo 1280x960 image/jpeg 34 KB]"
    )
    voice_chat = updates["voice"]["message"]["chat"]["id"]
    assert relay.telegram.sent_messages(voice_chat)[0]["text"] == "echo: [voice 4 s audio/ogg 12 KB]"


def test_a_caption_is_the_text_and_the_file_rides_along(relay):
    update = with_file("document", FILES["document"], caption="Is this invoice correct?")
    relay.post_update(update)
    relay.wait_idle()

    (call,) = agent_calls(relay, update["message"]["chat"]["id"])
    assert call["request"]["text"] == "Is this invoice correct?"
    assert [attachment["file_name"] for attachment in call["request"]["attachments"]] == ["invoice.pdf"]


def test_a_file_over_20_mb_reaches_the_agent_without_a_url_and_with_the_reason(relay):
    declared = with_file("document", {**FILES["document"], "file_size": MAX_DOWNLOAD_BYTES + 1})
    # No size in the update: getFile finds out (Telegram answers "file is too big").
    undeclared = with_file("video", {key: value for key, value in FILES["video"].items() if key != "file_size"})
    relay.telegram.file_sizes[the_file(undeclared)["file_id"]] = 25 * 1024 * 1024
    since = mark(relay)
    relay.post_update(declared)
    relay.post_update(undeclared)
    executions = settle(relay, since)

    assert [path_of(relay, execution) for execution in executions] == [HAPPY_PATH, HAPPY_PATH]
    for update in (declared, undeclared):
        (call,) = agent_calls(relay, update["message"]["chat"]["id"])
        (attachment,) = call["request"]["attachments"]
        assert attachment["url"] is None
        assert "20 MB" in attachment["reason"]
        assert "not fetched" in relay.telegram.sent_messages(update["message"]["chat"]["id"])[0]["text"]
    got_file = [call["payload"]["file_id"] for call in telegram_calls(relay, "getFile")]
    assert the_file(declared)["file_id"] not in got_file  # the update said: no getFile
    assert the_file(undeclared)["file_id"] in got_file
    assert telegram_calls(relay, "download") == []


def test_a_retried_call_agent_does_not_fetch_or_store_a_file_twice(relay):
    update = with_file("voice", FILES["voice"])
    relay.agent.add_fault({"status": 503, "count": 1, "match": {"update_id": update["update_id"]}})
    keys_before = set(stored_keys(relay))
    relay.post_update(update)
    relay.wait_idle()

    first, second = agent_calls(relay, update["message"]["chat"]["id"])
    assert first["request"]["attachments"][0]["url"] and second["fetched"][0]["status"] == 200
    assert len(telegram_calls(relay, "getFile")) == len(telegram_calls(relay, "download")) == 1
    assert set(stored_keys(relay)) - keys_before == {
        object_key(the_file(update)["file_unique_id"], relay.webhook_secret)
    }


def test_a_failed_download_is_retried_and_the_agent_asked_once(relay):
    update = with_file("photo", FILES["photo"])
    relay.telegram.add_fault({"method": "download", "status": 502, "count": 2})
    relay.post_update(update)
    relay.wait_idle()

    (call,) = agent_calls(relay, update["message"]["chat"]["id"])
    assert (
        call["fetched"][0]["sha256"]
        == hashlib.sha256(relay.telegram.served_bytes(the_file(update)["file_id"])).hexdigest()
    )
    assert len(telegram_calls(relay, "download")) == 3
    assert len(relay.clock.take_waits()) == 2  # CallAgent's TelegramUnavailable retrier


def album_of_two(chat_id: int) -> list[dict]:
    group = uuid.uuid4().hex
    first = with_file("photo", FILES["photo"], caption="Which colour?", chat_id=chat_id, media_group_id=group)
    second = with_file("photo", FILES["photo"], chat_id=chat_id, media_group_id=group)
    second["update_id"] = first["update_id"] + 1
    return [first, second]


def post_album(relay: LocalRelay, photos: list[dict]) -> list[dict]:
    """Telegram delivers an album's messages one after another within milliseconds: all are
    registered at the webhook before the first one's execution starts. Their executions start
    one by one (one FIFO group); here the others start only once the first waits for its turn,
    the order in which the first would otherwise take its turn alone."""
    since = mark(relay)
    real_poll = relay.pipe.poll_once
    first_started, release = threading.Event(), threading.Event()

    def poll_once() -> bool:
        if not release.is_set() and (first_started.is_set() or not registered.is_set()):
            return False
        started = real_poll()
        if started:
            first_started.set()
        return started

    registered = threading.Event()
    with mock.patch.object(relay.pipe, "poll_once", poll_once):
        for photo in photos:
            assert relay.post_update(photo).json() == {"ok": True}
        registered.set()
        conversation = f"telegram:{photos[0]['message']['chat']['id']}"
        first = photos[0]["update_id"]
        wait_for(lambda: relay.turn_statuses(conversation).get(first) in ("WAITING", "TURN"))
        release.set()
        return settle(relay, since)


def test_an_album_is_one_turn_when_queued_messages_merge(relay):
    photos = album_of_two(chat_id=7_300_001)
    executions = post_album(relay, photos)

    (call,) = agent_calls(relay, 7_300_001)
    assert call["request"]["text"] == "Which colour?"
    assert [attachment["message_id"] for attachment in call["request"]["attachments"]] == [
        photo["message"]["message_id"] for photo in photos
    ]
    assert [fetched["status"] for fetched in call["fetched"]] == [200, 200]
    assert [path_of(relay, execution)[-1] for execution in executions] == ["MarkDone", "MergedIntoTurn"]
    (reply,) = relay.telegram.sent_messages(7_300_001)
    assert reply["text"] == "echo: Which colour? [photo 1280x960 image/jpeg 34 KB] [photo 1280x960 image/jpeg 34 KB]"


def test_an_album_is_one_turn_per_photo_when_queued_messages_are_answered_each(relay, monkeypatch):
    configure(relay, monkeypatch, "QUEUED_MESSAGES", "each")
    photos = album_of_two(chat_id=7_300_002)
    executions = post_album(relay, photos)

    calls = agent_calls(relay, 7_300_002)
    assert [len(call["request"]["attachments"]) for call in calls] == [1, 1]
    assert [path_of(relay, execution) for execution in executions] == [HAPPY_PATH, HAPPY_PATH]


def test_a_location_a_venue_and_a_contact_reach_the_agent_as_fields(relay):
    location = make_update()
    del location["message"]["text"]
    location["message"]["location"] = {"latitude": 52.52, "longitude": 13.405}
    contact = make_update()
    del contact["message"]["text"]
    contact["message"]["contact"] = {"phone_number": "+4912345", "first_name": "Bob", "user_id": 42}
    relay.post_update(location)
    relay.post_update(contact)
    relay.wait_idle()

    (call,) = agent_calls(relay, location["message"]["chat"]["id"])
    assert call["request"]["messages"][0]["location"]["latitude"] == 52.52 and "attachments" not in call["request"]
    assert relay.telegram.sent_messages(location["message"]["chat"]["id"])[0]["text"] == "echo: [location 52.52,13.405]"
    (call,) = agent_calls(relay, contact["message"]["chat"]["id"])
    assert call["request"]["messages"][0]["contact"]["phone_number"] == "+4912345"
