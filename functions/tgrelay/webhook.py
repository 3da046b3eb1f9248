"""WebhookFunction: Telegram POSTs an update; we check it, enqueue its envelope, answer.

200 only after SQS accepted the message (or for an update we deliberately skip, or answer
here: /start and /help, see conversation.py); 5xx when SQS fails so Telegram delivers
again; 4xx for anything that is not a genuine update. Nothing is enqueued for a 4xx.
"""

import binascii
import hmac
import json
import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from tgrelay import clients, conversation, turns
from tgrelay.envelope import InvalidUpdate, UnhandledUpdate, envelope_from_update, message_group_id
from tgrelay.errors import ConfigurationError
from tgrelay.secrets import secret_field
from tgrelay.settings import declare, number_setting, setting

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# What protects the function (memory, parse time), far above any update Telegram sends (a
# 4096-character text with an entity per character is about 300 KB) and below the 6 MB
# Lambda accepts. What goes on to SQS is the envelope, whose text has its own budget
# (envelope.MAX_TEXT_BYTES), not the body.
MAX_BODY_BYTES = 1024 * 1024
MAX_SECRET_HEADER = 256  # Telegram's secret_token is 1-256 characters

# Every setting this handler reads (tests/unit/test_declared_settings.py); checked at its cold start.
SETTINGS = declare(
    __name__,
    required=("QUEUE_URL", "DEDUPE_TTL_SECONDS", "TURNS_TABLE_NAME", "SECRET_ARN", "START_TEXT", "HELP_TEXT"),
    optional=("ALLOWED_IDS", "BOT_USERNAME", "GROUP_MESSAGES", "EDITED_MESSAGES", "SECRET_MAX_AGE_SECONDS"),
)

logger = Logger()
metrics = Metrics()


# log_event stays off even if POWERTOOLS_LOGGER_LOG_EVENT is set: the event carries the secret header.
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    request = APIGatewayProxyEventV2(event)
    if request.request_context.http.method != "POST":
        return _answer(405, error="only POST is accepted")

    try:
        expected_secret = secret_field("webhook_secret")
    except ConfigurationError as error:
        logger.error("webhook secret unavailable", extra={"reason": str(error)})
        return _answer(500, error="webhook is not configured")
    except Exception as error:  # any failure to read the secret: never acknowledge the update
        logger.error("webhook secret unavailable", extra={"error_type": type(error).__name__})
        return _answer(503, error="webhook secret unavailable, deliver again")
    given_secret = request.headers.get(SECRET_HEADER)
    if not given_secret:
        return _answer(401, error=f"missing {SECRET_HEADER} header")
    if len(given_secret) > MAX_SECRET_HEADER or not hmac.compare_digest(
        given_secret.encode("utf-8", "surrogateescape"), expected_secret.encode()
    ):
        return _answer(403, error=f"wrong {SECRET_HEADER} header")

    try:
        update = _parse_body(request)
        envelope = envelope_from_update(
            update,
            received_at=int(time.time()),
            ttl_seconds=int(number_setting("DEDUPE_TTL_SECONDS")),
            answer_edits=conversation.answers_edits(),
        )
    except _BodyTooLarge:
        return _answer(413, error=f"body larger than {MAX_BODY_BYTES} bytes")
    except InvalidUpdate as error:
        logger.info("rejected update", extra={"reason": str(error)})
        return _answer(400, error=str(error))
    except UnhandledUpdate as reason:
        metrics.add_metric(name="SkippedUpdates", unit=MetricUnit.Count, value=1)
        logger.info("skipped update", extra={"update_id": update.get("update_id"), "reason": str(reason)})
        return _answer(200, skipped=str(reason))

    logger.append_keys(update_id=envelope["update_id"], chat_id=envelope["chat_id"])
    if not conversation.is_allowed(envelope):
        metrics.add_metric(name="DroppedUpdates", unit=MetricUnit.Count, value=1)
        logger.info("dropped update: not on the allow-list")
        return _answer(200, skipped="chat and sender are not on the allow-list")
    route = conversation.route(update, envelope, bot_id=_bot_id)
    if route.action == "skip":
        metrics.add_metric(name="SkippedUpdates", unit=MetricUnit.Count, value=1)
        logger.info("skipped update", extra={"reason": route.reason})
        return _answer(200, skipped=route.reason)
    if route.action == "answer":
        # Telegram performs the method in our answer: no execution, no request of our own.
        metrics.add_metric(name="AnsweredAtWebhook", unit=MetricUnit.Count, value=1)
        logger.info("answered at the webhook", extra={"method": route.method["method"]})
        return _method_answer(route.method)
    try:
        # Registered before it is enqueued: Telegram sends one chat's updates one after another,
        # so this fixes the order in which the conversation's turns are taken.
        turns.register_queued(envelope)
    except (BotoCoreError, ClientError) as error:
        # The execution registers itself when it starts; only the order is then best effort.
        logger.warning("turn not registered; enqueued anyway", extra={"error_type": type(error).__name__})
    try:
        clients.sqs().send_message(
            QueueUrl=setting("QUEUE_URL"),
            # ASCII: SQS refuses some code points (U+FFFE, U+FFFF) that escaping keeps out.
            MessageBody=json.dumps(envelope),
            MessageGroupId=message_group_id(envelope),
            MessageDeduplicationId=str(envelope["update_id"]),
        )
    except (BotoCoreError, ClientError) as error:
        # Telegram redelivers on a non-2xx answer: the update is not lost.
        logger.exception("enqueue failed", extra={"error_type": type(error).__name__})
        return _answer(503, error="queue unavailable, deliver again")
    metrics.add_metric(name="EnqueuedUpdates", unit=MetricUnit.Count, value=1)
    logger.info("enqueued update", extra={"kind": envelope["kind"]})
    return _method_answer(route.method) if route.method else _answer(200)


def _bot_id() -> int | None:
    """The bot's own user id, from its token (asked only for group messages that need it)."""
    try:
        return conversation.bot_id_from_token(secret_field("bot_token", required=False))
    except Exception as error:  # an unknown id only means "not a reply to the bot"
        logger.warning("bot token unavailable", extra={"error_type": type(error).__name__})
        return None


class _BodyTooLarge(Exception):
    pass


def _parse_body(request: APIGatewayProxyEventV2):
    body = request.body or ""
    # Checked before decoding: base64 only makes the body longer.
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise _BodyTooLarge
    try:
        raw = binascii.a2b_base64(body) if request.is_base64_encoded else body.encode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        raise InvalidUpdate("body is not valid base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise _BodyTooLarge
    if not raw.strip():
        raise InvalidUpdate("empty body")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidUpdate("body is not UTF-8") from None
    except ValueError:
        raise InvalidUpdate("body is not valid JSON") from None
    except RecursionError:
        raise InvalidUpdate("body is nested too deeply") from None


def _method_answer(method: dict) -> dict:
    """200 whose body is also a Bot API request, which Telegram performs (it never tells us the
    result). "ok" is there like in every answer of ours; the Bot API ignores what it does not know."""
    return _answer(200, **method)


def _answer(status: int, **fields) -> dict:
    if 400 <= status < 500:
        metrics.add_metric(name="RejectedRequests", unit=MetricUnit.Count, value=1)
    body = {"ok": 200 <= status < 300, **fields}
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
