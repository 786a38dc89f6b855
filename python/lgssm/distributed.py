"""Fitting and inference over many sequences on a Dask cluster (extra ``lgssm[dask]``).

The sequences live on the workers in shards: a chunk (along the sequence axis)
of a NaN-padded dask array, a partition of a dask bag, or a file that a worker
reads itself. ``persist`` loads them once; every call below accepts either such
persisted ``Sequences`` or the raw data (then persisted for that call). Each EM
iteration sends the parameters to the cluster once, computes every shard's
sufficient statistics on the worker holding it (the C++ E-step), sums them by a
tree reduction and runs the M-step on the client; only parameters and
statistics travel. Sequence order is shard order, then order within a shard, so
a fit equals the single-process fit on the concatenated sequences.

Faults: shards are persisted with their lineage, so Dask recomputes (or re-reads)
the shards of a lost worker; ``checkpoint=PATH`` writes the parameters and the
history after every iteration (an lgssm model file, written atomically) and a
fit given an existing checkpoint resumes from it. See docs/distributed.md.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag as db
    import distributed
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError(f"lgssm.distributed needs Dask: pip install 'lgssm[dask]' ({err})") from None

from . import _core, io
from ._batch import Batch, as_batch
from ._keys import seeds
from ._progress import ProgressBar
from .continuous import ContinuousTimeSSM, per_sequence_times
from .models import FitSummary, LinearGaussianSSM
from .optimizers import Adam, adam
from .params import from_core, props_to_core

__all__ = ["ContinuousEM", "DiscreteEM", "Sequences", "fit_em", "fit_sgd", "marginal_log_prob", "persist", "smoother"]


# ---------------------------------------------------------------------------
# Data on the workers.


@dataclass
class Sequences:
    """Sequences persisted on a Dask cluster: ``shards`` are futures of
    ``lgssm._batch.Batch`` objects (lists of (num_timesteps_i, emission_dim)
    emissions and (num_timesteps_i, input_dim) inputs); ``sizes`` counts the
    sequences of each shard."""

    client: distributed.Client
    shards: list  # of distributed.Future
    sizes: list  # of int, sequences per shard
    emission_dim: int
    input_dim: int
    num_entries: int  # sum over sequences of num_timesteps_i * emission_dim
    has_times: bool = False  # every shard carries observation times

    @property
    def num_sequences(self) -> int:
        return sum(self.sizes)


def _bag_shard(partition, input_dim):
    items = list(partition)
    if not items:
        return Batch([], [], "list", 0)
    items = [item if isinstance(item, tuple) else (item,) for item in items]
    if len({len(item) for item in items}) > 1 or not 1 <= len(items[0]) <= 3:
        raise ValueError(
            "data: expected every bag element to be an emissions array, or every one an (emissions, "
            "inputs) pair, or every one an (emissions, inputs or None, times) triple, got a mix"
        )
    ys = [item[0] for item in items]
    us = None if len(items[0]) == 1 or all(item[1] is None for item in items) else [item[1] for item in items]
    if us is not None and any(u is None for u in us):
        raise ValueError("data: expected inputs in every bag element or in none, got a mix")
    batch = as_batch(ys, us, input_dim)
    if len(items[0]) == 3:
        batch.times = [np.asarray(item[2], dtype=np.float64) for item in items]
    return batch


def _file_shard(path, input_dim, read_options):
    try:
        data = io.read_data(path, **read_options)
    except FileNotFoundError:
        raise io.DataError(
            f"data: no such file {path} on a worker (workers read the files themselves, "
            f"so they must be on storage every worker sees)"
        ) from None
    batch = as_batch(data[0], data[1], input_dim)
    batch.times = None if data.times is None else per_sequence_times(batch, data.times, None)
    return batch


def _describe(shard: Batch):
    """(sequences, emission entries, emission_dims, input_dims, has times) of a shard."""
    return (
        len(shard.emissions),
        sum(y.size for y in shard.emissions),
        {y.shape[1] for y in shard.emissions},
        {u.shape[1] for u in shard.inputs},
        shard.times is not None,
    )


def _client(client):
    if client is None:
        try:
            return distributed.get_client()
        except ValueError:
            raise ValueError("client: expected a distributed.Client, got None and no client is running") from None
    if not isinstance(client, distributed.Client):
        raise ValueError(f"client: expected a distributed.Client, got {type(client).__name__}")
    return client


def persist(
    data,
    client=None,
    *,
    emission_dim: int,
    input_dim: int = 0,
    inputs=None,
    times=None,
    read_options: dict | None = None,
) -> Sequences:
    """Loads ``data`` onto the workers of ``client`` (default: the current client).

    ``data`` is one of
      - a dask array (num_sequences, num_timesteps, emission_dim), NaN-padded at
        the end of each sequence; ``inputs`` a dask array (num_sequences,
        num_timesteps, input_dim) or None (zeros); for continuous-time models
        ``times`` a dask array (num_sequences, num_timesteps) of observation
        times or None. One shard per chunk along the sequence axis;
      - a dask bag whose elements are (num_timesteps_i, emission_dim) arrays,
        (emissions, inputs) pairs or (emissions, inputs or None, times) triples;
        one shard per partition;
      - a list of file paths (CSV, NPY, NPZ, as ``lgssm.io.read_data`` reads them,
        with ``read_options`` such as ``sequence_column`` or ``times_column``; an
        NPZ file's ``times`` are read too); every worker reads its files itself
        (they must be on storage the workers share); one shard per file;
      - ``Sequences`` (returned as they are, after checking their dimensions).
    """
    client = _client(client)
    if isinstance(data, Sequences):
        if (data.emission_dim, data.input_dim) != (emission_dim, input_dim):
            raise ValueError(
                f"data: expected sequences with emission_dim {emission_dim} and input_dim {input_dim}, "
                f"got {data.emission_dim} and {data.input_dim}"
            )
        return data
    for name, value in (("inputs", inputs), ("times", times)):
        if value is not None and not isinstance(data, da.Array):
            raise ValueError(
                f"{name}: only a dask array of emissions takes a separate {name} array (bag elements "
                f"and files hold their own), got {name} with {type(data).__name__}"
            )
    if isinstance(data, da.Array):
        shards = _array_shards(data, inputs, times, input_dim)
        names = [f"chunk {i}" for i in range(len(shards))]
    elif isinstance(data, db.Bag):
        shards = [dask.delayed(_bag_shard)(part, input_dim) for part in data.to_delayed()]
        names = [f"partition {i}" for i in range(len(shards))]
    elif isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data):
        names = [os.fspath(p) for p in data]
        shards = [dask.delayed(_file_shard)(p, input_dim, dict(read_options or {})) for p in names]
    else:
        raise ValueError(
            f"data: expected a dask array (num_sequences, num_timesteps, emission_dim), a dask bag of "
            f"sequences, a non-empty list of file paths or lgssm.distributed.Sequences, "
            f"got {type(data).__name__}"
        )
    futures = client.compute(shards)
    described = client.gather(client.map(_describe, futures, pure=False))
    for (_, _, ydims, udims, _), where in zip(described, names):
        for name, dims, want in (("emission_dim", ydims, emission_dim), ("input_dim", udims, input_dim)):
            if dims - {want}:
                raise ValueError(f"data: expected sequences with {name} {want}, got {sorted(dims)} in {where}")
    keep = [i for i, d in enumerate(described) if d[0] > 0]
    if not keep:
        raise ValueError("data: expected at least one sequence, got none")
    return Sequences(
        client,
        [futures[i] for i in keep],
        [described[i][0] for i in keep],
        emission_dim,
        input_dim,
        sum(described[i][1] for i in keep),
        all(described[i][4] for i in keep),
    )


def _array_shards(data, inputs, times, input_dim):
    if data.ndim != 3:
        raise ValueError(
            f"data: expected a dask array of shape (num_sequences, num_timesteps, emission_dim), got shape {data.shape}"
        )
    data = data.rechunk({1: -1, 2: -1})
    ys = data.to_delayed().ravel()

    def along(name, value, shape, ndim):  # the chunks of value matching data's, or Nones
        if value is None:
            return [None] * len(ys)
        if not isinstance(value, da.Array) or value.ndim != ndim or value.shape[:2] != data.shape[:2]:
            raise ValueError(
                f"{name}: expected a dask array of shape {shape}, got {type(value).__name__} of "
                f"shape {getattr(value, 'shape', None)}".replace("'", "")
            )
        return value.rechunk((data.chunks[0],) + (-1,) * (ndim - 1)).to_delayed().ravel()

    us = along("inputs", inputs, data.shape[:2] + ("input_dim",), 3)
    ts = along("times", times, data.shape[:2], 2)
    return [dask.delayed(_array_shard)(y, u, t, input_dim) for y, u, t in zip(ys, us, ts)]


def _array_shard(emissions, inputs, times, input_dim):
    batch = as_batch(emissions, inputs, input_dim)
    batch.times = None if times is None else per_sequence_times(batch, times, None)
    return batch


# ---------------------------------------------------------------------------
# The E-step/M-step pair of a model, and the distributed E-step.


def _worker_threads() -> int:
    """The threads of the Dask worker running this task, which its C++ E-step
    keeps to (so n worker processes on a machine do not each take every core);
    0 (all hardware threads) outside a worker."""
    try:
        return distributed.get_worker().state.nthreads
    except ValueError:
        return 0


class DiscreteEM:
    """What the drivers need of a LinearGaussianSSM or LinearGaussianConjugateSSM.
    ``stats`` runs on the workers, everything else on the client. Another model
    plugs in through an object with these methods."""

    def __init__(self, model: LinearGaussianSSM, props):
        self.model, self.props = model, props

    def stats(self, params, shard: Batch, indices=None) -> _core.SufficientStats:
        """Sufficient statistics of the shard's sequences (EM: per step for
        per-step emission parameters), or of those at ``indices`` pooled over
        time (for minibatch gradients)."""
        core = self.model._core_params(params)
        if indices is None:
            return _core.sufficient_stats(
                core, shard.emissions, shard.inputs, np.ndim(params.emissions.weights) == 3, _worker_threads()
            )
        return _core.sufficient_stats(
            core, [shard.emissions[i] for i in indices], [shard.inputs[i] for i in indices], False, _worker_threads()
        )

    def log_prior(self, params) -> float:
        return self.model.log_prior(params)

    def m_step(self, params, stats):
        """The M-step; raises ValueError when it leaves the valid parameter set."""
        fitted = self.model.m_step(params, self.props, stats)
        self.validate(fitted)
        return fitted

    def validate(self, params):
        """Raises ValueError unless ``params`` are valid parameters of the model."""
        self.model._core_params(params)

    def to_unconstrained(self, params) -> np.ndarray:
        return np.asarray(_core.to_unconstrained(self.model._core_params(params), props_to_core(self.props)))

    def from_unconstrained(self, x, base):
        """The parameters at ``x`` (frozen ones from ``base``), not validated."""
        return from_core(_core.from_unconstrained(x, self.model._core_params(base), props_to_core(self.props)), base)

    def minibatch_loss(self, params, stats, batch_weight: float, scale: float):
        """fit_sgd's loss of a minibatch and its gradient over the unconstrained vector."""
        return _core.minibatch_loss(
            self.model._core_params(params),
            props_to_core(self.props),
            stats,
            batch_weight,
            scale,
            self.model._core_prior(),
        )

    def smoother(self, params, shard: Batch):
        return self.model.smoother(params, shard.emissions, shard.inputs)

    def marginal_log_prob(self, params, shard: Batch):
        return self.model.marginal_log_prob(params, shard.emissions, shard.inputs)


