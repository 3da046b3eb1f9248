"""SendReplyFunction's files (the reply's attachments) against the loopback fakes: each downloaded
from the agent fake (which serves its own bytes) and uploaded to the fake Bot API with its send*
method; what the chat receives is compared by SHA-256 with what the agent served."""

import hashlib

import pytest
from fakes_fixtures import (  # noqa: F401  (pytest fixtures, used by name)
    agent_server_fixture,
    envelope,
    fake_agent_fixture,
    fake_telegram_fixture,
    relay_fixture,
    telegram_server_fixture,
)
from test_send_reply import EXECUTION, deliver

from tgrelay import reply_files, send_reply
from tgrelay.errors import AttachmentUnavailable, TelegramUnavailable
from tgrelay.replies import SEND_METHODS
from tgrelay.reply_files import UPLOAD_LIMITS
from tgrelay_local.template import Template

PRIVATE_CHAT = 284719365


@pytest.fixture(autouse=True)
def send_reply_timeout(lambda_context):
    """SendReplyFunction's whole Timeout left (template.yaml), as at the start of an attempt."""
    lambda_context.remaining_ms = int(Template().function_properties("SendReplyFunction")["Timeout"]) * 1000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_reply(relay, *files: dict, text: str = "Here you go.", **extra) -> dict:
    """A reply as CallAgent passes it on, its files on the agent fake (`size` bytes each, named `name`)."""
    attachments = []
    for file in files:
        entry = {
            "kind": file["kind"],
            "url": relay.agent.file_url(file["name"], file["size"]),
            "agent_origin": file.get("agent_origin", True),
            "private_hosts": True,  # the agent fake is on 127.0.0.1
        }
        if file.get("file_name", file["name"]) is not None:  # None: the agent gave no file_name
            entry["file_name"] = file.get("file_name", file["name"])
        entry.update({key: file[key] for key in ("caption", "caption_entities") if key in file})
        attachments.append(entry)
    return {"text": text, "attachments": attachments, **extra}


def served(relay, name: str, size: int) -> str:
    return sha(relay.agent.served_file(name, size))


@pytest.mark.parametrize("kind", list(SEND_METHODS))
def test_each_kind_is_uploaded_with_its_method_after_the_text(relay, lambda_context, kind):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    reply = file_reply(relay, {"kind": kind, "name": f"out-{kind}.bin", "size": 20_000, "caption": "the file"})

    result = deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert result == {"chunks": 2, "sent": 2}
    assert [call["method"] for call in relay.telegram.calls_snapshot()] == ["sendMessage", SEND_METHODS[kind]]
    (got,) = relay.telegram.received_files(PRIVATE_CHAT)
    assert got == {
        "method": SEND_METHODS[kind],
        "sha256": served(relay, f"out-{kind}.bin", 20_000),
        "size": 20_000,
        "file_name": f"out-{kind}.bin",
        "caption": "the file",
        "caption_entities": [],
    }
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "2"}


def test_a_retry_after_the_text_sends_only_the_file(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION, chunks_sent={"N": "1"})  # the text went out before
    reply = file_reply(relay, {"kind": "document", "name": "report.pdf", "size": 3000})

    result = deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert result == {"chunks": 2, "sent": 1}

    assert relay.telegram.sent_messages() == []
    assert [file["sha256"] for file in relay.telegram.received_files()] == [served(relay, "report.pdf", 3000)]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "2"}


def test_a_download_the_host_refuses_becomes_a_note_in_its_place(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.agent.add_fault({"status": 404, "match": {"file": "gone.png"}})
    reply = file_reply(
        relay,
        {"kind": "photo", "name": "gone.png", "size": 100, "caption": "chart"},
        {"kind": "document", "name": "kept.txt", "size": 100},
    )

    result = deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert result["not_sent"] == [{"item": 1, "method": "sendPhoto", "reason": "its link answered 404"}]
    assert [message["text"] for message in relay.telegram.sent_messages()] == [
        "Here you go.",
        '[The photo "gone.png" could not be sent: its link answered 404.]',
    ]
    assert [file["file_name"] for file in relay.telegram.received_files()] == ["kept.txt"]
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "3"}


