"""SendReplyFunction: deliver the agent's reply (or the apology) to the user's chat.

The reply is one flat list of Bot API calls (replies.deliveries): its messages split into
Telegram-sized chunks (sendMessage), then its files, each downloaded from the agent's URL and
uploaded with its kind's send* method (reply_files.py; the first call quotes the user's message
in groups, the last message carries the agent's buttons). With an `execution` in the event,
each item Telegram accepted - a chunk or a file - is counted on the update's claim item in
DynamoDB, so a retry of the same execution resumes after the last accepted item instead of
sending it twice. The apology carries no execution: it is best effort, sent once.

A file that cannot be had or that Telegram refuses is not a silent loss and not a failure of
the reply: in its place the chat gets a short note (FILE_NOT_SENT) saying which file and why,
counted like the file; the function's output lists it (`not_sent`) and the AttachmentsNotSent
metric counts it. A file whose host is down (AttachmentUnavailable) or Telegram's trouble while
uploading (TelegramUnavailable) is retried by the ASL.
"""

import time
from typing import BinaryIO, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tgrelay import reply_files, telegram
from tgrelay.claims import chunks_already_sent, chunks_delivered, record_chunks_sent
from tgrelay.dead_letters import will_be_replayed
from tgrelay.errors import TelegramRateLimited, TelegramRejected, TelegramUnavailable
from tgrelay.replies import SEND_METHODS, deliveries
from tgrelay.secrets import secret_field
from tgrelay.settings import declare, number_setting, setting
from tgrelay.shapes import ApologyEvent, Envelope, SendReplyEvent
from tgrelay.turns import renew_lease

# sendMessage calls one chunk may make (send_chunk): the first, a plain-text resend, a resend
# without the buttons, and one after an inline wait. A file's uploads alike.
SENDS_PER_CHUNK = 4
# Sending one file's bytes to Telegram may take this long (seconds; telegram.upload gives up
# after it): 50 MB at less than 1 MB/s is a network in trouble (TelegramUnavailable: retried).
UPLOAD_SECONDS = 50.0
# What the chat gets in place of a file that cannot be sent: kind, name and the reason.
FILE_NOT_SENT = '[The {kind} "{file_name}" could not be sent: {reason}.]'

# Every setting this handler reads (tests/unit/test_declared_settings.py); checked at its cold start.
SETTINGS = declare(
    __name__,
    required=(
        "TABLE_NAME",
        "APOLOGY_TEXT",
        "RETRY_APOLOGY_TEXT",
        "AUTO_REPLAY",
        "AUTO_REPLAY_DELAYS_SECONDS",
        "TELEGRAM_MAX_INLINE_WAIT_SECONDS",
        "TURNS_TABLE_NAME",
        "TURN_LEASE_SECONDS",
        "SECRET_ARN",
    ),
    optional=("SECRET_MAX_AGE_SECONDS", "TELEGRAM_API_URL"),
)

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """SendReplyFunction. `event` is a SendReplyEvent (state SendReply: the reply CallAgent returned)
    or an ApologyEvent (state ApologizeToUser: the apology for the error name it carries); both in
    shapes.py. Returns deliver()'s summary, or {"chunks": 0, "sent": 0} when no apology is due."""
    envelope = event["update"]
    logger.append_keys(update_id=envelope["update_id"], chat_id=envelope["chat_id"])
    if event.get("apology"):
        apology = cast(ApologyEvent, event)
        text = apology_text(envelope, apology.get("error") or "")
        if text is None:
            logger.info("no apology: the person was told this will be tried again")
            return {"chunks": 0, "sent": 0}
        return deliver(envelope, {"text": text}, None, context)
    reply_event = cast(SendReplyEvent, event)
    return deliver(envelope, reply_event["reply"], reply_event["execution"], context)