class ContinuousEM:
    """What the drivers need of a ContinuousTimeSSM: its generalized EM (as
    ``ContinuousTimeSSM.fit_em(..., accelerate=False)``), log likelihood and
    smoothing. Observation times come with the data, or are ``dt`` apart."""

    def __init__(self, model: ContinuousTimeSSM, props, dt=None, m_step_iters: int = 10):
        self.model, self.props, self.dt, self.m_step_iters = model, props, dt, int(m_step_iters)

    def _times(self, shard: Batch):
        return shard.times if self.dt is None else per_sequence_times(shard, None, self.dt)

    def stats(self, params, shard: Batch, indices=None) -> _core.ContinuousStats:
        return _core.continuous_sufficient_stats(
            self.model._core_params(params), shard.emissions, shard.inputs, self._times(shard), _worker_threads()
        )

    def log_prior(self, params) -> float:
        return 0.0

    def m_step(self, params, stats):
        """The generalized M-step; raises ValueError when it leaves the valid parameter set."""
        return self.model.m_step(params, self.props, stats, self.m_step_iters)

    def validate(self, params):
        self.model._core_params(params)

    def smoother(self, params, shard: Batch):
        return self.model.smoother(params, shard.emissions, times=self._times(shard), inputs=shard.inputs)

    def marginal_log_prob(self, params, shard: Batch):
        return self.model.marginal_log_prob(params, shard.emissions, times=self._times(shard), inputs=shard.inputs)


