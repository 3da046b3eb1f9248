"""The few Telegram Bot API calls the workflow makes, with every outcome named."""

import httpx

from tgrelay import clients
from tgrelay.errors import RecipientUnavailable, TelegramRateLimited, TelegramRejected, TelegramUnavailable
from tgrelay.settings import setting

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A longer retry_after is read as this (seconds); the ASL's flood-wait bound is far below it.
MAX_RETRY_AFTER = 86_400

# 400 descriptions that mean the chat is gone: nothing to deliver to. A gone topic
# ("message thread not found") is not: the chat is reachable (send_reply.py sends there).
_GONE = ("chat not found",)


def call(token: str, method: str, payload: dict, timeout: httpx.Timeout = TIMEOUT) -> dict:
    """Call Bot API `method`; its `result`, or the error class that names the outcome:
    TelegramRateLimited (429, with retry_after), TelegramUnavailable (5xx, network),
    RecipientUnavailable (403, chat not found), TelegramRejected (any other 4xx, with
    migrate_to_chat_id when Telegram gives one)."""
    # The URL contains the token: it never goes into a message, a log or an exception.
    url = f"{setting('TELEGRAM_API_URL', 'https://api.telegram.org')}/bot{token}/{method}"
    try:
        response = clients.http().post(url, json=payload, timeout=timeout)
    except httpx.TimeoutException:
        raise TelegramUnavailable(f"{method}: Telegram did not answer in time") from None
    except httpx.HTTPError as error:
        raise TelegramUnavailable(f"{method}: network error ({type(error).__name__})") from None

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
