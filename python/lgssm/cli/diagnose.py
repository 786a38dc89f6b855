"""``lgssm diagnose``: residual tests and information criteria of a model on data, and the diagnostic figure."""

from __future__ import annotations

import json
import os

from .. import ContinuousTimeSSM, io
from ..diagnostics import FitResult, parameter_table
from ._data import add_model_data_arguments, load_model_and_data
from ._results import check_out
from .errors import EXIT_OK, CommandError, check_at_least

REPORT_SUFFIXES = (".json", ".txt")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def add_arguments(p):
    add_model_data_arguments(p)
    p.add_argument("--out", metavar="REPORT", help="write the report: .json (the numbers) or .txt (the summary table)")
    p.add_argument("--figure", metavar="FIG", help="write the diagnostic figure (.png, .pdf or .svg)")
    p.add_argument("--variable", type=int, default=0, metavar="I", help="emission component of the figure (default 0)")
    p.add_argument("--burn", type=int, default=0, metavar="B", help="leading steps left out of the tests (default 0)")


def fit_result(model, params, props, ys, us, burn: int, fit_summary=None) -> FitResult:
    """The FitResult of a discrete-time model on the command's sequences (a CommandError otherwise)."""
    if isinstance(model, ContinuousTimeSSM):
        raise CommandError(f"diagnostics are available for LinearGaussianSSM models, not {type(model).__name__}")
    return FitResult(model, params, props, ys, us, fit_summary=fit_summary, burn=burn)


def parameters(result: FitResult) -> list:
    """Each free parameter's name, estimate and standard error (None where the information
    is not positive definite), under the result's cov_type."""
    table = parameter_table(result.params, result.props)
    bse: list[float | None]
    try:
        bse = [float(x) for x in result.bse]
    except (ValueError, RuntimeError):
        bse = [None] * len(table)
    return [{"name": name, "estimate": value, "std_err": se} for (name, value), se in zip(table, bse)]


def report(result: FitResult) -> dict:
    """The numbers of the report (JSON-ready)."""
    return {
        "loglik": result.loglik,
        "num_params": result.num_params,
        "nobs": result.nobs,
        **{k: (None if v != v or v in (float("inf"), float("-inf")) else v) for k, v in result.criteria.items()},
        "burn": result.burn,
        "cov_type": result.cov_type,
        "parameters": parameters(result),
        "tests": result.tests(),
    }


def write_report(path: str, result: FitResult) -> None:
    """The report at ``path`` (atomically): JSON numbers or the text summary, by the extension."""
    text = json.dumps(report(result), indent=2) if path.lower().endswith(".json") else result.summary()
    with io.atomic_write(path, "w") as fh:
        fh.write(text + "\n")


def run(args) -> int:
    out = None if args.out is None else check_out(args.out, REPORT_SUFFIXES)
    figure = None if args.figure is None else check_out(args.figure, FIGURE_SUFFIXES, "--figure")
    check_at_least("--burn", args.burn, 0)
    check_at_least("--variable", args.variable, 0)
    model, params, _, ys, us, _, _ = load_model_and_data(args)
    props = io.load_model(args.model)[2]
    if args.variable >= model.emission_dim:
        raise CommandError(f"--variable: expected an integer in [0, {model.emission_dim - 1}], got {args.variable}")
    if args.burn >= min(len(y) for y in ys):
        raise CommandError(
            f"--burn: expected fewer than the {min(len(y) for y in ys)} steps of the data, got {args.burn}"
        )
    result = fit_result(model, params, props, ys, us, args.burn)
    summary = result.summary()  # computes everything before any file is written
    if figure is not None:
        import matplotlib

        if os.environ.get("MPLBACKEND") is None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = result.plot_diagnostics(variable=args.variable)
        try:
            if out is not None:
                write_report(out, result)
            from ..plot import _finish

            _finish(fig, figure)
        finally:
            plt.close(fig)
    elif out is not None:
        write_report(out, result)
    print(summary)
    return EXIT_OK
