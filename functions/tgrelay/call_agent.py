"""CallAgentFunction: one attempt at asking the agent server for a reply.

Retries and their waits are the state machine's business (statemachine/relay.asl.json);
this function makes exactly one request and names its outcome. While it waits, the chat
shows "typing…": a background thread repeats sendChatAction until the request ends, or until
the first draft of a streamed answer is shown (private chats: drafts.py); in groups and
topics a streamed answer is read the same way and only the final message is sent.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import httpx
from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tgrelay import attachments, telegram
from tgrelay.agent import agent_request, ask_agent
from tgrelay.drafts import Drafts
from tgrelay.errors import RelayError, TelegramRejected
from tgrelay.secrets import secret_field
from tgrelay.settings import declare
from tgrelay.shapes import AgentFile, CallAgentEvent, Envelope, Reply
from tgrelay.text import utf16_len
from tgrelay.turns import renew_lease

# Telegram shows a chat action for 5 s at most (or until the bot's message arrives): renew it before.
TYPING_INTERVAL_SECONDS = 4.0
# One sendChatAction may take this long; it never holds up the agent request, which runs meanwhile.
TYPING_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
# After the agent answered, how long the handler waits for a sendChatAction still in flight, so it
# lands before the reply and not in a later invocation of this environment.
TYPING_STOP_WAIT_SECONDS = 1.0

# Every setting this handler reads (tests/unit/test_declared_settings.py); checked at its cold start.
SETTINGS = declare(
    __name__,
    required=(
        "AGENT_URL",
        "AGENT_TIMEOUT_SECONDS",
        "AGENT_STREAM_IDLE_SECONDS",
        "DRAFT_THROTTLE_SECONDS",
        "EMPTY_REPLY_TEXT",
        "TURNS_TABLE_NAME",
        "TURN_LEASE_SECONDS",
        "SECRET_ARN",
        "FILES_BUCKET_NAME",
        "FILE_URL_MINUTES",
    ),
    optional=("SECRET_MAX_AGE_SECONDS", "TELEGRAM_API_URL", "AGENT_FILES_URL"),
)

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> Reply:
    """CallAgentFunction. `event` is a CallAgentEvent (shapes.py). Returns the agent's reply
    (shapes.Reply: SendReply's input). Raises TurnLost (the turn is no longer this
    execution's), the agent's errors (AgentUnavailable, AgentTimeout, AgentRejected,
    AgentBadResponse, AgentStream*), TelegramUnavailable/TelegramRateLimited (fetching files),
    DependencyUnavailable - each named in the ASL (errors.py)."""
    call = cast(CallAgentEvent, event)
    envelope, execution = call["update"], call["execution"]
    logger.append_keys(update_id=envelope["update_id"], chat_id=envelope["chat_id"], execution=execution)
    # The heartbeat of the conversation's turn; TurnLost sends the execution back to WaitForTurn.
    renew_lease(envelope, execution)
    started = time.monotonic()
    try:
        reply = ask(envelope)
    except RelayError as error:
        # One metric per error name, so a dashboard can tell "down" from "rejected".
        with single_metric(name="AgentErrors", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="error", value=type(error).__name__)
        logger.warning("agent call failed", extra={"error": type(error).__name__, "reason": str(error)})
        raise
    finally:
        metrics.add_metric(name="AgentLatency", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000)
    logger.info(
        "agent answered",
        extra={
            "reply_units": sum(utf16_len(message["text"]) for message in [reply, *reply.get("more_messages", [])]),
            "messages": 1 + len(reply.get("more_messages", [])),
            "buttons": sum(map(len, reply.get("buttons", []))),
        },
    )
    return reply


def ask(envelope: Envelope) -> Reply:
    """The agent's reply to the envelope's turn: its files fetched first, typing shown while the
    agent answers, drafts shown in a private chat while it streams (drafts never fail the turn)."""
    with typing_indicator(envelope) as typing:
        request = agent_request(envelope, fetch_files(envelope))
        drafts = drafts_for(envelope, on_shown=typing.set)
        if drafts is None:
            return ask_agent(request)
        try:
            reply = ask_agent(request, on_text=drafts.show)
        except BaseException:
            drafts.stop()
            raise
        drafts.finish()
        return reply


def fetch_files(envelope: Envelope) -> list[AgentFile]:
    """The turn's files for the agent (attachments.files_for_agent), fetched before it is asked;
    [] without secrets read when the turn has none. Raises what files_for_agent raises."""
    turn = [envelope, *(envelope.get("merged") or [])]
    if not any(message.get("attachments") for message in turn):
        return []
    started = time.monotonic()
    files = attachments.files_for_agent(turn, secret_field("bot_token"), secret_field("webhook_secret"))
    # Kinds, sizes and time only: a URL (signed) or a file name (the user's words) is not logged.
    logger.info(
        "files fetched",
        extra={
            "files": len(files),
            "bytes": sum(file["size"] or 0 for file in files if file["url"]),
            "unavailable": sum(1 for file in files if file["url"] is None),
            "fetch_ms": round((time.monotonic() - started) * 1000),
        },
    )
    return files


def drafts_for(envelope: Envelope, on_shown: Callable[[], None]) -> Drafts | None:
    """The drafts of this attempt (drafts.Drafts) in a private chat; None elsewhere (Bot API:
    sendMessageDraft is for private chats) or without a readable bot token (the indicator and
    the final message report that)."""
    if envelope.get("chat_type") != "private":
        return None
    try:
        token = secret_field("bot_token", required=False)
    except Exception:  # logged by typing_indicator, which reads it first
        return None
    return Drafts(token, envelope, on_shown) if token else None


@contextmanager
def typing_indicator(envelope: Envelope) -> Iterator[threading.Event]:
    """`with typing_indicator(envelope) as stop:` the chat shows "typing…" until the block ends or
    `stop` is set (the first draft of a streamed answer is shown).

    A daemon thread sends sendChatAction at once and every TYPING_INTERVAL_SECONDS. Its
    failures are logged and ignored: the indicator is a courtesy, the agent call goes on.
    """
    payload = {"chat_id": envelope["chat_id"], "action": "typing"}
    if envelope.get("thread_id") is not None:
        payload["message_thread_id"] = envelope["thread_id"]
    stop = threading.Event()
    thread = None
    try:
        token = secret_field("bot_token", required=False)
    except Exception as error:  # the agent request reads the same secret and reports the problem
        logger.warning("typing indicator off: bot secret unreadable", extra={"error": type(error).__name__})
        token = ""
    if token:
        thread = threading.Thread(target=_keep_typing, args=(token, payload, stop), name="typing", daemon=True)
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        if thread is not None:
            thread.join(TYPING_STOP_WAIT_SECONDS)


def _keep_typing(token: str, payload: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            telegram.call(token, "sendChatAction", payload, timeout=TYPING_TIMEOUT)
        except TelegramRejected as error:
            if error.migrate_to_chat_id is not None and payload["chat_id"] != error.migrate_to_chat_id:
                # The group became a supergroup: show "typing…" there, at once (SendReply sends there too).
                logger.info(
                    "group upgraded to a supergroup, typing there",
                    extra={"migrate_to_chat_id": error.migrate_to_chat_id},
                )
                payload["chat_id"] = error.migrate_to_chat_id
                continue
            logger.info("typing indicator not sent", extra={"error": type(error).__name__})
        except Exception as error:  # never let the indicator fail the agent call
            logger.info("typing indicator not sent", extra={"error": type(error).__name__})
        # The module's value at each turn (a test shortens it).
        if stop.wait(TYPING_INTERVAL_SECONDS):
            return
