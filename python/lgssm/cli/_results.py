"""Output files of the commands: checking the path up front, writing per-step results."""

from __future__ import annotations

import os

import numpy as np

from .. import io
from .errors import CommandError

RESULT_SUFFIXES = (".npz", ".csv", ".tsv")


def add_out_argument(p, contents: str) -> None:
    """The required ``--out OUT`` of a command that writes a results file; ``contents`` is its help."""
    p.add_argument("--out", required=True, metavar="OUT", help=contents)


def check_out(path: str, suffixes, option: str = "--out") -> str:
    """Checks an output path before any work is done."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in suffixes:
        raise CommandError(
            f"{option}: unknown format {ext or '(no extension)'!r} for {path} (expected {' or '.join(suffixes)})"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{option}: {path} is a directory")
    return path


def write_results(path: str, single: bool, ids, index, per_step: dict, per_sequence: dict | None = None):
    """Writes per-step results (dict name -> list of (num_steps_i, ...) arrays, one per sequence).

    ``.npz``: arrays (num_steps, ...) for a single sequence, else NaN-padded
    (num_sequences, max_num_steps, ...) with ``sequence_ids`` and ``sequence_lengths``;
    ``per_sequence`` values (one per sequence) are added as they are.
    CSV: one row per step of every sequence; columns ``sequence`` (several
    sequences only), ``t`` (the step index or time), then the arrays' columns.
    """
    lengths = [len(x) for x in index]
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        out = {}
        if single:
            out["t"] = index[0]
            out.update({k: v[0] for k, v in per_step.items()})
            out.update({k: v[0] for k, v in (per_sequence or {}).items()})
        else:
            out["sequence_ids"] = np.array(ids)
            out["sequence_lengths"] = np.array(lengths)
            out["t"] = _pad(index)
            out.update({k: _pad(v) for k, v in per_step.items()})
            out.update({k: np.asarray(v) for k, v in (per_sequence or {}).items()})
        io.write_arrays(path, **out)
        return
    table = {}
    if not single:
        table["sequence"] = np.array([i for i, n in zip(ids, lengths) for _ in range(n)])
    table["t"] = np.concatenate(index)
    table.update({k: np.concatenate(v) for k, v in per_step.items()})
    io.write_arrays(path, **table)


def _pad(items) -> np.ndarray:
    longest = max(len(x) for x in items)
    out = []
    for x in items:
        x = np.asarray(x, dtype=np.float64)
        width = [(0, longest - len(x))] + [(0, 0)] * (x.ndim - 1)
        out.append(np.pad(x, width, constant_values=np.nan))
    return np.stack(out)


def step_index(ys, ts):
    """Per sequence, the times (continuous-time data) or the step indices 0, 1, ..."""
    if ts is not None:
        return [np.asarray(t, dtype=np.float64) for t in ts]
    return [np.arange(len(y), dtype=np.int64) for y in ys]


def stds(covs) -> np.ndarray:
    return np.sqrt(np.maximum(np.diagonal(np.asarray(covs), axis1=-2, axis2=-1), 0.0))
