"""The few Telegram Bot API calls the workflow makes, with every outcome named."""

import json
import time
from typing import BinaryIO, cast

import httpx

from tgrelay import clients
from tgrelay.errors import RecipientUnavailable, TelegramRateLimited, TelegramRejected, TelegramUnavailable
from tgrelay.settings import setting

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Each network operation of an upload (upload): Telegram answers once it has taken the file in.
UPLOAD_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# A longer retry_after is read as this (seconds); the ASL's flood-wait bound is far below it.
MAX_RETRY_AFTER = 86_400

# 400 descriptions that mean the chat is gone: nothing to deliver to. A gone topic
# ("message thread not found") is not: the chat is reachable (send_reply.py sends there).
_GONE = ("chat not found",)


def call(token: str, method: str, payload: dict, timeout: httpx.Timeout = TIMEOUT) -> dict:
    """Call Bot API `method` with a JSON body; its `result`, or the error class that names the
    outcome: TelegramRateLimited (429, with retry_after), TelegramUnavailable (5xx, network),
    RecipientUnavailable (403, chat not found), TelegramRejected (any other 4xx, with
    migrate_to_chat_id when Telegram gives one)."""
    try:
        response = clients.http().post(_method_url(token, method), json=payload, timeout=timeout)
    except httpx.TimeoutException:
        raise TelegramUnavailable(f"{method}: Telegram did not answer in time") from None
    except httpx.HTTPError as error:
        raise TelegramUnavailable(f"{method}: network error ({type(error).__name__})") from None
    return _result(method, response)


def upload(
    token: str, method: str, payload: dict, field: str, file_name: str, file: BinaryIO, deadline_seconds: float
) -> dict:
    """Call Bot API `method` (sendPhoto, sendDocument, ...) as multipart/form-data, the file's
    bytes read from `file` (rewound first) as the part `field` named `file_name`; the other
    fields of `payload` as form fields (objects as JSON, as the Bot API reads them). Sending the
    body gives up after `deadline_seconds` (TelegramUnavailable: retried, nothing was sent); the
    connection and the answer take at most UPLOAD_TIMEOUT's connect and read besides. Returns and
    raises as `call` does."""
    data = {key: value if isinstance(value, str) else json.dumps(value) for key, value in payload.items()}
    deadline = time.monotonic() + deadline_seconds
    # httpx reads it as a file (seek, tell, read): not an IO subclass, hence the cast.
    body = cast(BinaryIO, _DeadlineFile(file, deadline))
    try:
        response = clients.http().post(
            _method_url(token, method), data=data, files={field: (file_name, body)}, timeout=UPLOAD_TIMEOUT
        )
    except _DeadlinePassed:
        raise TelegramUnavailable(f"{method}: the upload did not finish within {deadline_seconds:g} s") from None
    except httpx.TimeoutException:
        raise TelegramUnavailable(f"{method}: Telegram did not answer in time") from None
    except httpx.HTTPError as error:
        raise TelegramUnavailable(f"{method}: network error ({type(error).__name__})") from None
    return _result(method, response)


def _method_url(token: str, method: str) -> str:
    # The URL contains the token: it never goes into a message, a log or an exception.
    return f"{setting('TELEGRAM_API_URL', 'https://api.telegram.org')}/bot{token}/{method}"


class _DeadlinePassed(Exception):
    """An upload ran past its deadline (raised while httpx reads the file)."""


class _DeadlineFile:
    """`file` for httpx's multipart encoder (it seeks, tells and reads), which refuses to go on
    reading past `deadline` (time.monotonic()): httpx's timeouts bound each network operation,
    not a whole upload, and SendReply counts on a bound for one (send_reply.longest_file_ms)."""

    def __init__(self, file: BinaryIO, deadline: float):
        self.file, self.deadline = file, deadline

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self.deadline:
            raise _DeadlinePassed
        return self.file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()


def _result(method: str, response: httpx.Response) -> dict:
    """The `result` of a Bot API answer, or the error that names it (see `call`)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    description = str(body.get("description", ""))[:300]
    parameters = body.get("parameters")
    if not isinstance(parameters, dict):
        parameters = {}
    status = response.status_code

    if status == 200 and body.get("ok") is True:
        return body.get("result", {})
    if status == 429:
        retry_after = parameters.get("retry_after", 1)
        if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0:
            retry_after = 1
        # The ASL adds the waits up with States.MathAdd (32-bit): a day is far beyond any bound.
        raise TelegramRateLimited(retry_after=min(retry_after, MAX_RETRY_AFTER))
    if status >= 500 or status == 200:
        raise TelegramUnavailable(f"{method}: Telegram answered {status} {description}".rstrip())
    if status == 403 or (status == 400 and any(gone in description.lower() for gone in _GONE)):
        raise RecipientUnavailable(f"{method}: {status} {description}")
    migrate_to_chat_id = parameters.get("migrate_to_chat_id")
    if not isinstance(migrate_to_chat_id, int) or isinstance(migrate_to_chat_id, bool):
        migrate_to_chat_id = None
    raise TelegramRejected(status, description or "no description", migrate_to_chat_id)