def test_a_file_over_telegrams_limit_is_not_uploaded_and_a_note_says_so(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    reply = file_reply(relay, {"kind": "photo", "name": "huge.png", "size": UPLOAD_LIMITS["photo"] + 1}, text="")

    result = deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert result["not_sent"][0]["reason"] == "it is larger than the 10 MB Telegram accepts for a photo"
    assert [call["method"] for call in relay.telegram.calls_snapshot()] == ["sendMessage"]  # the note only
    assert "could not be sent: it is larger than the 10 MB" in relay.telegram.sent_messages()[0]["text"]


def test_a_file_telegram_refuses_becomes_a_note_naming_telegrams_reason(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault(
        {"method": "sendVideo", "status": 400, "description": "Bad Request: wrong file identifier/HTTP URL specified"}
    )
    reply = file_reply(relay, {"kind": "video", "name": "clip.mp4", "size": 500})

    result = deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    reason = "Telegram refused it (Bad Request: wrong file identifier/HTTP URL specified)"
    assert result["not_sent"] == [{"item": 1, "method": "sendVideo", "reason": reason}]
    assert relay.telegram.sent_messages()[-1]["text"] == f'[The video "clip.mp4" could not be sent: {reason}.]'
    assert relay.telegram.received_files() == []


def test_a_host_in_trouble_is_attachment_unavailable_after_the_text_is_counted(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.agent.add_fault({"status": 503, "match": {"file": "later.png"}})
    reply = file_reply(relay, {"kind": "photo", "name": "later.png", "size": 100})

    with pytest.raises(AttachmentUnavailable, match="photo download: the agent's file host answered 503"):
        deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}  # the retry starts at the file
    assert len(relay.telegram.sent_messages()) == 1 and relay.telegram.received_files() == []


def test_telegram_in_trouble_during_an_upload_is_retried(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    relay.telegram.add_fault({"method": "sendDocument", "status": 502})
    reply = file_reply(relay, {"kind": "document", "name": "a.txt", "size": 100})

    with pytest.raises(TelegramUnavailable, match="sendDocument: Telegram answered 502"):
        deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}


def test_the_agent_token_goes_only_to_the_agents_own_origin(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    reply = file_reply(
        relay,
        {"kind": "document", "name": "own.txt", "size": 10, "agent_origin": True},
        {"kind": "document", "name": "elsewhere.txt", "size": 10, "agent_origin": False},
    )

    deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    fetches = {call["file"]: call for call in relay.agent.calls_snapshot() if "file" in call}
    assert fetches["own.txt"]["authorized"] is True
    assert fetches["elsewhere.txt"]["authorization"] is False


def test_files_only_quote_the_user_and_carry_the_buttons(relay, lambda_context):
    update = envelope("group_text")
    relay.put_claim(update["update_id"], EXECUTION)
    buttons = [[{"text": "More", "callback_data": "more"}]]
    reply = file_reply(
        relay,
        {"kind": "photo", "name": "1.png", "size": 10},
        {"kind": "photo", "name": "2.png", "size": 10},
        text="",
        buttons=buttons,
    )

    deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    first, second = relay.telegram.accepted("sendPhoto")
    assert first["reply_parameters"]["message_id"] == update["message_id"] and "reply_markup" not in first
    assert second["reply_markup"] == {"inline_keyboard": buttons} and "reply_parameters" not in second
    assert relay.telegram.sent_messages() == []


def test_a_caption_keeps_its_formatting_and_loses_it_if_telegram_cannot_parse_it(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    bold = [{"type": "bold", "offset": 0, "length": 4}]
    relay.telegram.add_fault({"method": "sendAudio", "status": 400, "description": "Bad Request: can't parse entities"})
    reply = file_reply(
        relay,
        {"kind": "audio", "name": "a.mp3", "size": 10, "caption": "Song one", "caption_entities": bold},
        {"kind": "audio", "name": "b.mp3", "size": 10, "caption": "Song two", "caption_entities": bold},
    )

    deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert [(file["caption"], file["caption_entities"]) for file in relay.telegram.received_files()] == [
        ("Song one", []),
        ("Song two", bold),
    ]


def test_a_file_starts_only_with_longest_file_ms_left(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    lambda_context.remaining_ms = send_reply.longest_file_ms() - 1  # enough for the text, not for the file
    reply = file_reply(relay, {"kind": "voice", "name": "v.ogg", "size": 10})

    with pytest.raises(TelegramUnavailable, match="time ran out after 1 of 2 items"):
        deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert relay.telegram.received_files() == []
    assert relay.claim(update["update_id"])["chunks_sent"] == {"N": "1"}


def test_the_longest_file_fits_in_the_send_reply_timeout(monkeypatch):
    """A file starts only with longest_file_ms() left, the first item at once: the Timeout holds one
    whole file and the start (a few AWS calls)."""
    function = Template().function_properties("SendReplyFunction")
    inline_wait = function["Environment"]["Variables"]["TELEGRAM_MAX_INLINE_WAIT_SECONDS"]
    monkeypatch.setenv("TELEGRAM_MAX_INLINE_WAIT_SECONDS", inline_wait)
    telegram = send_reply.telegram
    per_call = telegram.TIMEOUT.connect + telegram.TIMEOUT.read
    per_upload = telegram.UPLOAD_TIMEOUT.connect + send_reply.UPLOAD_SECONDS + telegram.UPLOAD_TIMEOUT.read
    expected = reply_files.DOWNLOAD_SECONDS + send_reply.SENDS_PER_CHUNK * per_upload
    assert send_reply.longest_file_ms() == (expected + float(inline_wait) + per_call) * 1000 == 420_000
    assert int(function["Timeout"]) * 1000 >= send_reply.longest_file_ms() + 20_000


def test_a_download_past_its_deadline_is_attachment_unavailable(relay, lambda_context, monkeypatch):
    monkeypatch.setattr(reply_files, "DOWNLOAD_SECONDS", 0.0)
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    reply = file_reply(relay, {"kind": "document", "name": "slow.bin", "size": 200_000})

    with pytest.raises(AttachmentUnavailable, match="document download: took over 0 s"):
        deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)


def test_an_upload_past_its_deadline_is_telegram_unavailable(relay, lambda_context, monkeypatch):
    monkeypatch.setattr(send_reply, "UPLOAD_SECONDS", 0.0)
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    reply = file_reply(relay, {"kind": "document", "name": "big.bin", "size": 200_000})

    with pytest.raises(TelegramUnavailable, match="sendDocument: the upload did not finish within 0 s"):
        deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert relay.telegram.received_files() == []


def test_a_file_the_agent_did_not_name_is_sent_under_its_urls_name(relay, lambda_context):
    update = envelope()
    relay.put_claim(update["update_id"], EXECUTION)
    reply = file_reply(relay, {"kind": "document", "name": "minutes%202026.txt", "size": 10, "file_name": None})

    deliver({"update": update, "reply": reply, "execution": EXECUTION}, lambda_context)

    assert [file["file_name"] for file in relay.telegram.received_files()] == ["minutes 2026.txt"]
