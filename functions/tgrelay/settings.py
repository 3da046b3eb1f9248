"""Settings from the environment the template gives each function.

Read on use, not at import, so the local engine and the tests can set them.
The values are names and tuning knobs; secrets live in Secrets Manager (see secrets.py).
"""

import os

from tgrelay.errors import ConfigurationError


def setting(name: str, default: str | None = None) -> str:
    """The environment variable `name`, or `default`; ConfigurationError if neither."""
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def number_setting(name: str, default: float | None = None) -> float:
    """A numeric setting; ConfigurationError if it is not a number."""
    raw = setting(name, None if default is None else str(default))
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} is not a number") from None
