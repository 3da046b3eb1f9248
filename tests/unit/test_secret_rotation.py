"""A rotated secret is used once the Powertools cache expires: no redeploy."""

import json
from datetime import datetime, timedelta

from aws_lambda_powertools.utilities.parameters import base as parameters_base
from unit_helpers import AGENT_TOKEN, BOT_TOKEN, WEBHOOK_SECRET
from unit_helpers import update as load_update


class _CacheClock:
    """Stands in for `datetime` inside Powertools' parameter cache (it reads only datetime.now()):
    the cache's age moves when the test says so, not with the machine's speed. (If Powertools stops
    reading the clock there, monkeypatch fails loudly.)"""

    def __init__(self):
        self.current = datetime.now()

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def test_a_rotated_webhook_secret_is_used_after_the_cache_expires(aws, post_webhook, monkeypatch):
    clock = _CacheClock()
    monkeypatch.setattr(parameters_base, "datetime", clock)
    monkeypatch.setenv("SECRET_MAX_AGE_SECONDS", "60")
    update = load_update("private_text")
    assert post_webhook.post(update, secret=WEBHOOK_SECRET).status == 200

    rotated = "rotated-webhook-secret-value"
    aws.secrets.put_secret_value(
        SecretId=aws.secret_arn,
        SecretString=json.dumps({"bot_token": BOT_TOKEN, "webhook_secret": rotated, "agent_token": AGENT_TOKEN}),
    )
    # Within the cache's lifetime the old value still holds...
    clock.advance(59)
    assert post_webhook.post(update, secret=rotated).status == 403
    clock.advance(2)
    # ...after it, the new one does, and the old one is refused.
    assert post_webhook.post(update, secret=rotated).status == 200
    assert post_webhook.post(update, secret=WEBHOOK_SECRET).status == 403
