"""The update's claim item in DynamoDB, as SendReply uses it: how many chunks of the reply this
execution has delivered. The workflow itself writes the claim (ClaimUpdate, MarkDone, ...)."""

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from tgrelay import clients
from tgrelay.errors import DependencyUnavailable
from tgrelay.settings import setting

logger = Logger()


def claim_key(update_id: int) -> dict:
    # Same key as ClaimUpdate in statemachine/relay.asl.json builds with States.Format.
    return {"pk": {"S": f"update#{update_id}"}}


def chunks_already_sent(update_id: int, execution: str) -> int:
    """Chunks this execution already delivered (0 when the claim belongs to another)."""
    try:
        item = (
            clients.dynamodb()
            .get_item(TableName=setting("TABLE_NAME"), Key=claim_key(update_id), ConsistentRead=True)
            .get("Item", {})
        )
    except (BotoCoreError, ClientError) as error:
        # Without the count a resend could repeat chunks: retry rather than guess.
        raise DependencyUnavailable(f"claim unreadable ({type(error).__name__})") from None
    if item.get("execution", {}).get("S") != execution:
        return 0
    return int(item.get("chunks_sent", {}).get("N", "0"))


def chunks_delivered(update_id: int) -> int:
    """Chunks of a reply the claim counts as delivered, whichever execution sent them (0 when
    unreadable: the apology is best effort)."""
    try:
        return claim_outcomes(clients.dynamodb(), setting("TABLE_NAME"), [update_id])[update_id][1]
    except (BotoCoreError, ClientError):
        return 0


def record_chunks_sent(update_id: int, execution: str, count: int) -> None:
    """Count the chunks on the claim, if this execution still holds it. Best effort: the
    chunk is already delivered, the count only ever saves a resend, and failing here would
    apologise for (and dead-letter) a reply the user has. Not held (an operator's redrive of
    an old execution) or DynamoDB trouble: log and go on."""
    dynamodb = clients.dynamodb()
    try:
        dynamodb.update_item(
            TableName=setting("TABLE_NAME"),
            Key=claim_key(update_id),
            UpdateExpression="SET chunks_sent = :count",
            ConditionExpression="execution = :execution",
            ExpressionAttributeValues={":count": {"N": str(count)}, ":execution": {"S": execution}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        logger.warning("claim held by another execution; chunk count not recorded")
    except (BotoCoreError, ClientError) as error:
        logger.warning("chunk count not recorded; a retry may resend this chunk", extra={"error": type(error).__name__})


def release_parked_claims(dynamodb, table_name: str, execution: str, update_ids: list[int]) -> int:
    """Before a replay (`tgrelay replay` or DeadLetterReplayFunction): set FAILED the claims that
    `execution`, the one that parked the dead letter, still holds IN_PROGRESS (its RecordFailure
    or HandOnTurn gave up), so the replay can take them instead of stopping as a duplicate.
    `update_ids`: the dead letter's update and those merged into its turn (the grant handed their
    claims to that execution). Claims anyone else holds are left alone. Returns how many it set."""
    released = 0
    for update_id in update_ids:
        try:
            dynamodb.update_item(
                TableName=table_name,
                Key=claim_key(update_id),
                UpdateExpression="SET #status = :failed",
                ConditionExpression="execution = :execution AND #status = :in_progress",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": "FAILED"},
                    ":in_progress": {"S": "IN_PROGRESS"},
                    ":execution": {"S": execution},
                },
            )
            released += 1
        except dynamodb.exceptions.ConditionalCheckFailedException:
            pass
    return released


def claim_outcomes(dynamodb, table_name: str, update_ids: list[int]) -> dict[int, tuple[str | None, int]]:
    """update_id -> (claim status, chunks_sent) of each update's claim; (None, 0) for no claim.
    Consistent reads: a replay decides on them."""
    outcomes: dict[int, tuple[str | None, int]] = {}
    for update_id in update_ids:
        item = dynamodb.get_item(TableName=table_name, Key=claim_key(update_id), ConsistentRead=True).get("Item", {})
        outcomes[update_id] = (item.get("status", {}).get("S"), int(item.get("chunks_sent", {}).get("N", "0")))
    return outcomes