def deliver(envelope: Envelope, reply: dict, execution: str | None, context: LambdaContext) -> dict:
    """Sends `reply` (CallAgent's shape, replies.py) to the envelope's chat: text chunks, then files,
    resuming after the last item the claim counts for `execution` (None: an apology, not counted).

    Returns {"chunks": items in all, "sent": items sent now, "not_sent"?: [{"item", "method",
    "reason"}] for files replaced by a note}. Raises TurnLost (the turn is no longer this
    execution's), TelegramUnavailable (also when too little of Lambda's time is left for the next
    item: the ASL's retry resumes there), TelegramRateLimited, TelegramRejected,
    RecipientUnavailable, AttachmentUnavailable, DependencyUnavailable."""
    if execution:
        # The heartbeat of the conversation's turn; TurnLost sends the execution back to WaitForTurn.
        renew_lease(envelope, execution)
    calls = deliveries(envelope, reply)
    token = secret_field("bot_token")
    first = chunks_already_sent(envelope["update_id"], execution) if execution else 0
    # Where Telegram moved the conversation (a supergroup's new id, a gone topic): every later call too.
    moved: dict = {}
    not_sent: list[dict] = []
    for index in range(first, len(calls)):
        method, payload = calls[index]
        needed = longest_chunk_ms() if method == "sendMessage" else longest_file_ms()
        if execution and index > first and context.get_remaining_time_in_millis() < needed:
            # Stop before Lambda's timeout cuts a send off uncounted: the ASL's retry resumes here.
            raise TelegramUnavailable(f"time ran out after {index} of {len(calls)} items; resuming on retry")
        payload = retargeted(payload, moved)
        if method == "sendMessage":
            moved |= send_chunk(token, payload)
            metrics.add_metric(name="ReplyChunks", unit=MetricUnit.Count, value=1)
        else:
            change, reason = send_file(token, method, payload)
            moved |= change
            if reason:
                not_sent.append({"item": index, "method": method, "reason": reason})
        if execution:
            record_chunks_sent(envelope["update_id"], execution, index + 1)
    logger.info(
        "reply sent",
        extra={
            "chunks": len(calls),
            "files": sum(1 for method, _ in calls if method != "sendMessage"),
            "files_not_sent": len(not_sent),
            "resumed_at": first,
            "apology": execution is None,
        },
    )
    result: dict = {"chunks": len(calls), "sent": len(calls) - first}
    if not_sent:
        result["not_sent"] = not_sent
    return result


def send_file(token: str, method: str, payload: dict) -> tuple[dict, str]:
    """Send one attachment: download it (reply_files.download) and upload it with `method`
    (send_chunk fixes what it fixes for a message); when the file cannot be had or Telegram
    refuses it (TelegramRejected), send FILE_NOT_SENT in its place instead. Returns the changes
    of address (as send_chunk) and the reason the file was not sent ("" when it was). Raises
    AttachmentUnavailable (the host's trouble) and what send_chunk raises."""
    kind = next(kind for kind in SEND_METHODS if kind in payload)
    source = payload[kind]
    file_name = source.get("file_name") or reply_files.file_name_for(source["url"], kind)
    fields = {key: value for key, value in payload.items() if key != kind}
    started = time.monotonic()
    fetched = reply_files.download(
        source["url"], kind, bool(source.get("agent_origin")), bool(source.get("private_hosts"))
    )
    if isinstance(fetched, str):
        reason = fetched
    else:
        file, size = fetched
        downloaded = time.monotonic()
        with file:
            try:
                moved = send_chunk(token, fields, method, (kind, file_name, file))
                metrics.add_metric(name="ReplyFiles", unit=MetricUnit.Count, value=1)
                timing = {"download_ms": round((downloaded - started) * 1000)}
                timing["upload_ms"] = round((time.monotonic() - downloaded) * 1000)
                logger.info("file sent", extra={"method": method, "bytes": size, **timing})
                return moved, ""
            except TelegramRejected as error:
                reason = f"Telegram refused it ({error.description})"
    # Kind and reason only: the URL and the file name are the agent's and the person's words.
    logger.warning("file not sent, a note instead", extra={"method": method, "reason": reason})
    metrics.add_metric(name="AttachmentsNotSent", unit=MetricUnit.Count, value=1)
    note = {key: value for key, value in fields.items() if key not in ("caption", "caption_entities")}
    note["text"] = FILE_NOT_SENT.format(kind=kind, file_name=file_name, reason=reason)
    return send_chunk(token, note), reason


def longest_file_ms() -> int:
    """The longest one file can take, in ms: its download (reply_files.DOWNLOAD_SECONDS in all),
    SENDS_PER_CHUNK uploads (each: telegram.UPLOAD_TIMEOUT's connect, UPLOAD_SECONDS of body and
    its read for the answer), the inline wait (TELEGRAM_MAX_INLINE_WAIT_SECONDS) and one more
    call for the note or the count's write. A file is started only with this much time left
    (see longest_chunk_ms)."""
    per_call = (telegram.TIMEOUT.connect or 0) + (telegram.TIMEOUT.read or 0)
    per_upload = (telegram.UPLOAD_TIMEOUT.connect or 0) + UPLOAD_SECONDS + (telegram.UPLOAD_TIMEOUT.read or 0)
    inline_wait = number_setting("TELEGRAM_MAX_INLINE_WAIT_SECONDS")
    uploads = SENDS_PER_CHUNK * per_upload
    return int((reply_files.DOWNLOAD_SECONDS + uploads + inline_wait + per_call) * 1000)


def longest_chunk_ms() -> int:
    """The longest one chunk can take, in ms: SENDS_PER_CHUNK calls, each at most telegram.TIMEOUT's
    connect + read (a small body on the function's one connection: write and pool time are not
    counted), plus the inline wait (TELEGRAM_MAX_INLINE_WAIT_SECONDS) and one more call's time for
    the chunk count's write. A chunk is started only with this much time left, so Lambda's timeout
    does not cut a send off uncounted (a cut-off is retried as Lambda.Unknown, the chunk in flight
    then sent again)."""
    per_call = (telegram.TIMEOUT.connect or 0) + (telegram.TIMEOUT.read or 0)
    inline_wait = number_setting("TELEGRAM_MAX_INLINE_WAIT_SECONDS")
    return int(((SENDS_PER_CHUNK + 1) * per_call + inline_wait) * 1000)


