"""Exit codes and the errors a command reports as one line on stderr."""

from __future__ import annotations

EXIT_OK, EXIT_NUMERICAL, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A failure reported as one line on stderr with exit code ``code``."""

    code = EXIT_USAGE


class NumericalFailure(CommandError):
    code = EXIT_NUMERICAL


def check_at_least(option: str, value: int | None, low: int) -> None:
    """Raises a CommandError naming ``option`` unless its integer ``value`` (None: not given) is >= ``low``."""
    if value is not None and value < low:
        raise CommandError(f"{option}: expected an integer >= {low}, got {value}")
