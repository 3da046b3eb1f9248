"""No secret value anywhere an operator or an attacker can read: execution input, output and
history, handler log lines, dead-letter messages, webhook answers — across success and failure."""

import json

import pytest
from workflow_helpers import make_update

from tgrelay_local.clock import RetryClock
from tgrelay_local.engine import LocalRelay

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
    relay.replay_dead_letters()  # leave the DLQ empty
    relay.telegram.reset()
    relay.agent.reset()
    relay.wait_idle()
