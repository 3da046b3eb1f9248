"""The growing text of a streamed answer, shown in a private chat with sendMessageDraft.

Bot API 9.5, sendMessageDraft: chat_id (a private chat), draft_id (non-zero; "changes of drafts
with the same identifier are animated"), text (1-4096 characters after entities parsing),
entities or parse_mode, message_thread_id. A draft is ephemeral: the final message, which
SendReply sends as always, takes its place. So a draft is a courtesy: one Telegram refuses or
rate-limits is logged and skipped, and nothing about drafts can fail a turn.

One Drafts per CallAgent attempt: its draft_id is drawn at random, so a retried attempt starts
a fresh draft instead of animating the failed attempt's text into the new one. A daemon thread
sends: at most one draft per DRAFT_THROTTLE_SECONDS, always the latest text, rendered as the
final message will be (formatting.render); the agent's stream is read meanwhile, never held up.
"""

import secrets
import threading
import time
from collections.abc import Callable

import httpx
from aws_lambda_powertools import Logger

from tgrelay import telegram
from tgrelay.errors import RecipientUnavailable, TelegramRateLimited, TelegramRejected
from tgrelay.formatting import EntityParseError, render
from tgrelay.settings import number_setting
from tgrelay.shapes import Envelope
from tgrelay.streaming import TextSoFar
from tgrelay.telegram_limits import MESSAGE_TEXT_UNITS
from tgrelay.text import last_units

logger = Logger(child=True)

# One sendMessageDraft may take this long (the agent's stream is read meanwhile).
DRAFT_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
# When the answer is complete, the last draft (the whole text) is sent if the throttle lets it go
# within this many seconds; else the attempt returns at once (the final message follows sooner).
FINAL_DRAFT_MAX_WAIT_SECONDS = 1.0
# Bot API draft_id: non-zero; 31 bits fit every client's integer type.
MAX_DRAFT_ID = 2**31 - 1


def draft_payload(envelope: Envelope, draft_id: int, text: str, fmt: str) -> dict | None:
    """The sendMessageDraft payload showing `text` (in format `fmt`, formatting.FORMATS) in the
    chat of `envelope`: rendered as the final message is, the last 4096 UTF-16 units of it when it
    is longer (Telegram's limit for a message, and for a draft). None when there is nothing to
    show yet: blank, or markup that does not parse so far (an HTML tag still open; the next
    delta usually closes it)."""
    try:
        shown, entities = render(text, fmt)
    except EntityParseError:
        return None
    if not shown.strip():
        return None
    shown, entities = last_units(shown, entities, MESSAGE_TEXT_UNITS)
    payload: dict = {"chat_id": envelope["chat_id"], "draft_id": draft_id, "text": shown}
    if entities:
        payload["entities"] = entities
    if envelope.get("thread_id") is not None:
        payload["message_thread_id"] = envelope["thread_id"]
    return payload


class Drafts:
    """`show(text, fmt)` after each delta; `finish()` once the answer is complete, `stop()` on
    failure. `on_shown()` is called once, after the first draft Telegram accepted (the typing
    indicator stops then)."""

    def __init__(self, token: str, envelope: Envelope, on_shown: Callable[[], None]):
        self.token = token
        self.envelope = envelope
        self.on_shown = on_shown
        self.draft_id = secrets.randbelow(MAX_DRAFT_ID) + 1
        self.interval = number_setting("DRAFT_THROTTLE_SECONDS")
        self.sent = 0  # drafts Telegram accepted
        self._pending: tuple[TextSoFar, str] | None = None
        self._finishing = False
        self._stopped = False
        self._next_at = 0.0  # time.monotonic() before which no draft is sent
        self._condition = threading.Condition()
        # Started by the first show(): an answer that is not streamed costs no thread.
        self._thread = threading.Thread(target=self._run, name="drafts", daemon=True)

    def show(self, text: TextSoFar, fmt: str) -> None:
        """Make `text` (the answer so far, in format `fmt`) the next draft; returns at once. The text
        is joined (`text()`) only if that draft is sent: a later show() replaces it before."""
        with self._condition:
            self._pending = (text, fmt)
            self._condition.notify()
            if self._thread.ident is None and not self._stopped and not self._finishing:
                self._thread.start()

    def finish(self) -> None:
        """Send the latest text if it was not yet and the throttle lets it go within
        FINAL_DRAFT_MAX_WAIT_SECONDS, then end; waits at most that plus one send (DRAFT_TIMEOUT)."""
        with self._condition:
            if self._next_at - time.monotonic() > FINAL_DRAFT_MAX_WAIT_SECONDS:
                self._stopped = True
            self._finishing = True
            self._condition.notify()
        if self._thread.ident is not None:
            self._thread.join(FINAL_DRAFT_MAX_WAIT_SECONDS + (DRAFT_TIMEOUT.connect or 0) + (DRAFT_TIMEOUT.read or 0))
        self.stop()

    def stop(self) -> None:
        """No more drafts (a draft in flight still ends on its own, within DRAFT_TIMEOUT)."""
        with self._condition:
            self._stopped = True
            self._condition.notify()

    def _next(self) -> tuple[TextSoFar, str] | None:
        """The next text to send once its time has come; None when the drafts are over."""
        with self._condition:
            while True:
                if self._stopped or (self._finishing and self._pending is None):
                    return None
                wait = self._next_at - time.monotonic()
                if self._pending is not None and wait <= 0:
                    pending, self._pending = self._pending, None
                    return pending
                self._condition.wait(wait if self._pending is not None else None)

    def _run(self) -> None:
        while (pending := self._next()) is not None:
            self._next_at = time.monotonic() + self.interval
            text, fmt = pending
            payload = draft_payload(self.envelope, self.draft_id, text(), fmt)
            if payload is None:
                self._next_at = 0.0  # nothing was sent: the next text may go at once
                continue
            try:
                telegram.call(self.token, "sendMessageDraft", payload, timeout=DRAFT_TIMEOUT)
            except TelegramRateLimited as error:
                # Skipped; the next draft waits what Telegram asked.
                self._next_at = time.monotonic() + error.retry_after
                logger.info("draft not shown: rate limited", extra={"retry_after": error.retry_after})
                continue
            except (TelegramRejected, RecipientUnavailable) as error:
                # The next one would be refused the same way (e.g. TEXTDRAFT_PEER_INVALID): no more.
                logger.info("draft refused, no more drafts this attempt", extra={"reason": str(error)})
                return
            except Exception as error:  # never let a draft fail the turn
                logger.info("draft not shown", extra={"error": type(error).__name__})
                continue
            self.sent += 1
            if self.sent == 1:
                self.on_shown()
