"""The one Secrets Manager secret (JSON: bot_token, webhook_secret, agent_token).

Powertools' SecretsProvider (clients.secrets_provider) caches it for SECRET_MAX_AGE_SECONDS, so a
rotated value is picked up within that time without a redeploy. Values are never logged.
"""

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

from tgrelay import clients
from tgrelay.errors import ConfigurationError, DependencyUnavailable
from tgrelay.settings import number_setting, setting


def secret_field(field: str, *, required: bool = True) -> str:
    """One field of the secret, stripped ("" when absent and not required).

    Raises ConfigurationError when a required field is empty or the secret is not a JSON object,
    DependencyUnavailable when Secrets Manager cannot be read (worth a retry)."""
    try:
        values = clients.secrets_provider().get(
            setting("SECRET_ARN"),
            transform="json",
            max_age=int(number_setting("SECRET_MAX_AGE_SECONDS", 300)),
        )
    except GetParameterError as error:
        # Secrets Manager unreachable or throttled while the cache refreshes: worth a retry.
        raise DependencyUnavailable(f"bot secret unavailable ({type(error.__cause__ or error).__name__})") from None
    except TransformParameterError:
        raise ConfigurationError("the bot secret is not a JSON object") from None
    value = values.get(field) if isinstance(values, dict) else None
    # Stray white space from a paste would make every request fail.
    value = value.strip() if isinstance(value, str) else ""
    if required and not value:
        raise ConfigurationError(f"field {field!r} of the bot secret is empty")
    return value
