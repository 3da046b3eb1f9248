"""No secret value anywhere an operator or an attacker can read: execution input, output and
history, handler log lines, dead-letter messages, webhook answers — across success and failure."""

import json

import pytest
from workflow_helpers import make_update

from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay
from tgrelay_local.fakes import FakeAgent

BOT_TOKEN = "5550001112:TEST-secret-bot-token-QXJ7Zk9wcmV0"
AGENT_TOKEN = "agent-token-secret-7d1e2f"
WEBHOOK_SECRET = "webhook-secret-token-0a9b8c7d"
SECRETS = (BOT_TOKEN, AGENT_TOKEN, WEBHOOK_SECRET)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("logs") / "handlers.log"
    with LocalRelay(
        clock=RetryClock("recorded", jitter=1.0),
        bot_token=BOT_TOKEN,
        agent_token=AGENT_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
        log_path=log_path,
    ) as engine:
        yield engine


pytestmark = pytest.mark.usefixtures("empty_dead_letter_queue")


def test_no_secret_in_histories_logs_dead_letters_or_answers(relay):
    answers = []
    happy = make_update(text="hello")
    answers.append(relay.post_update(happy))
    retried = make_update(text="agent flaky")
    relay.agent.add_fault({"status": 503, "count": 1, "match": {"update_id": retried["update_id"]}})
    answers.append(relay.post_update(retried))
    rejected = make_update(text="agent rejects")
    relay.agent.add_fault({"status": 401, "match": {"update_id": rejected["update_id"]}})
    answers.append(relay.post_update(rejected))
    malformed = make_update(text="agent garbles")
    relay.agent.add_fault({"body": "<html>oops</html>", "match": {"update_id": malformed["update_id"]}})
    answers.append(relay.post_update(malformed))
    blocked = make_update(text="blocked")
    relay.telegram.add_fault({"status": 403, "match": {"chat_id": blocked["message"]["chat"]["id"]}})
    answers.append(relay.post_update(blocked))
    telegram_refuses = make_update(text="telegram refuses")
    relay.telegram.add_fault(
        {"status": 400, "description": "Bad Request: nope", "match": {"text": "echo: telegram refuses"}}
    )
    answers.append(relay.post_update(telegram_refuses))
    answers.append(relay.post_update(happy, secret="wrong"))
    answers.append(relay.post_update(None, raw=b"{not json"))
    relay.wait_idle()

    executions = relay.executions()
    statuses = sorted(execution["status"] for execution in executions)
    assert statuses.count("FAILED") == 3 and statuses.count("SUCCEEDED") == 3  # both paths were taken
    dead = relay.dead_letters()
    assert len(dead) == 3
    log_lines = relay.log_path.read_text().splitlines()
    assert len(log_lines) > 10  # the handlers did log

    readable = {
        "execution descriptions": json.dumps(executions, default=str),
        "execution histories": json.dumps([relay.history(e["executionArn"]) for e in executions], default=str),
        "dead letters": json.dumps(dead),
        "handler logs": "\n".join(log_lines),
        "webhook answers": "\n".join(answer.text for answer in answers),
    }
    for where, text in readable.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret value appears in the {where}"


