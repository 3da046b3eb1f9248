"""A rotated secret is used once the Powertools cache expires: no redeploy."""

import json
import time

from unit_helpers import AGENT_TOKEN, BOT_TOKEN, WEBHOOK_SECRET
from unit_helpers import update as load_update


def test_a_rotated_webhook_secret_is_used_after_the_cache_expires(aws, post_webhook, monkeypatch):
    monkeypatch.setenv("SECRET_MAX_AGE_SECONDS", "1")
    update = load_update("private_text")
    assert post_webhook.post(update, secret=WEBHOOK_SECRET).status == 200

    rotated = "rotated-webhook-secret-value"
    aws.secrets.put_secret_value(
        SecretId=aws.secret_arn,
        SecretString=json.dumps({"bot_token": BOT_TOKEN, "webhook_secret": rotated, "agent_token": AGENT_TOKEN}),
    )
    # Within the cache's lifetime the old value still holds...
    assert post_webhook.post(update, secret=rotated).status == 403
    time.sleep(1.2)
    # ...after it, the new one does, and the old one is refused.
    assert post_webhook.post(update, secret=rotated).status == 200
    assert post_webhook.post(update, secret=WEBHOOK_SECRET).status == 403
