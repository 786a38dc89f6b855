"""Utilities with dynamax's semantics (``dynamax.utils.utils``)."""

from __future__ import annotations

import numpy as np

from ._keys import as_generator


def random_rotation(seed, n: int, theta: float | None = None) -> np.ndarray:
    """Draw a random n x n rotation, as dynamax's ``random_rotation``.

    A rotation by ``theta`` in a random 2-D plane: the rotation of the first
    two coordinates conjugated by a random orthogonal matrix.

    Parameters
    ----------
    seed : int, numpy.random.Generator or JAX PRNG key
        The randomness.
    n : int
        The dimension (for n = 1, a uniform draw in [0, 1) times the 1 x 1 identity).
    theta : float, optional
        The angle; None for a uniform draw in [0, pi/2).

    Returns
    -------
    array, shape (n, n)
        The matrix.
    """
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
    """Check that ``x`` increases, up to a tolerance, as dynamax's ``monotonically_increasing``.

    Parameters
    ----------
    x : array, shape (num_values,)
        E.g. the log likelihoods of ``fit_em``.
    atol : float, default 0.0
        Absolute tolerance of a decrease.
    rtol : float, default 0.0
        Relative tolerance of a decrease, times the previous value's magnitude.

    Returns
    -------
    bool
        True when every step of ``x`` is at least ``-(atol + rtol * |x_prev|)``.
    """
    x = np.asarray(x, dtype=np.float64)
    thresh = atol + rtol * np.abs(x[:-1])
    return bool(np.all(np.diff(x) >= -thresh))
