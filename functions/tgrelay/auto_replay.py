"""DeadLetterReplayFunction: replay dead letters whose cause was passing, on a schedule.

Each run (an EventBridge schedule, template.yaml `AutoReplaySchedule`) looks at every message in
the dead-letter queue. One whose `error` attribute is a passing kind (`REPLAYABLE_ERRORS`) and
whose wait is over goes back to the updates queue: the n-th replay waits
AUTO_REPLAY_DELAYS_SECONDS[n - 1] after the message was parked (template parameter
`AutoReplayDelays`, the one place those numbers live; `tgrelay retry-plan` shows them). The count
travels in the envelope as `replays` (the workflow writes the envelope back into the dead letter
unchanged), so a replay that fails again comes back with its count. Claims the parking execution
left IN_PROGRESS are released first, as `tgrelay replay` does, so the replay can claim them.

What stays for a person: errors that cannot pass (AgentRejected, AgentBadResponse,
TelegramRejected, a message the queue parked because executions failed to start, an unreadable
body) and updates that used every delay. Their number is the metric `DeadLettersForAPerson`
(DeadLettersForAPersonAlarm). A replay is an ordinary update: it claims again (an update answered
meanwhile stops at AlreadyHandled) and waits for its conversation's turn.
"""

import json
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tgrelay import clients
from tgrelay.claims import release_parked_claims
from tgrelay.dead_letters import decide, replay_delays
from tgrelay.settings import declare, setting

# Leave time to put the messages of this run back before Lambda's timeout.
TIME_LEFT_TO_FINISH_MS = 10_000

SETTINGS = declare(
    __name__,
    required=("AUTO_REPLAY", "AUTO_REPLAY_DELAYS_SECONDS", "DEAD_LETTER_QUEUE_URL", "QUEUE_URL", "TABLE_NAME"),
)

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """A scheduled event ("Scheduled Event"; its `time`, ISO 8601 UTC, is now) -> counts
    {"replayed", "waiting", "for_a_person"} of this run."""
    delays = replay_delays()
    if not delays:
        return {"replayed": 0, "waiting": 0, "for_a_person": 0}
    now = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
    sqs = clients.sqs()
    dead_letter_queue, queue = setting("DEAD_LETTER_QUEUE_URL"), setting("QUEUE_URL")
    counts = {"replayed": 0, "waiting": 0, "for_a_person": 0}
    kept: list[str] = []  # receipt handles to make visible again
    try:
        while context.get_remaining_time_in_millis() > TIME_LEFT_TO_FINISH_MS:
            batch = sqs.receive_message(
                QueueUrl=dead_letter_queue,
                MaxNumberOfMessages=10,
                VisibilityTimeout=120,
                MessageSystemAttributeNames=["SentTimestamp", "MessageGroupId"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                outcome = _handle(message, now, delays, dead_letter_queue, queue)
                counts[outcome] += 1
                if outcome != "replayed":
                    kept.append(message["ReceiptHandle"])
    finally:
        for receipt in kept:
            sqs.change_message_visibility(QueueUrl=dead_letter_queue, ReceiptHandle=receipt, VisibilityTimeout=0)
    metrics.add_metric(name="AutoReplays", unit=MetricUnit.Count, value=counts["replayed"])
    metrics.add_metric(name="DeadLettersForAPerson", unit=MetricUnit.Count, value=counts["for_a_person"])
    logger.info("dead letters looked at", extra=counts)
    return counts


def _handle(message: dict, now: float, delays: list[int], dead_letter_queue: str, queue: str) -> str:
    attributes = {name: value.get("StringValue") for name, value in message.get("MessageAttributes", {}).items()}
    parked_at = int(message["Attributes"]["SentTimestamp"]) / 1000
    decision = decide(message["Body"], attributes.get("error"), parked_at, now, delays)
    if decision == "person":
        return "for_a_person"
    if decision == "wait":
        return "waiting"
    envelope: dict[str, Any] = json.loads(message["Body"])
    replays = int(envelope.get("replays") or 0) + 1
    turn = [envelope["update_id"], *(merged["update_id"] for merged in envelope.get("merged") or [])]
    if attributes.get("execution"):
        release_parked_claims(clients.dynamodb(), setting("TABLE_NAME"), attributes["execution"], turn)
    clients.sqs().send_message(
        QueueUrl=queue,
        MessageBody=json.dumps({**envelope, "replays": replays}, separators=(",", ":")),
        MessageGroupId=message["Attributes"]["MessageGroupId"],
        # The webhook's is the update_id: a fresh id per replay, the same one if this run is retried.
        MessageDeduplicationId=f"{envelope['update_id']}-replay-{replays}",
    )
    clients.sqs().delete_message(QueueUrl=dead_letter_queue, ReceiptHandle=message["ReceiptHandle"])
    logger.info(
        "replayed", extra={"update_id": envelope["update_id"], "replays": replays, "error": attributes.get("error")}
    )
    return "replayed"