def apology_text(envelope: Envelope, error: str) -> str | None:
    """The apology for `envelope`'s turn (it, then envelope["merged"]), failed with the error name
    `error`: RETRY_APOLOGY_TEXT ("I'll try again") when its dead letter will be replayed
    automatically; None (say nothing more) when every message of the turn was told that already (a
    replay failed again, and another will follow); else APOLOGY_TEXT ("I could not answer this").
    A reply that was partly delivered is not replayed (dead_letters: for a person): APOLOGY_TEXT."""
    turn = [envelope, *(envelope.get("merged") or [])]
    if will_be_replayed(turn, error) and not chunks_delivered(envelope["update_id"]):
        return None if all(envelope.get("replays") for envelope in turn) else setting("RETRY_APOLOGY_TEXT")
    return setting("APOLOGY_TEXT")


# 400 descriptions about the formatting (entities) of a message.
_FORMATTING_PROBLEMS = ("can't parse entities", "can't parse messageentity")
# 400 descriptions about the inline keyboard (BUTTON_URL_INVALID, "can't parse inline keyboard button", ...).
_KEYBOARD_PROBLEMS = ("button", "inline keyboard", "reply markup", "reply_markup")
# 400 descriptions that mean the forum topic (message_thread_id) is gone or closed, not the chat.
_THREAD_GONE = ("message thread not found", "topic_deleted", "topic_closed")


def send_chunk(
    token: str, payload: dict, method: str = "sendMessage", upload: tuple[str, str, BinaryIO] | None = None
) -> dict:
    """Send one `method` payload (with `upload`, (part name, file name, file), as multipart:
    telegram.upload), fixing what Telegram says can be fixed:

    - the formatting refused (not expected: it is rendered locally): resent as plain text
      (without entities, or a caption's caption_entities);
    - the inline keyboard refused: resent without it;
    - the group became a supergroup (400 with parameters.migrate_to_chat_id): resent there,
      without reply_parameters (the quoted message's id belongs to the old chat);
    - the topic is gone or closed ("message thread not found", TOPIC_DELETED, TOPIC_CLOSED):
      resent to the chat without message_thread_id and reply_parameters (Bot API:
      allow_sending_without_reply is "always False for replies in another chat or forum topic");
    - a 429 with a short retry_after (TELEGRAM_MAX_INLINE_WAIT_SECONDS): waited out once.

    Returns the changes of address to apply to the reply's later chunks (see `retargeted`):
    {"chat_id": new id, "reply_parameters": None} and/or {"message_thread_id": None, ...}; {}
    when none. Raises TelegramRejected, TelegramRateLimited, TelegramUnavailable,
    RecipientUnavailable (telegram.call) for what it cannot fix."""
    payload = dict(payload)
    moved: dict = {}
    waited = False
    entities = "entities" if method == "sendMessage" else "caption_entities"
    while True:
        try:
            if upload:
                part, file_name, file = upload
                telegram.upload(token, method, payload, part, file_name, file, UPLOAD_SECONDS)
            else:
                telegram.call(token, method, payload)
            return moved
        except TelegramRejected as error:
            description = error.description.lower()
            if entities in payload and any(words in description for words in _FORMATTING_PROBLEMS):
                # Rendered locally, so this is not expected; the words matter more than their look.
                logger.warning("formatting rejected, resending as plain text", extra={"reason": error.description})
                del payload[entities]
                continue
            if "reply_markup" in payload and any(problem in description for problem in _KEYBOARD_PROBLEMS):
                # The answer matters more than its buttons (e.g. a URL Telegram will not link to).
                logger.warning("buttons rejected, resending without them", extra={"reason": error.description})
                del payload["reply_markup"]
                continue
            if error.migrate_to_chat_id is not None and "chat_id" not in moved:
                logger.warning(
                    "group upgraded to a supergroup, sending there",
                    extra={"migrate_from_chat_id": payload["chat_id"], "migrate_to_chat_id": error.migrate_to_chat_id},
                )
                metrics.add_metric(name="ChatMigrations", unit=MetricUnit.Count, value=1)
                change = {"chat_id": error.migrate_to_chat_id, "reply_parameters": None}
                moved |= change
                payload = retargeted(payload, change)
                continue
            if "message_thread_id" in payload and any(gone in description for gone in _THREAD_GONE):
                logger.warning("topic gone, sending to the chat without it", extra={"reason": error.description})
                metrics.add_metric(name="TopicsGone", unit=MetricUnit.Count, value=1)
                change = {"message_thread_id": None, "reply_parameters": None}
                moved |= change
                payload = retargeted(payload, change)
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


def retargeted(payload: dict, changes: dict) -> dict:
    """`payload` with `changes` applied: a field set to None is removed, any other is set."""
    result = {**payload, **changes}
    return {key: value for key, value in result.items() if value is not None}
