"""Constants and sample loading shared by the unit tests (imported by conftest.py and the test modules)."""

import json
import os
import time
from functools import cache
from pathlib import Path

import boto3

from tgrelay.envelope import session_key
from tgrelay_local.template import load_template

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
# The tables' names in the moto account (the local engine's "<stack>-<logical id>").
CLAIMS_TABLE_NAME = "tgrelay-UpdatesTable"
TURNS_TABLE_NAME = "tgrelay-TurnsTable"


def load_event(relative: str):
    """A sample from events/, e.g. "telegram/private_text.json"."""
    return json.loads((EVENTS / relative).read_text("utf-8"))


def update(name: str) -> dict:
    """A Telegram sample update by file stem, e.g. "private_text"."""
    return load_event(f"telegram/{name}.json")


@cache
def _template() -> dict:
    return load_template()


def create_table(dynamodb, logical_id: str, name: str) -> None:
    """Create the DynamoDB table `logical_id` of template.yaml as `name` (its keys as the template declares them)."""
    properties = _template()["Resources"][logical_id]["Properties"]
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
        BillingMode=properties["BillingMode"],
    )


def global_variable(name: str) -> str:
    """An environment variable every function gets from the template's Globals."""
    return str(_template()["Globals"]["Function"]["Environment"]["Variables"][name])


def hold_turn(envelope: dict, execution: str, *, lease_until: int | None = None) -> None:
    """The TURN item WaitForTurn's grant leaves: `execution` holds the turn of `envelope`'s conversation."""
    lease = int(time.time()) + 600 if lease_until is None else lease_until
    boto3.client("dynamodb").put_item(
        TableName=os.environ["TURNS_TABLE_NAME"],
        Item={
            "conversation": {"S": session_key(envelope)},
            "update_id": {"N": str(envelope["update_id"])},
            "status": {"S": "TURN"},
            "registered_at": {"N": str(envelope["received_at"])},
            "expires_at": {"N": str(envelope["expires_at"])},
            "execution": {"S": execution},
            "token": {"S": f"token-of-{execution}"},
            "envelope": {"S": json.dumps({k: v for k, v in envelope.items() if k != "merged"})},
            "carried": {"S": "[]"},
            "lease_until": {"N": str(lease)},
        },
    )
