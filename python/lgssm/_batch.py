"""One sequence, a NaN-padded 3-D batch, or a list of sequences: in and out.

The C++ core takes lists of per-sequence 2-D arrays; this module turns what a
user passes into such lists and packs per-sequence results back into the
user's layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SHAPES = "(num_timesteps, {d}), (num_sequences, num_timesteps, {d}) or a list of 2-D arrays"


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


def _sequences(value, name: str, dim_name: str):
    """(kind, list of 2-D float64 arrays, the 3-D array for kind "padded" else None)."""
    if isinstance(value, (list, tuple)) and len(value) > 0 and all(np.ndim(v) == 2 for v in value):
        return "list", [np.ascontiguousarray(v, dtype=np.float64) for v in value], None
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected numbers in an array of shape {_SHAPES.format(d=dim_name)}, "
                         f"got {type(value).__name__} ({err})") from None
    if a.ndim == 2:
        return "single", [np.ascontiguousarray(a)], None
    if a.ndim == 3:
        a = np.ascontiguousarray(a)
        return "padded", list(a), a
    raise ValueError(f"{name}: expected an array of shape {_SHAPES.format(d=dim_name)}, got shape {a.shape}")


def as_batch(emissions, inputs, input_dim: int) -> Batch:
    """Normalizes ``emissions`` (and ``inputs``; None means zeros, as in dynamax)."""
    kind, ys, padded = _sequences(emissions, "emissions", "emission_dim")
    num_timesteps = max(y.shape[0] for y in ys)
    if kind == "padded":
        # Trailing all-NaN rows are padding: the sequence ends at its last observed step.
        steps = np.arange(1, padded.shape[1] + 1)
        last = np.max(np.where(np.all(np.isnan(padded), axis=2), 0, steps), axis=1, initial=0)
        lengths = np.where(last > 0, last, padded.shape[1])
        ys = [y[:n] for y, n in zip(ys, lengths.tolist())]
    if inputs is None:
        us = [np.zeros((y.shape[0], input_dim)) for y in ys]
    else:
        ikind, us, _ = _sequences(inputs, "inputs", "input_dim")
        if ikind != kind or len(us) != len(ys):
            raise ValueError(f"inputs: expected the layout of emissions ({kind}, {len(ys)} sequences), "
                             f"got {ikind} with {len(us)} sequences")
        if kind == "padded":
            us = [np.ascontiguousarray(u[: y.shape[0]]) for u, y in zip(us, ys)]
    return Batch(ys, us, kind, num_timesteps)
