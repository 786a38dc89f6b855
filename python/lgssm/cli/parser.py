"""The command table, the argument parser and ``main``: runs a command and turns its errors into
one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import __version__
from . import demo, diagnose, fit, loglik, simulate, smooth_forecast
from ._messages import one_line
from .errors import EXIT_NUMERICAL, EXIT_OK, EXIT_USAGE, CommandError


@dataclass(frozen=True)
class Command:
    """``lgssm NAME``: ``add_arguments(parser)`` declares its options, ``run(args)`` does the
    work and returns an exit code (or raises)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("fit", "fit a model to data (EM, SGD or L-BFGS) and write it as JSON", fit.add_arguments, fit.run),
        Command(
            "smooth",
            "smoothed states and emissions given data",
            smooth_forecast.add_smooth_arguments,
            smooth_forecast.smooth,
        ),
        Command(
            "forecast",
            "forecast states and emissions past the end of the data",
            smooth_forecast.add_forecast_arguments,
            smooth_forecast.forecast,
        ),
        Command("simulate", "sample states and emissions from a model", simulate.add_arguments, simulate.run),
        Command("loglik", "print the marginal log likelihood log p(data)", loglik.add_arguments, loglik.run),
        Command(
            "diagnose",
            "residual tests (Ljung-Box, Jarque-Bera, heteroskedasticity) and information criteria of a model "
            "on data; writes the report and the diagnostic figure",
            diagnose.add_arguments,
            diagnose.run,
        ),
        Command(
            "demo",
            "run the built-in demo (dynamax's LG-SSM EM/SGD notebook and EM for an SDE-based SSM); "
            "writes figures, results.json and report.html",
            demo.add_arguments,
            demo.run,
        ),
    )
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lgssm",
        description="Linear Gaussian state-space models: fit, smooth, forecast, "
        "simulate and evaluate from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"lgssm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries on stderr")
        p.set_defaults(run=cmd.run)
    return parser


def main(argv=None) -> int:
    """Run the ``lgssm`` command line in-process.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; None for ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit code: 0 success, 1 numerical failure, 2 usage error or bad input.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    prog = f"lgssm {args.command}"
    try:
        code = args.run(args)
        return EXIT_OK if code is None else int(code)
    except CommandError as err:
        return _fail(prog, str(err), err.code)
    except FileNotFoundError as err:
        return _fail(prog, f"no such file: {err.filename}", EXIT_USAGE)
    except (IsADirectoryError, NotADirectoryError, PermissionError) as err:
        return _fail(prog, f"{err.strerror}: {err.filename}", EXIT_USAGE)
    except ValueError as err:  # io.DataError, io.ModelFileError, lgssm.InvalidArgument
        return _fail(prog, str(err), EXIT_USAGE)
    except MemoryError as err:
        return _fail(
            prog,
            f"out of memory{': ' + str(err) if str(err) else ''}; no output written (try smaller inputs)",
            EXIT_USAGE,
        )
    except (RuntimeError, ArithmeticError, np.linalg.LinAlgError) as err:
        return _fail(prog, f"numerical failure: {err}", EXIT_NUMERICAL)
    except OSError as err:
        return _fail(prog, f"{err.strerror or err}: {err.filename or ''}".rstrip(": "), EXIT_NUMERICAL)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted; no output written", 130)


def _fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {one_line(str(message))}", file=sys.stderr)
    return code
