"""Settings from the environment the template gives each function.

Read on use, not at import, so the local engine and the tests can set them. Each handler module
declares the settings it reads in one place (SETTINGS = declare(...)); their presence is checked
when Lambda loads that module, and tests/template checks the template gives each function its own.
The values are names and tuning knobs; secrets live in Secrets Manager (see secrets.py).
"""

import os
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Declared:
    """The settings one handler module reads, declared in one place (tests/unit/test_declared_settings.py
    holds the declaration to what the code reads; tests/template checks the template gives them).

    `required` have no default in the code: the function's environment must set them.
    `optional` have one (the template may still set them)."""

    module: str
    required: frozenset[str]
    optional: frozenset[str]

    def check(self) -> None:
        """ConfigurationError naming every required setting the environment lacks."""
        # Presence: an empty value (a template parameter left empty) still fails where it is read, as before.
        missing = sorted(name for name in self.required if name not in os.environ)
        if len(missing) == 1:
            raise ConfigurationError(f"environment variable {missing[0]} is not set ({self.module} needs it)")
        if missing:
            raise ConfigurationError(
                f"environment variables {', '.join(missing)} are not set ({self.module} needs them)"
            )


def declare(module: str, *, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Declared:
    """Declare the settings of the handler module `module` (its __name__); call it at import.

    When Lambda loads this module as the function's handler (_HANDLER names it), the required
    settings are checked now, at init: a function deployed without one fails its cold start
    naming every missing variable, not the first update that takes the path reading it.
    Imported by another handler (webhook imports turns), by the local engine or by the tests,
    nothing is checked. Either way values are still read on use, with setting()."""
    declared = Declared(module, frozenset(required), frozenset(optional))
    if os.environ.get("_HANDLER", "").rpartition(".")[0] == module:
        declared.check()
    return declared
