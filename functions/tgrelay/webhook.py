"""WebhookFunction: Telegram POSTs an update; we check it, enqueue its envelope, answer.

200 only after SQS accepted the message (or for an update we deliberately skip, or answer
here: /start and /help, see conversation.py); 5xx when SQS fails so Telegram delivers
again; 4xx for anything that is not a genuine update. Nothing is enqueued for a 4xx.
"""

import binascii
import hmac
import json
import time
from typing import Any

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
from tgrelay.shapes import Envelope
from tgrelay.telegram_limits import SECRET_TOKEN_CHARS

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# What protects the function (memory, parse time), far above any update Telegram sends (a
# 4096-character text with an entity per character is about 300 KB) and below the 6 MB
# Lambda accepts. What goes on to SQS is the envelope, whose text has its own budget
# (envelope.MAX_TEXT_BYTES), not the body.
MAX_BODY_BYTES = 1024 * 1024

# Every setting this handler reads (tests/unit/test_declared_settings.py); checked at its cold start.
SETTINGS = declare(
    __name__,
    required=("QUEUE_URL", "DEDUPE_TTL_SECONDS", "TURNS_TABLE_NAME", "SECRET_ARN", "START_TEXT", "HELP_TEXT"),
    optional=("ALLOWED_IDS", "BOT_USERNAME", "GROUP_MESSAGES", "EDITED_MESSAGES", "SECRET_MAX_AGE_SECONDS"),
)

logger = Logger()
metrics = Metrics()


