"""Fits over the sequences on a Dask cluster: EM and SGD by the C++ drivers
(fit.hpp) with the statistics from the workers, checkpointed to a model file."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .. import _core, io
from .._checks import count, nonnegative
from .._fitting import core_options, fit_result
from .._keys import seeds
from .._progress import ProgressBar
from ..continuous import ContinuousTimeSSM
from ..models import FitSummary
from ..optimizers import core_step
from ._engines import DiscreteEM, e_step, engine_for, persist_for

# ---------------------------------------------------------------------------
# Checkpoints: an lgssm model file whose metadata holds the fit's state.


def _write_checkpoint(path, model, params, props, state: dict):
    io.save_model(path, model, params, props, metadata={"checkpoint": state})


def _read_checkpoint(path, model, method: str, settings: dict):
    """(params, state) of an existing checkpoint of the same fit, or None."""
    if path is None or not os.path.exists(path):
        return None
    saved_model, params, _ = io.load_model(path)
    state = io.read_metadata(path).get("checkpoint")
    if state is None or state.get("method") != method:
        raise ValueError(
            f"checkpoint: expected a {method} checkpoint written by lgssm.distributed, got {path} "
            f"({'method ' + repr(state.get('method')) if state else 'no checkpoint metadata'})"
        )
    dims = ("state_dim", "emission_dim", "input_dim")
    if [getattr(saved_model, d) for d in dims] != [getattr(model, d) for d in dims]:
        raise ValueError(
            f"checkpoint: expected a model with (state_dim, emission_dim, input_dim) = "
            f"{tuple(getattr(model, d) for d in dims)}, got "
            f"{tuple(getattr(saved_model, d) for d in dims)} in {path}"
        )
    for name, value in settings.items():
        if state.get(name) != value:
            raise ValueError(
                f"checkpoint: {path} was written by a fit with {name}={state.get(name)!r}, "
                f"this fit has {name}={value!r}"
            )
    return params, state


# ---------------------------------------------------------------------------
# Fitting.


def fit_em(
    model,
    params,
    props,
    data,
    *,
    client=None,
    inputs=None,
    times=None,
    dt=None,
    num_iters: int = 50,
    tolerance: float = 0.0,
    m_step_iters: int = 10,
    verbose: bool = True,
    callback=None,
    checkpoint=None,
    read_options: dict | None = None,
    return_summary: bool = False,
):
    """Expectation-maximization as ``model.fit_em``, with the E-step on the workers.

    A ContinuousTimeSSM is fitted by its generalized EM (as its ``fit_em`` with
    ``accelerate=False``), at the data's observation times or, for data without
    times, at steps ``dt`` apart.

    Parameters
    ----------
    model : LinearGaussianSSM, LinearGaussianConjugateSSM or ContinuousTimeSSM
        The model.
    params : ParamsLGSSM or ParamsCTSSM
        Where the fit starts (unless it resumes from ``checkpoint``).
    props : ParamsLGSSM or ParamsCTSSM
        The parameter properties: which parameters are trainable, the covariances' structure.
    data : dask.array.Array, dask.bag.Bag, list of paths, or Sequences
        The sequences, as for ``persist``.
    client : distributed.Client, optional
        The cluster's client; default the current one.
    inputs, times, read_options
        As for ``persist``.
    dt : float, optional
        Continuous-time models only: the step between observations of data without times.
    num_iters : int, default 50
        The number of iterations, counted from the start of a resumed fit.
    tolerance : float, default 0.0
        Stop when the relative change of the objective is at most this.
    m_step_iters : int, default 10
        Continuous-time models only: L-BFGS iterations for (drift, diffusion_cov) per M-step.
    verbose : bool, default True
        Draw a progress bar.
    callback : callable, optional
        ``callback(iteration, value)`` after each iteration's E-step; return False to stop.
    checkpoint : str or os.PathLike, optional
        After every M-step the parameters and the history so far are written
        there (atomically); when it exists at the start, the fit resumes from it
        (same model).
    return_summary : bool, default False
        Also return the FitSummary.

    Returns
    -------
    params : ParamsLGSSM or ParamsCTSSM
        The fitted parameters.
    marginal_lls : numpy.ndarray
        (num_iterations,): log p(y) (+ log prior) entering each iteration.
    summary : FitSummary
        With ``return_summary`` only: how the fit ended.

    Raises
    ------
    ValueError
        When an argument is not valid (the message names it), or the checkpoint
        belongs to another fit.

    Warns
    -----
    RuntimeWarning
        When the fit stopped on a numerical failure (the last good parameters are returned).
    """
    engine = engine_for(model, props, dt, m_step_iters)
    count("num_iters", num_iters, 0)
    nonnegative("tolerance", tolerance)
    seqs = persist_for(engine, data, client, inputs, times, read_options)
    history = []
    resumed = _read_checkpoint(checkpoint, model, "em", {})
    if resumed is not None:
        params, state = resumed
        history = list(state["history"])
    else:
        params = engine.start(params)
    bar = ProgressBar(num_iters, "EM", verbose)

    def record(it, lp):
        bar(it, lp)
        return True if callback is None else bool(callback(it, lp))

    def write_checkpoint(fitted, history_so_far):
        _write_checkpoint(checkpoint, model, fitted, props, {"method": "em", "history": list(history_so_far)})

    try:  # the one EM driver (C++, fit.hpp), with the E-step on the workers
        params, history, core_summary = _core.run_em(
            lambda p: e_step(engine, p, seqs),
            lambda p, stats: stats.marginal_loglik + engine.log_prior(p),
            engine.m_step,
            params,
            core_options(
                _core.EmLoopOptions,
                num_iters=num_iters,
                tolerance=tolerance,
                remedy=". A structured covariance or frozen parameters may help.",
            ),
            record,
            None if checkpoint is None else write_checkpoint,
            history,
        )
    finally:
        bar.close()
    return fit_result(params, history, FitSummary.from_core(core_summary), "EM", return_summary, 2)


def fit_sgd(
    model,
    params,
    props,
    data,
    *,
    client=None,
    inputs=None,
    optimizer: Any = None,
    batch_size: int = 1,
    num_epochs: int = 50,
    shuffle: bool = False,
    key=0,
    verbose: bool = True,
    callback=None,
    checkpoint=None,
    read_options: dict | None = None,
    return_summary: bool = False,
):
    """SGD on minibatches of whole sequences as ``model.fit_sgd``, with the statistics from the workers.

    The same minibatches, loss and updates as ``model.fit_sgd``: the same result
    up to rounding; each minibatch's statistics are computed on the workers
    holding its sequences. Discrete-time models only.

    Parameters
    ----------
    model, params, props, data, client, inputs, read_options : see fit_em
        As for `fit_em` (a discrete-time model and its parameters).
    optimizer : Adam or optax.GradientTransformation, optional
        As for ``model.fit_sgd``: ``lgssm.optimizers.adam(...)`` (default ``adam()``) or an
        optax optimizer (then without ``checkpoint``).
    batch_size : int, default 1
        Sequences per minibatch.
    num_epochs : int, default 50
        Passes over all sequences, counted from the start of a resumed fit.
    shuffle : bool, default False
        Shuffle the sequences before each epoch.
    key : int or numpy.random.Generator, default 0
        The seed of the shuffling.
    verbose : bool, default True
        Draw a progress bar.
    callback : callable, optional
        ``callback(epoch, loss)`` after each epoch; return False to stop.
    checkpoint : str or os.PathLike, optional
        As for ``fit_em``, written after every epoch (with Adam's state).
    return_summary : bool, default False
        Also return the FitSummary.

    Returns
    -------
    params : ParamsLGSSM
        The fitted parameters.
    losses : numpy.ndarray
        (num_epochs,): the loss of each epoch, -log p(y) per emission entry.
    summary : FitSummary
        With ``return_summary`` only: how the fit ended.

    Raises
    ------
    ValueError
        When an argument is not valid (a ContinuousTimeSSM among them, a checkpoint with
        an optax optimizer), or the checkpoint belongs to another fit.

    Warns
    -----
    RuntimeWarning
        When the loss became non-finite (the parameters with the lowest loss are returned).
    """
    if isinstance(model, ContinuousTimeSSM):
        raise ValueError(
            "model: expected a discrete-time model for fit_sgd, got a ContinuousTimeSSM (fit it with fit_em)"
        )
    engine = engine_for(model, props)
    assert isinstance(engine, DiscreteEM)  # a ContinuousTimeSSM was refused above
    adam_options, update = core_step(optimizer)
    if update is not None and checkpoint is not None:
        raise ValueError(
            "checkpoint: a checkpoint holds the C++ Adam's state; with an optax optimizer, "
            "pass checkpoint=None or use lgssm.optimizers.adam"
        )
    options = core_options(
        _core.SgdOptions,
        adam=adam_options,
        batch_size=count("batch_size", batch_size, 1),
        num_epochs=count("num_epochs", num_epochs, 0),
        shuffle=bool(shuffle),
        seed=seeds(key, 1)[0],
    )
    options.validate()
    seed = options.seed
    seqs = persist_for(engine, data, client, inputs, None, read_options)
    num_seqs = seqs.num_sequences
    starts = np.cumsum([0] + seqs.sizes)
    x = engine.to_unconstrained(params)
    adam_state = _core.AdamState(x.size)
    history = []
    settings = {"method": "sgd", "batch_size": int(batch_size), "shuffle": bool(shuffle), "seed": seed}
    resumed = _read_checkpoint(checkpoint, model, "sgd", settings)
    if resumed is not None:
        state = resumed[1]
        x = np.asarray(state["x"], dtype=np.float64)
        adam_state.m, adam_state.v = (np.asarray(state[k], dtype=np.float64) for k in "mv")
        adam_state.step = int(state["step"])
        history = list(state["history"])
    bar = ProgressBar(num_epochs, "SGD", verbose)

    def record(epoch, loss):
        bar(epoch, loss)
        return True if callback is None else bool(callback(epoch, loss))

    def write_checkpoint(at, state, history_so_far):
        _write_checkpoint(
            checkpoint,
            model,
            engine.from_unconstrained(at, params),
            props,
            dict(settings, history=list(history_so_far), x=at, m=state.m, v=state.v, step=state.step),
        )

    try:  # the one SGD driver (C++, fit.hpp), with each minibatch's statistics from the workers
        x, history, core_summary = _core.run_sgd(
            lambda at, batch, weight: _minibatch(engine, at, params, seqs, starts, batch, weight),
            num_seqs,
            x,
            adam_state,
            options,
            record,
            None if checkpoint is None else write_checkpoint,
            history,
            update,
        )
    finally:
        bar.close()
    fitted = engine.from_unconstrained(x, params)
    return fit_result(fitted, history, FitSummary.from_core(core_summary), "SGD", return_summary, 2)


def _minibatch(engine, x, base, seqs, starts, indices, batch_weight):
    """(loss, gradient) of one minibatch at x; loss inf where x is unusable."""
    params = engine.from_unconstrained(x, base)
    try:
        engine.validate(params)
    except ValueError:
        return math.inf, None
    shard_of = np.searchsorted(starts, indices, side="right") - 1
    selection = {}
    for s, i in zip(shard_of.tolist(), indices):
        selection.setdefault(s, []).append(i - int(starts[s]))
    stats = e_step(engine, params, seqs, selection)
    return engine.minibatch_loss(params, stats, batch_weight, float(seqs.num_entries))
