"""Helpers for the workflow tests: fresh updates, executions per update, their paths."""

import copy
import json
import time
from itertools import count
from pathlib import Path

from tgrelay_local.engine import LocalRelay
from tgrelay_local.history import state_path

EVENTS = Path(__file__).resolve().parents[2] / "events" / "telegram"
# The paths through statemachine/relay.asl.json (DESIGN.md §4).
HAPPY_PATH = ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkDone"]
DUPLICATE_PATH = ["CheckEnvelope", "ClaimUpdate", "AlreadyHandled"]
# A flood wait (Telegram 429 with a long retry_after): the first one's states, SendReply again at the end.
FLOOD_ROUND = ["FloodWaitedBefore", "FirstFloodWait", "AddFloodWait", "WithinFloodWaitBound", "FloodWait", "SendReply"]
UNDELIVERABLE_PATH = ["CheckEnvelope", "ClaimUpdate", "WaitForTurn", "CallAgent", "SendReply", "MarkUndeliverable"]
# A terminal failure once the agent was called: compensation, apology, the turn handed on, parked.
AGENT_FAILURE_PATH = [
    "CheckEnvelope",
    "ClaimUpdate",
    "WaitForTurn",
    "CallAgent",
    "RecordFailure",
    "ApologizeToUser",
    "HandOnTurn",
    "SendToDeadLetterQueue",
    "Failed",
]
_ids = count(5_000_000)


def make_update(sample: str = "private_text.json", *, text: str | None = None, chat_id: int | None = None) -> dict:
    """A sample update with a fresh update_id (and chat, unless given), so tests never collide."""
    update = copy.deepcopy(json.loads((EVENTS / sample).read_text()))
    update["update_id"] = next(_ids)
    message = update.get("message") or update["callback_query"]["message"]
    message["chat"]["id"] = chat_id if chat_id is not None else next(_ids)
    if text is not None:
        message["text"] = text
    return update


def chat_of(update: dict) -> int:
    message = update.get("message") or update["callback_query"]["message"]
    return message["chat"]["id"]


def envelope_of(execution: dict) -> dict:
    """The envelope an execution ran for: the pipe's InputTemplate hands over [{update, group_id}]."""
    return json.loads(execution["input"])[0]["update"]


def executions_for(relay: LocalRelay, update_id: int) -> list[dict]:
    found = []
    for arn in relay.pipe.started:
        description = relay.describe(arn)
        if envelope_of(description)["update_id"] == update_id:
            found.append(description)
    return found


def path_of(relay: LocalRelay, execution: dict) -> list[str]:
    return [step.state for step in state_path(relay.history(execution["executionArn"]))]


def deliver_again(relay: LocalRelay, execution: dict, suffix: str) -> None:
    """The same SQS message once more, as after SQS's 5-minute dedupe window (the webhook's
    deduplication id is the update_id; the copy gets another)."""
    record = json.loads(execution["input"])[0]
    relay.sqs.send_message(
        QueueUrl=relay.pipe.queue_url,
        MessageBody=json.dumps(record["update"]),
        MessageGroupId=record["group_id"],
        MessageDeduplicationId=f"{record['update']['update_id']}-{suffix}",
    )


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError("condition not reached")