def test_no_secret_in_the_paths_files_take(relay):
    """Files in: the S3 keys, the URLs and requests the agent gets, the logs, the histories and the
    dead letter of a file whose download keeps failing carry no secret (the bot token is in every
    Bot API file URL tgrelay fetches from)."""
    photo = make_update(text="look")
    photo["message"]["photo"] = [{"file_id": "secret-scan-photo", "file_unique_id": "ss-1", "file_size": 2048}]
    too_big = make_update(text="too big")
    too_big["message"]["document"] = {"file_id": "secret-scan-big", "file_unique_id": "ss-2", "file_size": 30 << 20}
    broken = make_update(text="broken download")
    broken["message"]["voice"] = {"file_id": "secret-scan-voice", "file_unique_id": "ss-3", "file_size": 512}
    relay.telegram.add_fault({"method": "download", "status": 502, "count": None})  # every download fails...
    relay.post_update(broken)
    relay.wait_idle()
    relay.telegram.reset()  # ...until the broken one is dead-lettered
    relay.post_update(photo)
    relay.post_update(too_big)
    relay.wait_idle()

    dead = relay.dead_letters()
    assert [json.loads(letter["Body"])["update_id"] for letter in dead] == [broken["update_id"]]
    assert "file download: Telegram answered 502" in json.dumps(dead)
    requests = [call["request"] for call in relay.agent.calls_snapshot()]
    urls = [file["url"] for request in requests for file in request.get("attachments", []) if file["url"]]
    fetched = [call["fetched"][0]["status"] for call in relay.agent.calls_snapshot() if "fetched" in call]
    assert len(urls) == 1 and sorted(fetched, key=str) == [200, None]  # the photo; the one over 20 MB has no URL
    bucket = relay.template.refs["FilesBucket"]
    keys = [item["Key"] for item in relay.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys  # the photo was stored
    executions = relay.executions()
    readable = {
        "S3 keys": "\n".join(keys),
        "agent URLs": "\n".join(urls),
        "agent requests": json.dumps(requests),
        "handler logs": relay.log_path.read_text(),
        "execution histories": json.dumps([relay.history(e["executionArn"]) for e in executions], default=str),
        "dead letters": json.dumps(dead),
    }
    for where, text in readable.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret value appears in the {where}"
    assert "files fetched" in readable["handler logs"]
    # A presigned URL carries the function's session token: only the agent gets it.
    for where in ("handler logs", "execution histories", "dead letters"):
        assert "X-Amz-Signature" not in readable[where] and "X-Amz-Security-Token" not in readable[where], where


def test_no_secret_in_the_paths_the_agents_files_take(relay):
    """Files out: the agent's answer names files (on its own origin, where its token goes along,
    and on another, where it must not); SendReply downloads and uploads them (the bot token is in
    every upload URL). Uploaded, refused by their host, refused by Telegram, and a host down for
    good (dead-lettered): no secret in the histories, logs, dead letters, or what reached the chat;
    the agent token reached the agent's own origin only."""
    other = FakeAgent()  # another origin, serving the same kind of files
    other.start()
    try:
        sent = make_update(text="files please")
        relay.agent.add_fault(
            {
                "reply": "Here.",
                "attachments": [
                    {"kind": "photo", "url": "/files/own.png?size=2048", "caption": "own"},
                    {"kind": "document", "url": other.file_url("other.pdf", 4096)},
                    {"kind": "document", "url": "/files/gone.pdf?size=1"},
                    {"kind": "voice", "url": "/files/refused.ogg?size=100"},
                ],
                "match": {"update_id": sent["update_id"]},
            }
        )
        relay.agent.add_fault({"status": 404, "match": {"file": "gone.pdf"}})
        relay.telegram.add_fault(
            {"method": "sendVoice", "status": 400, "description": "Bad Request: VOICE_MESSAGES_FORBIDDEN"}
        )
        down = make_update(text="file host down")
        relay.agent.add_fault(
            {
                "reply": "Here.",
                "attachments": [{"kind": "video", "url": "/files/down.mp4?size=100"}],
                "match": {"update_id": down["update_id"]},
            }
        )
        relay.agent.add_fault({"status": 503, "count": None, "match": {"file": "down.mp4"}})
        relay.post_update(sent)
        relay.post_update(down)
        relay.wait_idle()

        files = relay.telegram.received_files(sent["message"]["chat"]["id"])
        assert [file["method"] for file in files] == ["sendPhoto", "sendDocument"]  # the others became notes
        dead = relay.dead_letters()
        assert [json.loads(letter["Body"])["update_id"] for letter in dead] == [down["update_id"]]
        own = [call for call in relay.agent.calls_snapshot() if "file" in call]
        assert own and all(call["authorized"] for call in own)  # the agent's origin: with its token
        (elsewhere,) = [call for call in other.calls_snapshot() if "file" in call]
        assert elsewhere["authorization"] is False  # another origin: no Authorization header at all
        executions = relay.executions()
        readable = {
            "execution histories": json.dumps([relay.history(e["executionArn"]) for e in executions], default=str),
            "handler logs": relay.log_path.read_text(),
            "dead letters": json.dumps(dead),
            "the chat": json.dumps(relay.telegram.calls_snapshot(), default=str),
        }
        for where, text in readable.items():
            for secret in SECRETS:
                assert secret not in text, f"a secret value appears in the {where}"
        assert "file not sent, a note instead" in readable["handler logs"]
    finally:
        other.stop()
