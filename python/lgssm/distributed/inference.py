"""Inference over all sequences on a Dask cluster: log likelihoods and smoothers,
each shard's on the worker holding it."""

from __future__ import annotations

import dask
import dask.bag as db
import numpy as np

from ._engines import engine_for, persist_for, share


def _engine_and_sequences(model, data, client, inputs, times, dt, read_options):
    """The engine of ``model`` for inference (no properties) and the data persisted for it."""
    engine = engine_for(model, None, dt)
    return engine, persist_for(engine, data, client, inputs, times, read_options)


def marginal_log_prob(
    model, params, data, *, client=None, inputs=None, times=None, dt=None, read_options: dict | None = None
) -> np.ndarray:
    """The log likelihood log p(y) of every sequence, computed on the workers.

    Parameters
    ----------
    model : LinearGaussianSSM, LinearGaussianConjugateSSM or ContinuousTimeSSM
        The model.
    params : ParamsLGSSM or ParamsCTSSM
        The parameters.
    data, client, inputs, times, dt, read_options : see fit_em
        As for `lgssm.distributed.fit_em`.

    Returns
    -------
    numpy.ndarray
        (num_sequences,), in sequence order.

    Raises
    ------
    ValueError
        When an argument is not valid; the message names it.
    """
    engine, seqs = _engine_and_sequences(model, data, client, inputs, times, dt, read_options)
    shared = share(seqs.client, params)
    parts = seqs.client.gather(
        [seqs.client.submit(engine.marginal_log_prob, shared, shard, pure=False) for shard in seqs.shards]
    )
    return np.concatenate([np.atleast_1d(p) for p in parts])


def smoother(
    model, params, data, *, client=None, inputs=None, times=None, dt=None, read_options: dict | None = None
) -> db.Bag:
    """The smoother of every sequence, computed on the workers.

    Parameters
    ----------
    model, params, data, client, inputs, times, dt, read_options : see marginal_log_prob
        As for `marginal_log_prob`.

    Returns
    -------
    dask.bag.Bag
        One partition per shard, of one ``PosteriorLGSSMSmoothed`` per sequence in
        sequence order, each unpadded ((num_timesteps_i, state_dim) means and so
        on). ``.compute()`` brings them to the client; ``.map(...)`` keeps them on
        the cluster.

    Raises
    ------
    ValueError
        As `marginal_log_prob`.
    """
    engine, seqs = _engine_and_sequences(model, data, client, inputs, times, dt, read_options)
    return db.from_delayed([dask.delayed(engine.smoother)(params, shard) for shard in seqs.shards])
