"""Exit codes and the errors a command reports as one line on stderr."""

EXIT_OK, EXIT_NUMERICAL, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A failure reported as one line on stderr with exit code ``code``."""

    code = EXIT_USAGE


class NumericalFailure(CommandError):
    code = EXIT_NUMERICAL
