"""The one Secrets Manager secret (JSON: bot_token, webhook_secret, agent_token).

Powertools Parameters caches it for SECRET_MAX_AGE_SECONDS, so a rotated value is
picked up within that time without a redeploy. Values are never logged.
"""

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

from tgrelay.errors import ConfigurationError
from tgrelay.settings import number_setting, setting


def secret_field(field: str, *, required: bool = True) -> str:
    """One field of the secret; ConfigurationError when a required field is empty."""
    if "secrets" not in DEFAULT_PROVIDERS:
        # On boto3's default session, which the other clients use: Powertools' own provider
        # opens a second session and loads the SDK's models again (~0.1 s of a cold start).
        # clear_caches() still drops it with the cached values.
        DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))
    values = parameters.get_secret(
        setting("SECRET_ARN"),
        transform="json",
        max_age=int(number_setting("SECRET_MAX_AGE_SECONDS", 300)),
    )
    value = values.get(field) if isinstance(values, dict) else None
    if required and not value:
        raise ConfigurationError(f"field {field!r} of the bot secret is empty")
    return value or ""
