"""CallAgentFunction: one attempt at asking the agent server for a reply.

Retries and their waits are the state machine's business (statemachine/relay.asl.json);
this function makes exactly one request and names its outcome.
"""

import time

import httpx
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tgrelay import clients
from tgrelay.errors import AgentBadResponse, AgentRejected, AgentTimeout, AgentUnavailable, RelayError
from tgrelay.secrets import secret_field
from tgrelay.settings import number_setting, setting

PARSE_MODES = ("HTML", "MarkdownV2", "Markdown")
# Keeps the execution's state small (Step Functions caps it at 256 KiB); 8 Telegram messages.
MAX_REPLY_CHARS = 8 * 4096

logger = Logger()
metrics = Metrics()
# X-Ray segments for the slow part (the HTTP calls); off outside Lambda.
tracer = Tracer()


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    update = event["update"]
    logger.append_keys(update_id=update["update_id"], chat_id=update["chat_id"], execution=event.get("execution"))
    started = time.monotonic()
    try:
        reply = ask_agent(agent_request(update))
    except RelayError as error:
        # One metric per error name, so a dashboard can tell "down" from "rejected".
        with single_metric(name="AgentErrors", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="error", value=type(error).__name__)
        logger.warning("agent call failed", extra={"error": type(error).__name__, "reason": str(error)})
        raise
    finally:
        metrics.add_metric(name="AgentLatency", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000)
    logger.info("agent answered", extra={"reply_chars": len(reply["text"])})
    return reply


def session_key(update: dict) -> str:
    """One conversation per chat, or per forum topic."""
    key = f"telegram:{update['chat_id']}"
    return key if update.get("thread_id") is None else f"{key}:{update['thread_id']}"


def agent_request(update: dict) -> dict:
    """The JSON body the agent server receives (contract in README.md)."""
    return {
        "update_id": update["update_id"],
        "session_key": session_key(update),
        "text": update["text"],
        "kind": update["kind"],
        "chat": {"id": update["chat_id"], "type": update.get("chat_type"), "thread_id": update.get("thread_id")},
        "user": update.get("sender"),
        "message_id": update["message_id"],
    }


def ask_agent(request: dict) -> dict:
    """POST `request` to the agent server; {"text", "parse_mode"} or a named error."""
    timeout = number_setting("AGENT_TIMEOUT_SECONDS")
    headers = {}
    token = secret_field("agent_token", required=False)
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = clients.http().post(
            setting("AGENT_URL"),
            json=request,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )
    except httpx.ConnectTimeout:
        raise AgentUnavailable("could not connect to the agent server in time") from None
    except httpx.TimeoutException:
        raise AgentTimeout(f"agent server did not answer within {timeout:g} s") from None
    except httpx.HTTPError as error:
        raise AgentUnavailable(f"agent server unreachable ({type(error).__name__})") from None

    status = response.status_code
    if status == 429 or status >= 500:
        raise AgentUnavailable(f"agent server answered {status}")
    if 400 <= status < 500:
        raise AgentRejected(f"agent server answered {status}: {_snippet(response, token)}")
    if status != 200:
        raise AgentBadResponse(f"agent server answered {status}, expected 200")
    return parse_agent_reply(response, token)


def _snippet(response: httpx.Response, token: str) -> str:
    """The start of the agent's answer for the error message (it reaches execution history
    and the DLQ), with the token blanked in case the agent echoes its request headers."""
    text = response.text[:300]
    return text.replace(token, "[agent token]") if token else text


def parse_agent_reply(response: httpx.Response, token: str = "") -> dict:
    try:
        body = response.json()
    except ValueError:
        raise AgentBadResponse(f"agent reply is not JSON: {_snippet(response, token)!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("reply", ""), str | None):
        raise AgentBadResponse('agent reply is not an object with a string "reply"')
    parse_mode = body.get("parse_mode")
    if parse_mode is not None and parse_mode not in PARSE_MODES:
        raise AgentBadResponse(f"agent reply has unknown parse_mode {parse_mode!r}")
    text = body.get("reply") or ""
    if not text.strip():
        # Telegram refuses empty messages; the user still gets an answer.
        return {"text": setting("EMPTY_REPLY_TEXT"), "parse_mode": None}
    if len(text) > MAX_REPLY_CHARS:
        text = text[: MAX_REPLY_CHARS - 1] + "…"
    return {"text": text, "parse_mode": parse_mode}
