"""Helpers for tests that run many updates on one engine: look only at the executions a test started.

LocalRelay.wait_idle and workflow_helpers.executions_for describe every execution the engine ever
started, which grows with each test; these describe only the ones started since a mark.
"""

import json
import time
from typing import Any

import httpx

from tgrelay_local.engine import SECRET_HEADER, LocalRelay, take_messages

# One client for all posts: LocalRelay.post_update makes a new one (and an SSL context) per request.
HTTP = httpx.Client(timeout=30, trust_env=False)
_FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def mark(relay: LocalRelay) -> int:
    """A mark: executions started after it are this test's."""
    return len(relay.pipe.started)


def started_since(relay: LocalRelay, since: int) -> list[dict]:
    """describe_execution of every execution started after `since`, in start order."""
    return [relay.describe(arn) for arn in list(relay.pipe.started[since:])]


def executions_of(relay: LocalRelay, since: int, update_id: int) -> list[dict]:
    return [e for e in started_since(relay, since) if update_of(e) == update_id]


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


def update_of(execution: dict) -> int:
    """The update_id an execution ran for."""
    return json.loads(execution["input"])[0]["update"]["update_id"]