def _engine(model, props, dt=None, m_step_iters: int = 10):
    """The E-step/M-step pair of ``model``."""
    if isinstance(model, ContinuousTimeSSM):
        if dt is not None and not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt: expected a finite step > 0, got {dt!r}")
        _check_count("m_step_iters", m_step_iters, 1)
        return ContinuousEM(model, props, None if dt is None else float(dt), m_step_iters)
    if not isinstance(model, LinearGaussianSSM):
        raise ValueError(
            f"model: expected a LinearGaussianSSM, LinearGaussianConjugateSSM or ContinuousTimeSSM, "
            f"got {type(model).__name__}"
        )
    if dt is not None:
        raise ValueError(f"dt: only continuous-time models take dt, got dt={dt!r} with a {type(model).__name__}")
    return DiscreteEM(model, props)


def _persist(engine, data, client, inputs, times, read_options) -> Sequences:
    """``persist`` for the engine's model; continuous-time data must carry
    observation times unless the engine has a ``dt`` (and not both)."""
    model = engine.model
    seqs = persist(
        data,
        client,
        emission_dim=model.emission_dim,
        input_dim=model.input_dim,
        inputs=inputs,
        times=times,
        read_options=read_options,
    )
    if isinstance(engine, ContinuousEM) and seqs.has_times == (engine.dt is not None):
        raise ValueError(
            "dt: expected dt exactly when the data carry no observation times, got "
            + ("dt and times" if seqs.has_times else "neither dt nor times")
        )
    return seqs


