"""Attachments out (README: Agent server contract, `attachments`): the real ASL and handlers send the
agent's files after its text. The echo agent answers with files it serves itself (GET /files/<name>);
SendReply downloads each and uploads it to the fake Bot API with its kind's send* method, which
records the SHA-256 of what the chat receives."""

import hashlib
import json

import pytest
from workflow_helpers import HAPPY_PATH, make_update, mark, path_of, settle

from tgrelay.replies import SEND_METHODS
from tgrelay_local.history import state_path

pytestmark = pytest.mark.usefixtures("empty_dead_letter_queue")


def answer_with_files(relay, update: dict, *files: dict, reply: str = "Here you are.") -> None:
    """The echo agent answers `update` with `reply` and `files` ({"kind", "name", "size", ...}),
    served by itself (a url starting with "/" is the agent fake's own)."""
    attachments = [
        {
            "url": f"/files/{file['name']}?size={file['size']}",
            **{k: v for k, v in file.items() if k not in ("name", "size")},
        }
        for file in files
    ]
    relay.agent.add_fault({"reply": reply, "attachments": attachments, "match": {"update_id": update["update_id"]}})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def send_reply_outputs(relay, execution: dict) -> list[dict]:
    """SendReply's function output (the Lambda's Payload, before the ASL's ResultSelector) of each
    successful attempt: it is in the execution history for an operator to read."""
    outputs, state = [], None
    for event in sorted(relay.history(execution["executionArn"]), key=lambda event: event["id"]):
        if event["type"].endswith("StateEntered"):
            state = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "TaskSucceeded" and state == "SendReply":
            outputs.append(json.loads(event["taskSucceededEventDetails"]["output"])["Payload"])
    return outputs


def test_an_attachment_of_each_kind_reaches_the_chat_as_the_agent_served_it(relay):
    since = mark(relay)
    updates = {kind: make_update(text=f"a {kind} please") for kind in SEND_METHODS}
    for kind, update in updates.items():
        answer_with_files(relay, update, {"kind": kind, "name": f"{kind}.bin", "size": 30_000, "caption": kind})
        relay.post_update(update)
    executions = settle(relay, since)

    assert [path_of(relay, execution) for execution in executions] == [HAPPY_PATH] * len(SEND_METHODS)
    for kind, update in updates.items():
        chat = update["message"]["chat"]["id"]
        assert [message["text"] for message in relay.telegram.sent_messages(chat)] == ["Here you are."]
        (got,) = relay.telegram.received_files(chat)
        assert got["method"] == SEND_METHODS[kind]
        assert got["sha256"] == sha(relay.agent.served_file(f"{kind}.bin", 30_000)), kind
        assert (got["caption"], got["file_name"]) == (kind, f"{kind}.bin")
    assert len([call for call in relay.agent.calls_snapshot() if "file" in call]) == len(SEND_METHODS)  # once each


def test_a_send_reply_retried_after_the_text_sends_the_file_once_and_the_text_once(relay):
    update = make_update(text="chart please")
    chat = update["message"]["chat"]["id"]
    answer_with_files(relay, update, {"kind": "photo", "name": "chart.png", "size": 50_000})
    relay.telegram.add_fault({"method": "sendPhoto", "status": 502, "count": 1, "match": {"chat_id": chat}})
    since = mark(relay)
    relay.post_update(update)
    (execution,) = settle(relay, since)

    assert path_of(relay, execution) == HAPPY_PATH
    (send,) = [step for step in state_path(relay.history(execution["executionArn"])) if step.state == "SendReply"]
    assert send.retries == ["TelegramUnavailable"]
    assert [message["text"] for message in relay.telegram.sent_messages(chat)] == ["Here you are."]
    assert [file["sha256"] for file in relay.telegram.received_files(chat)] == [
        sha(relay.agent.served_file("chart.png", 50_000))
    ]
    assert send_reply_outputs(relay, execution) == [{"chunks": 2, "sent": 1}]  # the retry: the photo only


def test_a_file_host_in_trouble_is_retried_and_the_text_is_not_sent_again(relay):
    update = make_update(text="report please")
    chat = update["message"]["chat"]["id"]
    answer_with_files(relay, update, {"kind": "document", "name": "report.pdf", "size": 4_000})
    relay.agent.add_fault({"status": 503, "count": 2, "match": {"file": "report.pdf"}})
    since = mark(relay)
    relay.post_update(update)
    (execution,) = settle(relay, since)

    (send,) = [step for step in state_path(relay.history(execution["executionArn"])) if step.state == "SendReply"]
    assert send.retries == ["AttachmentUnavailable", "AttachmentUnavailable"]
    assert path_of(relay, execution) == HAPPY_PATH
    assert len(relay.telegram.sent_messages(chat)) == 1 and len(relay.telegram.received_files(chat)) == 1


