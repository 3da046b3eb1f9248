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

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tgrelay import clients
from tgrelay.claims import claim_outcomes, release_parked_claims
from tgrelay.dead_letters import decide, parse_turn, replay_delays
from tgrelay.settings import declare, setting

# Claim statuses of an update that needs no replay: replied, or the chat is gone.
ANSWERED = ("DONE", "UNDELIVERABLE")

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
    {"replayed", "waiting", "for_a_person", "answered"} of this run ("answered": every update of
    the dead letter was answered meanwhile; the letter is deleted)."""
    counts = {"replayed": 0, "waiting": 0, "for_a_person": 0, "answered": 0}
    delays = replay_delays()
    if not delays:
        return counts
    now = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
    sqs = clients.sqs()
    dead_letter_queue = setting("DEAD_LETTER_QUEUE_URL")
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
                try:
                    outcome = _handle(message, now, delays)
                except Exception:
                    # One letter's trouble (or a service's) must not stop the others: this one waits,
                    # counted for a person so that a lasting failure pages.
                    logger.exception("dead letter not handled", extra={"message_id": message.get("MessageId")})
                    outcome = "for_a_person"
                counts[outcome] += 1
                if outcome in ("waiting", "for_a_person"):
                    kept.append(message["ReceiptHandle"])
    finally:
        for receipt in kept:
            sqs.change_message_visibility(QueueUrl=dead_letter_queue, ReceiptHandle=receipt, VisibilityTimeout=0)
        # Published even when the run fails: the alarm watches this number.
        metrics.add_metric(name="AutoReplays", unit=MetricUnit.Count, value=counts["replayed"])
        metrics.add_metric(name="DeadLettersForAPerson", unit=MetricUnit.Count, value=counts["for_a_person"])
        logger.info("dead letters looked at", extra=counts)
    return counts


def _handle(message: dict, now: float, delays: list[int]) -> str:
    """One dead letter: replayed, left waiting, left for a person, or deleted as answered."""
    attributes = {name: value.get("StringValue") for name, value in message.get("MessageAttributes", {}).items()}
    parked_at = int(message["Attributes"]["SentTimestamp"]) / 1000
    decision = decide(message["Body"], attributes.get("error"), parked_at, now, delays)
    if decision != "replay":
        return "waiting" if decision == "wait" else "for_a_person"
    turn = parse_turn(message["Body"])
    assert turn is not None  # decide checked it
    dynamodb, table = clients.dynamodb(), setting("TABLE_NAME")
    outcomes = claim_outcomes(dynamodb, table, [envelope["update_id"] for envelope in turn])
    status, chunks_sent = outcomes[turn[0]["update_id"]]
    if status not in ANSWERED and chunks_sent > 0:
        # Part of the reply reached the chat: a replay would ask the agent again and send that part twice.
        logger.info("partly delivered: for a person", extra={"update_id": turn[0]["update_id"]})
        return "for_a_person"
    if attributes.get("execution"):
        parked = [envelope["update_id"] for envelope in turn]
        release_parked_claims(dynamodb, table, attributes["execution"], parked)
    # An update answered meanwhile (Telegram delivered it again) leaves the turn; the others stay.
    left = [envelope for envelope in turn if outcomes[envelope["update_id"]][0] not in ANSWERED]
    dead_letter_queue = setting("DEAD_LETTER_QUEUE_URL")
    if not left:
        clients.sqs().delete_message(QueueUrl=dead_letter_queue, ReceiptHandle=message["ReceiptHandle"])
        return "answered"
    replays = int(turn[0].get("replays") or 0) + 1
    # Every envelope of the turn carries the count: the apology knows who was told already.
    head, *merged = [{**envelope, "replays": replays} for envelope in left]
    for envelope in (head, *merged):
        envelope.pop("merged", None)
    clients.sqs().send_message(
        QueueUrl=setting("QUEUE_URL"),
        MessageBody=json.dumps({**head, "merged": merged}, separators=(",", ":")),
        MessageGroupId=message["Attributes"]["MessageGroupId"],
        # The webhook's is the update_id: a fresh id per replay, the same one if this run is retried.
        MessageDeduplicationId=f"{head['update_id']}-replay-{replays}",
    )
    clients.sqs().delete_message(QueueUrl=dead_letter_queue, ReceiptHandle=message["ReceiptHandle"])
    logger.info(
        "replayed", extra={"update_id": head["update_id"], "replays": replays, "error": attributes.get("error")}
    )
    return "replayed"
