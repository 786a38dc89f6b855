"""The sequences on the workers: shards persisted on a Dask cluster, from a dask
array, a dask bag or files that the workers read themselves."""

from __future__ import annotations

import os
from dataclasses import dataclass

import dask
import dask.array as da
import dask.bag as db
import distributed
import numpy as np

from .. import io
from .._batch import Batch, as_batch
from ..continuous import per_sequence_times


@dataclass
class Sequences:
    """Sequences persisted on a Dask cluster, as ``persist`` returns them.

    Parameters
    ----------
    client : distributed.Client
        The client whose cluster holds the shards.
    shards : list of distributed.Future
        One future per shard, each of a batch of sequences: lists of
        (num_timesteps_i, emission_dim) emissions and (num_timesteps_i, input_dim)
        inputs (and (num_timesteps_i,) observation times when the data carry them).
    sizes : list of int
        The number of sequences of each shard.
    emission_dim : int
        The emission dimension of every sequence.
    input_dim : int
        The input dimension of every sequence.
    num_entries : int
        The sum over the sequences of num_timesteps_i * emission_dim.
    has_times : bool
        Whether every shard carries observation times.
    """

    client: distributed.Client
    shards: list  # of distributed.Future
    sizes: list  # of int, sequences per shard
    emission_dim: int
    input_dim: int
    num_entries: int  # sum over sequences of num_timesteps_i * emission_dim
    has_times: bool = False  # every shard carries observation times

    @property
    def num_sequences(self) -> int:
        """The number of sequences over all shards."""
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
    """Load sequences onto the workers of a Dask cluster, once.

    Parameters
    ----------
    data : dask.array.Array, dask.bag.Bag, list of str or os.PathLike, or Sequences
        The sequences, one of:

        - a dask array (num_sequences, num_timesteps, emission_dim), NaN-padded at
          the end of each sequence; one shard per chunk along the sequence axis;
        - a dask bag whose elements are (num_timesteps_i, emission_dim) arrays,
          (emissions, inputs) pairs or (emissions, inputs or None, times) triples;
          one shard per partition;
        - a non-empty list of file paths (CSV, NPY, NPZ, as ``lgssm.io.read_data``
          reads them; an NPZ file's ``times`` are read too); every worker reads its
          files itself, so they must be on storage the workers share; one shard per file;
        - ``Sequences``, returned as they are after checking their dimensions.
    client : distributed.Client, optional
        The cluster's client; default the current one.
    emission_dim : int
        The emission dimension every sequence must have.
    input_dim : int, default 0
        The input dimension every sequence must have.
    inputs : dask.array.Array, optional
        With a dask array ``data`` only: the inputs (num_sequences, num_timesteps,
        input_dim); None means zeros.
    times : dask.array.Array, optional
        With a dask array ``data`` only: the observation times (num_sequences,
        num_timesteps) of a continuous-time model.
    read_options : dict, optional
        With file paths only: keyword arguments of ``lgssm.io.read_data`` (such as
        ``sequence_column`` or ``times_column``).

    Returns
    -------
    Sequences
        The shards on the workers, with at least one sequence.

    Raises
    ------
    ValueError
        When ``client`` is not a client (or None with no client running), ``data``
        is none of the above, ``inputs`` or ``times`` come with data that is not a
        dask array, a shard's dimensions differ from ``emission_dim`` or
        ``input_dim``, or there is no sequence.
    lgssm.io.DataError
        When a worker cannot find or read a file.
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