def test_a_download_refused_and_an_upload_refused_each_end_in_a_note_in_the_files_place(relay):
    refused_download = make_update(text="gone")
    answer_with_files(relay, refused_download, {"kind": "photo", "name": "gone.png", "size": 100})
    relay.agent.add_fault({"status": 404, "match": {"file": "gone.png"}})
    refused_upload = make_update(text="bad")
    answer_with_files(relay, refused_upload, {"kind": "animation", "name": "bad.gif", "size": 100})
    bad_chat = refused_upload["message"]["chat"]["id"]
    relay.telegram.add_fault(
        {"method": "sendAnimation", "status": 400, "description": "Bad Request: wrong type of the web page content"}
        | {"match": {"chat_id": bad_chat}}
    )
    since = mark(relay)
    relay.post_update(refused_download)
    relay.post_update(refused_upload)
    executions = {json.loads(e["input"])[0]["update"]["update_id"]: e for e in settle(relay, since)}

    for update, method, reason in (
        (refused_download, "sendPhoto", "its link answered 404"),
        (refused_upload, "sendAnimation", "Telegram refused it (Bad Request: wrong type of the web page content)"),
    ):
        execution = executions[update["update_id"]]
        assert path_of(relay, execution) == HAPPY_PATH  # the reply was delivered: text and note
        kind = {"sendPhoto": "photo", "sendAnimation": "animation"}[method]
        name = {"sendPhoto": "gone.png", "sendAnimation": "bad.gif"}[method]
        assert [message["text"] for message in relay.telegram.sent_messages(update["message"]["chat"]["id"])] == [
            "Here you are.",
            f'[The {kind} "{name}" could not be sent: {reason}.]',
        ]
        (output,) = send_reply_outputs(relay, execution)
        assert output["not_sent"] == [{"item": 1, "method": method, "reason": reason}]
    assert relay.telegram.received_files() == []
    assert relay.dead_letters() == []


def test_a_file_host_down_for_good_ends_in_the_apology_and_a_dead_letter_naming_the_file(relay):
    update = make_update(text="never")
    chat = update["message"]["chat"]["id"]
    answer_with_files(relay, update, {"kind": "voice", "name": "never.ogg", "size": 100})
    relay.agent.add_fault({"status": 503, "count": None, "match": {"file": "never.ogg"}})
    since = mark(relay)
    relay.post_update(update)
    (execution,) = settle(relay, since)

    assert path_of(relay, execution)[-5:] == [
        "RecordFailure",
        "ApologizeToUser",
        "HandOnTurn",
        "SendToDeadLetterQueue",
        "Failed",
    ]
    (send,) = [step for step in state_path(relay.history(execution["executionArn"])) if step.state == "SendReply"]
    assert send.failures == ["AttachmentUnavailable"] * 4  # 3 retries (the ASL's), then caught
    (letter,) = relay.dead_letters()
    cause = letter["MessageAttributes"]["cause"]["StringValue"]
    assert cause.startswith("AttachmentUnavailable: ")
    assert json.loads(cause.split(": ", 1)[1])["errorMessage"] == "voice download: the agent's file host answered 503"
    # The text was delivered, the file was not: the apology follows it (a partly delivered reply
    # is for a person to replay, not automatically).
    texts = [message["text"] for message in relay.telegram.sent_messages(chat)]
    assert texts[0] == "Here you are." and len(texts) == 2


def test_a_file_link_to_instance_metadata_is_a_note_and_the_agents_own_files_still_arrive(relay):
    """Issue 15 review (O1): a link-local address (instance metadata) is never fetched, whatever the
    agent says; the echo agent's files (127.0.0.1, as is the agent itself) still are."""
    update = make_update(text="attach http://169.254.169.254/latest/meta-data/")
    relay.agent.add_fault(
        {
            "reply": "Here you are.",
            "attachments": [
                {"kind": "document", "url": "http://169.254.169.254/latest/meta-data/", "file_name": "meta"},
                {"kind": "document", "url": "/files/own.txt?size=10"},
            ],
            "match": {"update_id": update["update_id"]},
        }
    )
    since = mark(relay)
    relay.post_update(update)
    (execution,) = settle(relay, since)

    assert path_of(relay, execution) == HAPPY_PATH
    chat = update["message"]["chat"]["id"]
    assert [message["text"] for message in relay.telegram.sent_messages(chat)] == [
        "Here you are.",
        '[The document "meta" could not be sent: its address is not allowed (link-local).]',
    ]
    assert [file["file_name"] for file in relay.telegram.received_files(chat)] == ["own.txt"]
