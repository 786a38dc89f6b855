"""``lgssm demo``: runs ``lgssm.demo`` (both seed documents on built-in data, fixed seeds) and writes
its figures, results.json and report.html."""

from __future__ import annotations

import os

from ..demo import run_demo
from .errors import EXIT_OK, CommandError, NumericalFailure


def add_arguments(parser) -> None:
    parser.add_argument(
        "--out", default="lgssm-demo", metavar="DIR", help="output directory, created if needed (default: ./lgssm-demo)"
    )
    parser.add_argument(
        "--small", action="store_true", help="smaller sizes and fewer iterations for the SDE part (seconds, for tests)"
    )


def run(args) -> int:
    try:
        import matplotlib
    except ImportError:
        raise CommandError("lgssm demo needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CommandError(f"--out: {args.out} exists and is not a directory")
    results = run_demo(args.out, small=args.small, quiet=args.quiet)
    if not results["notebook"]["checks"]["frozen_dynamics_unchanged"]:
        raise NumericalFailure("the frozen dynamics weights changed during fit_sgd")
    return EXIT_OK
