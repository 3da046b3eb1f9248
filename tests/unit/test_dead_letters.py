"""What becomes of a dead letter (tgrelay.dead_letters) and what the apology says about it."""

import json

import pytest

from tgrelay import dead_letters
from tgrelay.send_reply import apology_text

DELAYS = [900, 3600, 14400]


@pytest.fixture(autouse=True)
def auto_replay_on(monkeypatch):
    monkeypatch.setenv("AUTO_REPLAY", "true")
    monkeypatch.setenv("AUTO_REPLAY_DELAYS_SECONDS", "900,3600,14400")
    monkeypatch.setenv("APOLOGY_TEXT", "could not answer")
    monkeypatch.setenv("RETRY_APOLOGY_TEXT", "will try again")


def _body(replays: int | None = None) -> str:
    envelope = {"update_id": 1, "chat_id": 2, "text": "hi"}
    if replays is not None:
        envelope["replays"] = replays
    return json.dumps(envelope)


@pytest.mark.parametrize(
    ("body", "error", "waited", "decision"),
    [
        (_body(), "AgentUnavailable", 899, "wait"),
        (_body(), "AgentUnavailable", 900, "replay"),
        (_body(1), "TelegramUnavailable", 3599, "wait"),
        (_body(1), "TelegramUnavailable", 3600, "replay"),
        (_body(3), "AgentUnavailable", 10**6, "person"),  # every replay used
        (_body(), "AgentRejected", 10**6, "person"),  # cannot pass
        (_body(), "AgentStreamError", 10**6, "person"),  # the agent's own error event: cannot pass either
        (_body(), "AgentStreamBroken", 900, "replay"),
        (_body(), None, 10**6, "person"),  # parked by the queue's redrive: executions failed to start
        ("not json", "AgentUnavailable", 10**6, "person"),
        ('["a list"]', "AgentUnavailable", 10**6, "person"),
        # What a replay cannot carry, or would misread (found by breaking it): a person's.
        ('{"update_id": 1, "replays": -10}', "AgentUnavailable", 10**6, "person"),
        ('{"update_id": 1, "replays": 1e400}', "AgentUnavailable", 10**6, "person"),
        ('{"update_id": 1, "replays": true}', "AgentUnavailable", 10**6, "person"),
        ('{"chat_id": 2}', "AgentUnavailable", 10**6, "person"),
        ('{"update_id": "1"}', "AgentUnavailable", 10**6, "person"),
        ('{"update_id": 1, "merged": "abc"}', "AgentUnavailable", 10**6, "person"),
        ('{"update_id": 1, "merged": [1]}', "AgentUnavailable", 10**6, "person"),
        ('{"update_id": 1, "merged": [{"chat_id": 2}]}', "AgentUnavailable", 10**6, "person"),
        ('{"update_id": 1, "merged": [{"update_id": 3}]}', "AgentUnavailable", 900, "replay"),
    ],
)
def test_decide(body, error, waited, decision):
    assert dead_letters.decide(body, error, parked_at=1000.0, now=1000.0 + waited, delays=DELAYS) == decision


def test_the_delays_come_from_the_settings_and_auto_replay_off_means_none(monkeypatch):
    assert dead_letters.replay_delays() == DELAYS
    monkeypatch.setenv("AUTO_REPLAY", "false")
    assert dead_letters.replay_delays() == []


def test_a_delay_longer_than_sqs_keeps_a_message_is_a_persons(monkeypatch):
    # SQS keeps a dead letter 14 days at most: waiting longer would let it expire unreplayed.
    assert dead_letters.decide(_body(), "AgentUnavailable", 0.0, 10.0**9, [14 * 24 * 3600]) == "person"
    assert dead_letters.decide(_body(), "AgentUnavailable", 0.0, 10.0**9, [14 * 24 * 3600 - 1]) == "replay"
    monkeypatch.setenv("AUTO_REPLAY_DELAYS_SECONDS", "2000000")
    assert not dead_letters.will_be_replayed([{"update_id": 1}], "AgentUnavailable")


def test_the_apology_says_what_will_happen(monkeypatch):
    monkeypatch.setattr("tgrelay.send_reply.chunks_delivered", lambda update_id: 0)
    update = {"update_id": 1}
    assert apology_text(update, "AgentUnavailable") == "will try again"
    assert apology_text({**update, "replays": 1}, "AgentUnavailable") is None  # told already
    # A message that joined the replayed turn was not told yet: the turn's apology is for it.
    newcomer = {"update_id": 2}
    assert apology_text({**update, "replays": 1, "merged": [newcomer]}, "AgentUnavailable") == "will try again"
    told = {**update, "replays": 1, "merged": [{**newcomer, "replays": 1}]}
    assert apology_text(told, "AgentUnavailable") is None
    assert apology_text({**update, "replays": 3}, "AgentUnavailable") == "could not answer"  # replays used up
    assert apology_text(update, "AgentRejected") == "could not answer"
    assert apology_text(update, "") == "could not answer"  # no error name (an older ASL)
    monkeypatch.setenv("AUTO_REPLAY", "false")
    assert apology_text(update, "AgentUnavailable") == "could not answer"