def _identity(x):
    return x


def _share(client, value):
    """A future of ``value``: sent to the cluster once, fetched by the workers
    that need it, and (unlike scattered data) recomputed if its worker is lost."""
    return client.submit(_identity, value, pure=False)


def _sum(*values):
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _tree_sum(client, futures, fan_in: int = 8):
    """The sum of the futures' values by a tree on the workers, each task
    summing up to ``fan_in`` values in order (a fixed tree, hence a result
    independent of where the tasks ran)."""
    while len(futures) > 1:
        futures = [client.submit(_sum, *futures[i : i + fan_in], pure=False) for i in range(0, len(futures), fan_in)]
    return futures[0].result()


def _e_step(engine, params, seqs: Sequences, selection=None):
    """The summed statistics of all sequences, or of those in ``selection``
    (a dict shard index -> local indices)."""
    client = seqs.client
    shared = _share(client, params)
    if selection is None:
        parts = [client.submit(engine.stats, shared, shard, pure=False) for shard in seqs.shards]
    else:
        parts = [client.submit(engine.stats, shared, seqs.shards[s], idx, pure=False) for s, idx in selection.items()]
    return _tree_sum(client, parts)


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


def _check_count(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def _finish(params, history, summary, label, return_summary):
    if summary.termination == "numerical_failure":
        warnings.warn(f"{label} stopped: {summary.message}", RuntimeWarning, stacklevel=3)
    result = (params, np.asarray(history))
    return result + (summary,) if return_summary else result


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
    """Expectation-maximization as ``model.fit_em``, with the E-step on the
    workers. ``data``, ``inputs``, ``times``, ``read_options``: as for ``persist``.
    Returns (params, marginal_lls) (and a FitSummary with ``return_summary``):
    log p(y) (+ log prior) entering each iteration.

    A ContinuousTimeSSM is fitted by its generalized EM (as its ``fit_em`` with
    ``accelerate=False``; ``m_step_iters`` as there), at the data's observation
    times or, for data without times, at steps ``dt`` apart.

    ``callback(iteration, value)`` is called after each iteration's E-step (return
    False to stop). ``checkpoint``: a path; after every M-step the parameters and
    the history so far are written there (atomically); when it exists at the
    start, the fit resumes from it (same model, num_iters counts from the start)."""
    engine = _engine(model, props, dt, m_step_iters)
    _check_count("num_iters", num_iters, 0)
    if not tolerance >= 0:
        raise ValueError(f"tolerance: expected a number >= 0, got {tolerance!r}")
    seqs = _persist(engine, data, client, inputs, times, read_options)
    history = []
    resumed = _read_checkpoint(checkpoint, model, "em", {})
    if resumed is not None:
        params, state = resumed
        history = list(state["history"])
    bar = ProgressBar(num_iters, "EM", verbose)

    def record(it, lp):
        bar(it, lp)
        return True if callback is None else bool(callback(it, lp))

    def write_checkpoint(fitted, history_so_far):
        _write_checkpoint(checkpoint, model, fitted, props, {"method": "em", "history": list(history_so_far)})

    try:  # the one EM driver (C++, fit.hpp), with the E-step on the workers
        params, history, core_summary = _core.run_em(
            lambda p: _e_step(engine, p, seqs),
            lambda p, stats: stats.marginal_loglik + engine.log_prior(p),
            engine.m_step,
            params,
            num_iters,
            tolerance,
            record,
            None if checkpoint is None else write_checkpoint,
            history,
        )
    finally:
        bar.close()
    summary = FitSummary.from_core(core_summary)
    return _finish(params, history, summary, "EM", return_summary)


def fit_sgd(
    model,
    params,
    props,
    data,
    *,
    client=None,
    inputs=None,
    optimizer: Adam | None = None,
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
    """Adam on minibatches of whole sequences as ``model.fit_sgd`` (the same
    minibatches, loss and updates: the same result up to rounding), with each
    minibatch's statistics computed on the workers holding its sequences.
    Returns (params, losses per epoch). ``callback(epoch, loss)`` after each
    epoch; ``checkpoint``: as for ``fit_em``, written after every epoch (with
    Adam's state). Discrete-time models only."""
    if isinstance(model, ContinuousTimeSSM):
        raise ValueError(
            "model: expected a discrete-time model for fit_sgd, got a ContinuousTimeSSM (fit it with fit_em)"
        )
    engine = _engine(model, props)
    optimizer = adam() if optimizer is None else optimizer
    if not isinstance(optimizer, Adam):
        raise ValueError(f"optimizer: expected lgssm.optimizers.adam(...), got {type(optimizer).__name__}")
    options = _core.AdamOptions(optimizer.learning_rate, optimizer.b1, optimizer.b2, optimizer.eps)
    _core.validate_adam(options)
    _check_count("batch_size", batch_size, 1)
    _check_count("num_epochs", num_epochs, 0)
    seed = seeds(key, 1)[0]
    seqs = _persist(engine, data, client, inputs, None, read_options)
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
            batch_size,
            num_epochs,
            shuffle,
            seed,
            record,
            None if checkpoint is None else write_checkpoint,
            history,
        )
    finally:
        bar.close()
    summary = FitSummary.from_core(core_summary)
    return _finish(engine.from_unconstrained(x, params), history, summary, "SGD", return_summary)


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
    stats = _e_step(engine, params, seqs, selection)
    return engine.minibatch_loss(params, stats, batch_weight, float(seqs.num_entries))


# ---------------------------------------------------------------------------
# Inference over all sequences.


def marginal_log_prob(
    model, params, data, *, client=None, inputs=None, times=None, dt=None, read_options: dict | None = None
):
    """log p(y) of every sequence, (num_sequences,), in sequence order."""
    engine = _engine(model, None, dt)
    seqs = _persist(engine, data, client, inputs, times, read_options)
    shared = _share(seqs.client, params)
    parts = seqs.client.gather(
        [seqs.client.submit(engine.marginal_log_prob, shared, shard, pure=False) for shard in seqs.shards]
    )
    return np.concatenate([np.atleast_1d(p) for p in parts])


def smoother(
    model, params, data, *, client=None, inputs=None, times=None, dt=None, read_options: dict | None = None
) -> db.Bag:
    """The smoother of every sequence, computed on the workers: a dask bag
    (one partition per shard) of ``PosteriorLGSSMSmoothed``, one per sequence in
    sequence order, each unpadded ((num_timesteps_i, state_dim) and so on).
    ``.compute()`` brings them to the client; ``.map(...)`` keeps them on the cluster."""
    engine = _engine(model, None, dt)
    seqs = _persist(engine, data, client, inputs, times, read_options)
    return db.from_delayed([dask.delayed(engine.smoother)(params, shard) for shard in seqs.shards])
