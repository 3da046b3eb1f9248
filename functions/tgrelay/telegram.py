"""The few Telegram Bot API calls the workflow makes, with every outcome named."""

import httpx

from tgrelay import clients
from tgrelay.errors import RecipientUnavailable, TelegramRateLimited, TelegramRejected, TelegramUnavailable
from tgrelay.settings import setting

TIMEOUT = httpx.Timeout(10.0, connect=5.0)

# 400 descriptions that mean the chat or topic is gone: nothing to deliver to.
_GONE = ("chat not found", "message thread not found", "topic_closed", "topic_deleted")


def call(token: str, method: str, payload: dict, timeout: httpx.Timeout = TIMEOUT) -> dict:
    """Call Bot API `method`; its `result`, or the error class that names the outcome."""
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
    status = response.status_code

    if status == 200 and body.get("ok") is True:
        return body.get("result", {})
    if status == 429:
        retry_after = (body.get("parameters") or {}).get("retry_after", 1)
        raise TelegramRateLimited(retry_after=retry_after if isinstance(retry_after, int) else 1)
    if status >= 500 or status == 200:
        raise TelegramUnavailable(f"{method}: Telegram answered {status} {description}".rstrip())
    if status == 403 or (status == 400 and any(gone in description.lower() for gone in _GONE)):
        raise RecipientUnavailable(f"{method}: {status} {description}")
    raise TelegramRejected(status, description or "no description")
