"""Conjugate priors for MAP fitting (dynamax's NIW and MNIW, same names).

The matrix-normal priors cover all k = state_dim + input_dim + 1 columns of
[weights, input_weights, bias] (the bias column included, also when the model
has no bias: then the bias is 0 and only its normalizer enters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core


@dataclass
class NormalInverseWishart:
    """A normal-inverse-Wishart prior: cov ~ IW(df, scale), mean | cov ~ N(loc, cov / mean_concentration).

    Parameters
    ----------
    loc : array, shape (dim,)
        The prior mean of the mean.
    mean_concentration : float
        How many observations the prior mean is worth.
    df : float
        The inverse Wishart's degrees of freedom.
    scale : array, shape (dim, dim)
        The inverse Wishart's scale matrix.
    """

    loc: Any  # (dim,)
    mean_concentration: float
    df: float
    scale: Any  # (dim, dim)


@dataclass
class MatrixNormalInverseWishart:
    """A matrix-normal-inverse-Wishart prior on a regression's weights W and covariance.

    cov ~ IW(df, scale), W | cov ~ MN(loc, row cov = cov, col cov = col_precision^-1),
    for W = [weights, input_weights, bias] with k = state_dim + input_dim + 1 columns.

    Parameters
    ----------
    loc : array, shape (out_dim, k)
        The prior mean of W.
    col_precision : array, shape (k, k)
        The inverse of the column covariance.
    df : float
        The inverse Wishart's degrees of freedom.
    scale : array, shape (out_dim, out_dim)
        The inverse Wishart's scale matrix.
    """

    loc: Any  # (out_dim, k)
    col_precision: Any  # (k, k)
    df: float
    scale: Any  # (out_dim, out_dim)


def _niw(p: NormalInverseWishart) -> _core.NiwPrior:
    out = _core.NiwPrior()
    out.loc = np.asarray(p.loc, dtype=np.float64)
    out.mean_concentration, out.df = float(p.mean_concentration), float(p.df)
    out.scale = np.asarray(p.scale, dtype=np.float64)
    return out


def _mniw(p: MatrixNormalInverseWishart) -> _core.MniwPrior:
    out = _core.MniwPrior()
    out.loc = np.asarray(p.loc, dtype=np.float64)
    out.col_precision = np.asarray(p.col_precision, dtype=np.float64)
    out.df, out.scale = float(p.df), np.asarray(p.scale, dtype=np.float64)
    return out


def defaults(state_dim: int, emission_dim: int, input_dim: int):
    """Make dynamax's default priors of a `lgssm.LinearGaussianConjugateSSM`.

    Zero locations, mean_concentration 1, identity col_precision and scale,
    df = dim + 0.1.

    Parameters
    ----------
    state_dim, emission_dim, input_dim : int
        The model's dimensions.

    Returns
    -------
    initial : NormalInverseWishart
        The prior of the initial state, dim = state_dim.
    dynamics : MatrixNormalInverseWishart
        The prior of the dynamics, out_dim = state_dim.
    emissions : MatrixNormalInverseWishart
        The prior of the emissions, out_dim = emission_dim.
    """
    d = _core.ConjugatePrior.defaults(state_dim, emission_dim, input_dim)
    niw = NormalInverseWishart(
        np.array(d.initial.loc), d.initial.mean_concentration, d.initial.df, np.array(d.initial.scale)
    )

    def mniw(g):
        return MatrixNormalInverseWishart(np.array(g.loc), np.array(g.col_precision), g.df, np.array(g.scale))

    return niw, mniw(d.dynamics), mniw(d.emissions)


def to_core(
    initial: NormalInverseWishart, dynamics: MatrixNormalInverseWishart, emissions: MatrixNormalInverseWishart
) -> _core.ConjugatePrior:
    """Convert the three priors for the C++ core.

    Parameters
    ----------
    initial : NormalInverseWishart
        The prior of the initial state.
    dynamics : MatrixNormalInverseWishart
        The prior of the dynamics.
    emissions : MatrixNormalInverseWishart
        The prior of the emissions.

    Returns
    -------
    lgssm._core.ConjugatePrior
        The core's prior.
    """
    out = _core.ConjugatePrior()
    out.initial, out.dynamics, out.emissions = _niw(initial), _mniw(dynamics), _mniw(emissions)
    return out
