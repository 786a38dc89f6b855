"""Utilities with dynamax's semantics (``dynamax.utils.utils``)."""

from __future__ import annotations

import numpy as np

from ._keys import as_generator


def random_rotation(seed, n: int, theta: float | None = None) -> np.ndarray:
    """A random n x n rotation: a rotation by ``theta`` (uniform in [0, pi/2) when
    None) in a random 2-D plane, conjugated by a random orthogonal matrix.
    ``seed`` is an int, a NumPy Generator or a JAX PRNG key."""
    rng = as_generator(seed)
    if theta is None:
        theta = 0.5 * np.pi * rng.uniform()
    if n == 1:
        return rng.uniform() * np.eye(1)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    out = np.eye(n)
    out[:2, :2] = rot
    q = np.linalg.qr(rng.uniform(size=(n, n)))[0]
    return q @ out @ q.T


def monotonically_increasing(x, atol: float = 0.0, rtol: float = 0.0) -> bool:
    """True when every step of ``x`` is at least ``-(atol + rtol * |x_prev|)``."""
    x = np.asarray(x, dtype=np.float64)
    thresh = atol + rtol * np.abs(x[:-1])
    return bool(np.all(np.diff(x) >= -thresh))
