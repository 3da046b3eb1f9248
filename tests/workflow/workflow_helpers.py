"""Helpers for the workflow tests: fresh updates, posting them, the executions they started and
their paths, the dead-letter queue.

Tests share one engine per module (conftest.py), so most helpers look only at the executions a
test started: `mark` before, then `settle`, `started_since` or `executions_for(..., since=mark)`."""

import copy
import json
import time
from itertools import count
from pathlib import Path
from typing import Any

import httpx

from tgrelay_local.engine import SECRET_HEADER, LocalRelay, take_messages
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


def executions_for(relay: LocalRelay, update_id: int, since: int = 0) -> list[dict]:
    """describe_execution of the executions for `update_id` started after the mark `since`."""
    return [e for e in started_since(relay, since) if envelope_of(e)["update_id"] == update_id]


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


def configure(relay: LocalRelay, monkeypatch, name: str, value: str) -> None:
    """Set the environment variable `name` to `value`, undone after the test, the way
    update-function-configuration would: on every function that has it. Each function has its own
    environment (local/tgrelay_local/lambda_environment.py): the test process's os.environ is not it.
    ValueError if no function has `name` (a misspelt setting would change nothing)."""
    targets = [function.environment for function in relay.functions_by_id.values() if name in function.environment]
    if not targets:
        raise ValueError(f"no function of the template has {name}")
    for environment in targets:
        monkeypatch.setitem(environment, name, value)


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError("condition not reached")


# One client for all posts: LocalRelay.post_update makes a new one (and an SSL context) per request.
HTTP = httpx.Client(timeout=30, trust_env=False)
_FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def mark(relay: LocalRelay) -> int:
    """A mark: executions started after it are this test's."""
    return len(relay.pipe.started)


def started_since(relay: LocalRelay, since: int) -> list[dict]:
    """describe_execution of every execution started after `since`, in start order."""
    return [relay.describe(arn) for arn in list(relay.pipe.started[since:])]


def post(relay: LocalRelay, update: Any = None, *, body: bytes | None = None, **headers: str) -> httpx.Response:
    """POST to the webhook like LocalRelay.post_update, on a shared connection."""
    content = json.dumps(update).encode() if body is None else body
    headers = {SECRET_HEADER: relay.webhook_secret, "content-type": "application/json", **headers}
    return HTTP.post(relay.webhook_url, content=content, headers=headers)


def settle(relay: LocalRelay, since: int, timeout: float = 60, poll: float = 0.04) -> list[dict]:
    """Wait until the source queue is empty, the pipe idle and no execution since `since` runs;
    then describe_execution of those executions, in start order."""
    deadline = time.monotonic() + timeout
    finished: dict[str, dict] = {}  # describe_execution is slow in moto: each execution once finished
    while time.monotonic() < deadline:
        counts = relay.sqs.get_queue_attributes(
            QueueUrl=relay.pipe.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if not sum(int(value) for value in counts.values()) and not relay.pipe.busy:
            arns = list(relay.pipe.started[since:])
            for arn in arns:
                if arn not in finished:
                    description = relay.describe(arn)
                    if description["status"] not in _FINISHED:
                        break
                    finished[arn] = description
            else:
                if not relay.pipe.busy and len(relay.pipe.started) == since + len(arns):
                    return [finished[arn] for arn in arns]
        time.sleep(poll)
    raise TimeoutError(f"still busy after {timeout} s")


def take_dead_letters(relay: LocalRelay) -> list[dict]:
    """Every message in the dead-letter queue, received and deleted (the queue is left empty)."""
    return list(take_messages(relay.sqs, relay.dead_letter_queue_url))


def update_id_of(message: dict) -> int:
    """The update_id of an SQS message carrying an envelope."""
    return json.loads(message["Body"])["update_id"]
