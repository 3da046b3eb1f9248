"""SendReplyFunction: deliver the agent's reply (or the apology) to the user's chat.

The reply's messages are split into Telegram-sized chunks, one flat list of sendMessage
calls (replies.outgoing_messages: the first quotes the user's message in groups, the last
carries the agent's buttons). With an `execution` in the event, each chunk Telegram
accepted is counted on the update's claim item in DynamoDB, so a retry of the same
execution resumes after the last accepted chunk instead of sending it twice. The apology
carries no execution: it is best effort, sent once.
"""

import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from tgrelay import clients, telegram
from tgrelay.errors import DependencyUnavailable, TelegramRateLimited, TelegramRejected, TelegramUnavailable
from tgrelay.replies import outgoing_messages
from tgrelay.secrets import secret_field
from tgrelay.settings import number_setting, setting

# One chunk can take a 10 s answer, a 5 s inline wait and a plain-text resend.
TIME_LEFT_FOR_A_CHUNK_MS = 30_000

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    update = event["update"]
    logger.append_keys(update_id=update["update_id"], chat_id=update["chat_id"])
    if event.get("apology"):
        reply, execution = {"text": setting("APOLOGY_TEXT"), "parse_mode": None}, None
    else:
        reply, execution = event["reply"], event["execution"]

    chunks = outgoing_messages(update, reply)
    token = secret_field("bot_token")
    first = chunks_already_sent(update["update_id"], execution) if execution else 0
    for index in range(first, len(chunks)):
        if execution and index > first and context.get_remaining_time_in_millis() < TIME_LEFT_FOR_A_CHUNK_MS:
            # Stop before Lambda's timeout cuts a send off uncounted: the ASL's retry resumes here.
            raise TelegramUnavailable(f"time ran out after {index} of {len(chunks)} chunks; resuming on retry")
        send_chunk(token, chunks[index])
        metrics.add_metric(name="ReplyChunks", unit=MetricUnit.Count, value=1)
        if execution:
            record_chunks_sent(update["update_id"], execution, index + 1)
    logger.info("reply sent", extra={"chunks": len(chunks), "resumed_at": first, "apology": execution is None})
    return {"chunks": len(chunks), "sent": len(chunks) - first}


# 400 descriptions about the inline keyboard (BUTTON_URL_INVALID, "can't parse inline keyboard button", ...).
_KEYBOARD_PROBLEMS = ("button", "inline keyboard", "reply markup", "reply_markup")


def send_chunk(token: str, payload: dict) -> None:
    """Send one sendMessage payload; plain-text resend when Telegram cannot parse the
    formatting, a resend without the buttons when it refuses them, one inline wait when it
    asks for a short pause, a named error otherwise."""
    payload = dict(payload)
    waited = False
    while True:
        try:
            telegram.call(token, "sendMessage", payload)
            return
        except TelegramRejected as error:
            description = error.description.lower()
            if "parse_mode" in payload and "can't parse entities" in description:
                logger.warning("formatting rejected, resending as plain text", extra={"reason": error.description})
                del payload["parse_mode"]
                continue
            if "reply_markup" in payload and any(problem in description for problem in _KEYBOARD_PROBLEMS):
                # The answer matters more than its buttons (e.g. a URL Telegram will not link to).
                logger.warning("buttons rejected, resending without them", extra={"reason": error.description})
                del payload["reply_markup"]
                continue
            raise
        except TelegramRateLimited as error:
            # A short pause costs less here than a workflow retry; a long one belongs to the ASL.
            if waited or error.retry_after > number_setting("TELEGRAM_MAX_INLINE_WAIT_SECONDS"):
                raise
            logger.info("rate limited, waiting inline", extra={"retry_after": error.retry_after})
            metrics.add_metric(name="RateLimitWaits", unit=MetricUnit.Count, value=1)
            time.sleep(error.retry_after)
            waited = True


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
