"""One sequence, a NaN-padded 3-D batch, or a list of sequences: in and out.

The C++ core takes lists of per-sequence 2-D arrays; this module turns what a
user passes into such lists and packs per-sequence results back into the
user's layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import real_array

_SHAPES = "(num_timesteps, {d}), (num_sequences, num_timesteps, {d}) or a list of 2-D arrays"

# The time offset (as Batch.pack takes it) of the posterior fields that are not per step.
_FIELD_TIME_OFFSETS = {"marginal_loglik": None, "num_diffuse_timesteps": None, "smoothed_cross_covariances": -1}


@dataclass
class Batch:
    emissions: list  # of (T_i, emission_dim) float64 arrays
    inputs: list  # of (T_i, input_dim) float64 arrays
    kind: str  # "single" (2-D), "padded" (3-D) or "list"
    num_timesteps: int  # the padded length (max T_i)
    times: list | None = None  # of (T_i,) observation times (continuous-time data), when given

    def pack(self, items, time_offset=None, time_axis=0):
        """Per-sequence results in the caller's layout. ``time_offset`` (e.g. 0
        for per-step arrays, -1 for cross covariances) marks arrays with a time
        axis, which a padded batch pads with NaN back to full length."""
        if self.kind == "single":
            return items[0]
        if self.kind == "list":
            return list(items)
        if time_offset is None:
            return np.stack([np.asarray(x) for x in items])
        length = self.num_timesteps + time_offset
        first = np.asarray(items[0])
        shape = list(first.shape)
        shape[time_axis] = length
        out = np.full((len(items), *shape), np.nan)
        for i, x in enumerate(items):
            x = np.asarray(x)
            index = [slice(None)] * x.ndim
            index[time_axis] = slice(0, x.shape[time_axis])
            out[(i, *index)] = x
        return out

    def pack_results(self, cls, dicts: list):
        """Per-sequence results, each a dict of ``cls``'s fields (filter or smoother
        output), in the caller's layout: a list of ``cls`` for a list of sequences,
        else one ``cls`` whose fields are packed (per-step arrays padded with NaN,
        ``marginal_loglik`` stacked, the cross covariances one step shorter)."""
        if self.kind == "list":
            return [cls(**d) for d in dicts]
        return cls(**{key: self.pack([d[key] for d in dicts], _FIELD_TIME_OFFSETS.get(key, 0)) for key in dicts[0]})


def _is_2d(value) -> bool:
    try:
        return np.ndim(value) == 2
    except ValueError:  # ragged nesting
        return False


def sequences(value, name: str, dim_name: str, dim: int | None = None):
    """(kind, list of 2-D float64 arrays, the 3-D array for kind "padded" else None).
    With ``dim`` 1, a 1-D array (or pandas Series) is one sequence of that one component."""
    if isinstance(value, (list, tuple)) and len(value) > 0 and all(_is_2d(v) for v in value):
        return "list", [np.ascontiguousarray(real_array(f"{name}[{i}]", v)) for i, v in enumerate(value)], None
    if isinstance(value, (list, tuple)) and len(value) == 0:
        raise ValueError(f"{name}: expected at least one sequence, got an empty {type(value).__name__}")
    a = real_array(name, value)
    if a.ndim == 1 and dim == 1:
        a = a[:, None]
    if a.ndim == 2:
        return "single", [np.ascontiguousarray(a)], None
    if a.ndim == 3:
        if a.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one sequence, got shape {a.shape}")
        a = np.ascontiguousarray(a)
        return "padded", list(a), a
    hint = f" (a 1-D array is one sequence only when {dim_name} is 1)" if a.ndim == 1 else ""
    raise ValueError(f"{name}: expected an array of shape {_SHAPES.format(d=dim_name)}, got shape {a.shape}{hint}")


def padded_lengths(padded: np.ndarray) -> list[int]:
    """The length of each sequence of a NaN-padded (num_sequences, num_timesteps, dim) batch:
    trailing all-NaN rows are padding, so a sequence ends at its last observed step (a
    sequence with no observed step keeps the full length)."""
    steps = np.arange(1, padded.shape[1] + 1)
    last = np.max(np.where(np.all(np.isnan(padded), axis=2), 0, steps), axis=1, initial=0)
    return np.where(last > 0, last, padded.shape[1]).tolist()


def as_batch(emissions, inputs, input_dim: int, emission_dim: int | None = None) -> Batch:
    """Normalizes ``emissions`` (and ``inputs``; None means zeros, as in dynamax). A 1-D
    ``emissions`` is one sequence when ``emission_dim`` is 1."""
    kind, ys, padded = sequences(emissions, "emissions", "emission_dim", emission_dim)
    num_timesteps = max(y.shape[0] for y in ys)
    if kind == "padded":
        ys = [y[:n] for y, n in zip(ys, padded_lengths(padded))]
    if inputs is None:
        us = [np.zeros((y.shape[0], input_dim)) for y in ys]
    else:
        ikind, us, _ = sequences(inputs, "inputs", "input_dim")
        if ikind != kind or len(us) != len(ys):
            raise ValueError(
                f"inputs: expected the layout of emissions ({kind}, {len(ys)} sequences), "
                f"got {ikind} with {len(us)} sequences"
            )
        if kind == "padded":
            us = [np.ascontiguousarray(u[: y.shape[0]]) for u, y in zip(us, ys)]
    return Batch(ys, us, kind, num_timesteps)