class Refused(Exception):
    """Answered `status` with {"ok": false, "error": message}; nothing is enqueued. A 5xx status
    means a dependency failed: Telegram delivers the update again, so nothing is lost."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Skipped(Exception):
    """Deliberately left: answered 200 {"ok": true, "skipped": reason}, counted in `metric`."""

    def __init__(self, reason: str, metric: str = "SkippedUpdates") -> None:
        super().__init__(reason)
        self.reason, self.metric = reason, metric


# log_event stays off even if POWERTOOLS_LOGGER_LOG_EVENT is set: the event carries the secret header.
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """API Gateway HTTP API event (payload format 2.0) with Telegram's POST -> the HTTP answer
    {"statusCode", "headers", "body"}: authenticate -> parse -> route -> enqueue.

    200 after SQS accepted the envelope (its body may carry a Bot API method Telegram performs),
    200 with "skipped" for an update deliberately left, 4xx for a request that is not a genuine
    update (Refused with its status), 5xx when a dependency fails (Telegram delivers again).
    The one place an outcome becomes an answer is the `except` clauses below.
    """
    request = APIGatewayProxyEventV2(event)
    try:
        authenticate(request)
        update = parse_update(request)
        envelope = envelope_of(update)
        route = route_update(update, envelope)
        if route.action == "enqueue":
            enqueue(envelope)
    except Refused as refusal:
        return _answer(refusal.status, error=str(refusal))
    except Skipped as skip:
        metrics.add_metric(name=skip.metric, unit=MetricUnit.Count, value=1)
        logger.info("skipped update", extra={"reason": skip.reason})
        return _answer(200, skipped=skip.reason)
    if route.action == "answer":
        # Telegram performs the method in our answer: no execution, no request of our own.
        metrics.add_metric(name="AnsweredAtWebhook", unit=MetricUnit.Count, value=1)
        logger.info("answered at the webhook", extra={"method": route.method["method"]})
    return _method_answer(route.method) if route.method else _answer(200)


def authenticate(request: APIGatewayProxyEventV2) -> None:
    """Checks the method and the X-Telegram-Bot-Api-Secret-Token header (Bot API, setWebhook:
    secret_token, 1-256 characters) against the secret's webhook_secret, in constant time.

    Raises Refused: 405, 401 (no header), 403 (wrong header), 500 (the secret has no
    webhook_secret) or 503 (the secret cannot be read now)."""
    if request.request_context.http.method != "POST":
        raise Refused(405, "only POST is accepted")
    try:
        expected_secret = secret_field("webhook_secret")
    except ConfigurationError as error:
        logger.error("webhook secret unavailable", extra={"reason": str(error)})
        raise Refused(500, "webhook is not configured") from None
    except Exception as error:  # any failure to read the secret: never acknowledge the update
        logger.error("webhook secret unavailable", extra={"error_type": type(error).__name__})
        raise Refused(503, "webhook secret unavailable, deliver again") from None
    given_secret = request.headers.get(SECRET_HEADER)
    if not given_secret:
        raise Refused(401, f"missing {SECRET_HEADER} header")
    if len(given_secret) > SECRET_TOKEN_CHARS or not hmac.compare_digest(
        given_secret.encode("utf-8", "surrogateescape"), expected_secret.encode()
    ):
        raise Refused(403, f"wrong {SECRET_HEADER} header")


def parse_update(request: APIGatewayProxyEventV2) -> Any:
    """The body's JSON value (any JSON; envelope_of checks its shape). Raises Refused: 413 past
    MAX_BODY_BYTES, 400 for a body that is not base64 when marked so, empty, not UTF-8,
    not JSON or nested too deeply."""
    body = request.body or ""
    # Checked before decoding: base64 only makes the body longer.
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise Refused(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = binascii.a2b_base64(body) if request.is_base64_encoded else body.encode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        raise _invalid("body is not valid base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise Refused(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise _invalid("empty body")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid("body is not UTF-8") from None
    except ValueError:
        raise _invalid("body is not valid JSON") from None
    except RecursionError:
        raise _invalid("body is nested too deeply") from None


def envelope_of(update: Any) -> Envelope:
    """The envelope of `update` (envelope.envelope_from_update). Raises Refused (400) for a value
    that is not a Telegram update, Skipped for an update of a kind tgrelay does not answer."""
    try:
        envelope = envelope_from_update(
            update,
            received_at=int(time.time()),
            ttl_seconds=int(number_setting("DEDUPE_TTL_SECONDS")),
            answer_edits=conversation.answers_edits(),
        )
    except InvalidUpdate as error:
        raise _invalid(str(error)) from None
    except UnhandledUpdate as reason:
        logger.append_keys(update_id=update.get("update_id"))
        raise Skipped(str(reason)) from None
    logger.append_keys(update_id=envelope["update_id"], chat_id=envelope["chat_id"])
    return envelope


def route_update(update: dict, envelope: Envelope) -> conversation.Route:
    """What to do with the update (conversation.route). Raises Skipped for a chat and sender not on
    the allow-list (metric DroppedUpdates) or an update the conversation leaves."""
    if not conversation.is_allowed(envelope):
        raise Skipped("chat and sender are not on the allow-list", metric="DroppedUpdates")
    route = conversation.route(update, envelope, bot_id=_bot_id)
    if route.action == "skip":
        raise Skipped(route.reason)
    return route


def enqueue(envelope: Envelope) -> None:
    """Registers the envelope's turn, then sends it to the FIFO queue (group: its conversation,
    deduplication id: its update_id). Raises Refused (503) when SQS fails; a failed registration
    only makes the order best effort (the execution registers itself when it starts)."""
    try:
        # Registered before it is enqueued: Telegram sends one chat's updates one after another,
        # so this fixes the order in which the conversation's turns are taken.
        turns.register_queued(envelope)
    except (BotoCoreError, ClientError) as error:
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
        logger.exception("enqueue failed", extra={"error_type": type(error).__name__})
        raise Refused(503, "queue unavailable, deliver again") from None
    metrics.add_metric(name="EnqueuedUpdates", unit=MetricUnit.Count, value=1)
    logger.info("enqueued update", extra={"kind": envelope["kind"]})


def _invalid(reason: str) -> Refused:
    """400: not a genuine update (logged; nothing about the request is kept)."""
    logger.info("rejected update", extra={"reason": reason})
    return Refused(400, reason)


def _bot_id() -> int | None:
    """The bot's own user id, from its token (asked only for group messages that need it)."""
    try:
        return conversation.bot_id_from_token(secret_field("bot_token", required=False))
    except Exception as error:  # an unknown id only means "not a reply to the bot"
        logger.warning("bot token unavailable", extra={"error_type": type(error).__name__})
        return None


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
