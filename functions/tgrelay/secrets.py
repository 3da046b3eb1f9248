"""The one Secrets Manager secret (JSON: bot_token, webhook_secret, agent_token).

Powertools Parameters caches it for SECRET_MAX_AGE_SECONDS, so a rotated value is
picked up within that time without a redeploy. Values are never logged.
"""

from aws_lambda_powertools.utilities import parameters

from tgrelay.errors import ConfigurationError
from tgrelay.settings import number_setting, setting


def secret_field(field: str, *, required: bool = True) -> str:
    """One field of the secret; ConfigurationError when a required field is empty."""
    values = parameters.get_secret(
        setting("SECRET_ARN"),
        transform="json",
        max_age=int(number_setting("SECRET_MAX_AGE_SECONDS", 300)),
    )
    value = values.get(field) if isinstance(values, dict) else None
    if required and not value:
        raise ConfigurationError(f"field {field!r} of the bot secret is empty")
    return value or ""
