"""``lgssm demo``: the main job of lgssm, on built-in data with fixed seeds.

    lgssm demo [--out DIR] [--small] [--quiet]

Part 1 is dynamax's notebook "MAP parameter estimation for an LG-SSM using EM
and SGD" (2-d latent states, 10-d emissions, 100 steps): the true model, a
randomly initialized one, EM, Adam at three learning rates, and Adam with the
dynamics frozen at their true values.

Part 2 is the seed document "Expectation maximization for SDE based SSMs": a
damped oscillator dx = F x dt + L dW observed through 3-d emissions with
per-step H_k (known), u_k and R_k (learned), fitted by closed-form EM on many
equally spaced sequences; then, with irregular observation times, by L-BFGS.

DIR (default ./lgssm-demo) receives the figures (PNG), ``results.json`` (every
number of the report; ``curves`` holds the learning curves) and ``report.html``
(self-contained: figures embedded). Every file is written atomically. Numbers
in the report are formatted by ``format_number``, as are the checks of
tests/python/test_demo.py. ``--small`` shrinks Part 2 so the whole demo runs in
seconds (Part 1 is cheap and stays full size).

``run_demo`` runs it from Python; ``lgssm demo`` (lgssm.cli.demo) and ``python -m
lgssm.demo`` from the command line. The modules: ``settings`` (seeds, sizes, the
true SDE parameters, figure captions), ``notebook`` (Part 1), ``sde`` (Part 2) and
``report`` (report.html).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict

import numpy as np

from .. import _notebook
from .._notebook import INIT_KEY, LEARNING_RATES, SAMPLE_KEY, SGD_KEY, TRUE_KEY
from ..io import atomic_write
from ._session import Session
from .notebook import run_notebook
from .report import format_number, render_report
from .sde import run_sde
from .settings import (
    FIGURES,
    FULL,
    IRREGULAR_SEED,
    SDE_DIFFUSION_COV,
    SDE_DRIFT,
    SDE_INIT_KEY,
    SDE_PARAMS_SEED,
    SDE_SAMPLE_SEED,
    SMALL,
    Settings,
)

__all__ = [
    "FIGURES",
    "FULL",
    "INIT_KEY",
    "IRREGULAR_SEED",
    "LEARNING_RATES",
    "SAMPLE_KEY",
    "SDE_DIFFUSION_COV",
    "SDE_DRIFT",
    "SDE_INIT_KEY",
    "SDE_PARAMS_SEED",
    "SDE_SAMPLE_SEED",
    "SGD_KEY",
    "SMALL",
    "Settings",
    "TRUE_KEY",
    "format_number",
    "run_demo",
]


def run_demo(out, *, small: bool = False, quiet: bool = False) -> dict:
    """Runs both parts (``small``: the SMALL settings, else FULL) and writes the figures,
    results.json and report.html to the directory ``out``, created if needed; progress
    goes to stderr unless ``quiet``. Returns the results as written to results.json."""
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)

    settings = SMALL if small else FULL
    run_ = Session(out, quiet)
    run_.say(f"lgssm demo ({'small' if small else 'full'} run): writing to {os.path.abspath(out)}")
    start = time.perf_counter()
    verbose = not quiet
    notebook = run_notebook(run_, settings, verbose)
    sde = run_sde(run_, settings, verbose)
    run_.wall_time["total"] = round(time.perf_counter() - start, 3)

    curves = {**notebook.pop("curves"), **sde.pop("curves")}
    results = _plain(
        {
            "mode": "small" if small else "full",
            "settings": {
                "state_dim": _notebook.STATE_DIM,
                "emission_dim": _notebook.EMISSION_DIM,
                "num_timesteps": _notebook.NUM_TIMESTEPS,
                **asdict(settings),
            },
            "notebook": notebook,
            "sde": sde,
            "wall_time_s": run_.wall_time,
            "curves": curves,
        }
    )
    with atomic_write(os.path.join(out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    report = render_report(run_, results)
    with atomic_write(os.path.join(out, "report.html"), "w") as fh:
        fh.write(report)
    run_.say(
        f"wrote {os.path.join(out, 'results.json')} and {os.path.join(out, 'report.html')} "
        f"({run_.wall_time['total']:.1f} s)"
    )
    return results


def _plain(x):
    """``x`` with NumPy scalars as Python numbers and non-finite floats as None (valid JSON)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x
