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
        (_body(), None, 10**6, "person"),  # parked by the queue's redrive: executions failed to start
        ("not json", "AgentUnavailable", 10**6, "person"),
        ('["a list"]', "AgentUnavailable", 10**6, "person"),
    ],
)
def test_decide(body, error, waited, decision):
    assert dead_letters.decide(body, error, parked_at=1000.0, now=1000.0 + waited, delays=DELAYS) == decision


def test_the_delays_come_from_the_settings_and_auto_replay_off_means_none(monkeypatch):
    assert dead_letters.replay_delays() == DELAYS
    monkeypatch.setenv("AUTO_REPLAY", "false")
    assert dead_letters.replay_delays() == []


def test_the_apology_says_what_will_happen(monkeypatch):
    update = {"update_id": 1}
    assert apology_text(update, "AgentUnavailable") == "will try again"
    assert apology_text({**update, "replays": 1}, "AgentUnavailable") is None  # told already
    assert apology_text({**update, "replays": 3}, "AgentUnavailable") == "could not answer"  # replays used up
    assert apology_text(update, "AgentRejected") == "could not answer"
    assert apology_text(update, "") == "could not answer"  # no error name (an older ASL)
    monkeypatch.setenv("AUTO_REPLAY", "false")
    assert apology_text(update, "AgentUnavailable") == "could not answer"
