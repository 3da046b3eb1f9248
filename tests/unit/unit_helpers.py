"""Constants and sample loading shared by the unit tests (imported by conftest.py and the test modules)."""

import json
from pathlib import Path

EVENTS = Path(__file__).resolve().parents[2] / "events"

# The secret the moto Secrets Manager holds for the tests (and the sample event's header).
WEBHOOK_SECRET = "local-webhook-secret"
BOT_TOKEN = "123:abc"
AGENT_TOKEN = "agent-tok"
DEDUPE_TTL_SECONDS = 1296000
# The bot the samples talk to (@tgrelay_demo_bot, the sender of callback_query.json's message).
SAMPLES_BOT_USERNAME = "tgrelay_demo_bot"
SAMPLES_BOT_ID = 7012345678
# received_at of events/aws/sqs_record.json
SAMPLE_RECEIVED_AT = 1763800000


def load_event(relative: str):
    """A sample from events/, e.g. "telegram/private_text.json"."""
    return json.loads((EVENTS / relative).read_text("utf-8"))


def update(name: str) -> dict:
    """A Telegram sample update by file stem, e.g. "private_text"."""
    return load_event(f"telegram/{name}.json")
