"""The ``lgssm`` command line::

    lgssm fit DATA --state-dim N [--method em|sgd|lbfgs] [--iters K] [--learning-rate LR]
              [--freeze NAME ...] [--emission-cov full|diagonal|scalar] [--init MODEL.json]
              [--times COLUMN] [--seed S] --out MODEL.json [--report REPORT.txt|REPORT.json]
    lgssm smooth MODEL.json DATA --out OUT.npz|OUT.csv
    lgssm forecast MODEL.json DATA --steps K [--forecast-dt DT] --out OUT.npz|OUT.csv
    lgssm simulate MODEL.json --steps T [--num-sequences N] [--seed S] [--dt DT] --out OUT.npz|OUT.csv
    lgssm loglik MODEL.json DATA [--out OUT.npz|OUT.csv]
    lgssm diagnose MODEL.json DATA [--out REPORT.json|REPORT.txt] [--figure FIG.png] [--burn B]
    lgssm demo [--out DIR] [--small]

``fit`` remembers in the model file the CSV columns it used (emissions, inputs,
times, sequence ids; docs/json-format.md), and smooth, forecast and loglik use
them for CSV data unless the options say otherwise. When neither
``--emission-columns`` nor ``--times`` is given and the first emission column is
named like a time index (year, time, t, date, ...) and holds increasing
integers, ``fit`` does not fit it as an emission: evenly spaced, it is left out;
unevenly spaced, it becomes the observation times. Either way one line on
stderr says so.

Continuous-time data carry observation times (``--times COLUMN`` for CSV, an
array ``times`` in .npz); ``fit`` then fits ``lgssm.ContinuousTimeSSM`` (EM or
L-BFGS), and the other commands pass the times to it. ``--forecast-dt`` and
``--dt`` space the forecast and simulation times of such models.

DATA is CSV, NPY or NPZ (see ``lgssm.io.read_data``); models are JSON
(docs/json-format.md). Exit codes: 0 success, 1 numerical failure, 2 usage
error or bad input; errors are one line on stderr. Outputs are written
atomically and only on success.

Each command group is a module of this package (fit, smooth_forecast, simulate,
loglik, diagnose, demo) with each command's ``add_arguments(parser)`` and run function
``(args) -> int``; ``parser.COMMANDS`` lists the commands.

Call ``main(argv)`` to run in-process; it returns the exit code.
"""

from ._data import DATA_SUFFIXES
from ._results import RESULT_SUFFIXES
from .errors import EXIT_NUMERICAL, EXIT_OK, EXIT_USAGE, CommandError, NumericalFailure
from .fit import DEFAULT_ITERS, METHOD_LABELS, METHODS, STRUCTURES
from .parser import COMMANDS, Command, build_parser, main

__all__ = [
    "COMMANDS",
    "Command",
    "CommandError",
    "DATA_SUFFIXES",
    "DEFAULT_ITERS",
    "EXIT_NUMERICAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "METHODS",
    "METHOD_LABELS",
    "NumericalFailure",
    "RESULT_SUFFIXES",
    "STRUCTURES",
    "build_parser",
    "main",
]
