"""What every fit does around its C++ driver, once for the discrete, continuous and distributed fits:
the progress bar over the run, and the result (with the warning of a numerical failure)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import _core
from ._checks import INT_MAX, count, nonnegative
from ._progress import ProgressBar

if TYPE_CHECKING:
    from .models import FitSummary


def core_options(cls, **fields):
    """An options struct of the C++ core (``_core.EmOptions``, ``SgdOptions``, ...)
    with ``fields`` set; the fields not given keep the struct's defaults."""
    options = cls()
    for name, value in fields.items():
        setattr(options, name, value)
    return options


def lbfgs_options(max_iters, gradient_tolerance, function_tolerance):
    """The core's L-BFGS options of a ``fit_lbfgs`` call's arguments, each checked and named."""
    return core_options(
        _core.LbfgsOptions,
        max_iters=count("max_iters", max_iters, 0, INT_MAX - 1),
        gradient_tolerance=nonnegative("gradient_tolerance", gradient_tolerance),
        function_tolerance=nonnegative("function_tolerance", function_tolerance),
    )


@dataclass(frozen=True)
class Driver:
    """A C++ fit with its options struct: called as ``fit(*data, options, callback)``;
    ``label`` names it in messages, ``total`` is the progress bar's number of steps."""

    fit: Callable[..., Any]
    label: str
    total: int
    options: Any


def run_with_progress(driver: Driver, verbose: bool, *data) -> Any:
    """The driver's fit of ``data`` (the core's parameters, properties, sequences, ...)
    with a progress bar as its callback (drawn when ``verbose``), closed however the fit ends."""
    bar = ProgressBar(driver.total, driver.label, verbose)
    try:
        return driver.fit(*data, driver.options, bar)
    finally:
        bar.close()


def fit_result(params, history, summary: FitSummary, label: str, return_summary: bool, stacklevel: int) -> tuple:
    """(params, history as an array) and, with ``return_summary``, the summary;
    warns when the fit stopped on a numerical failure. ``stacklevel``: the one
    the caller would give ``warnings.warn`` (the warning points at its caller's code)."""
    if summary.termination == "numerical_failure":
        warnings.warn(f"{label} stopped: {summary.message}", RuntimeWarning, stacklevel=stacklevel + 1)
    result = (params, np.asarray(history))
    return result + (summary,) if return_summary else result
