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
    """cov ~ IW(df, scale), mean | cov ~ N(loc, cov / mean_concentration)."""

    loc: Any  # (dim,)
    mean_concentration: float
    df: float
    scale: Any  # (dim, dim)


@dataclass
class MatrixNormalInverseWishart:
    """cov ~ IW(df, scale), W | cov ~ MN(loc, row cov = cov, col cov = col_precision^-1)."""

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
    """dynamax's default (initial, dynamics, emission) priors: zero locations,
    mean_concentration 1, identity col_precision and scale, df = dim + 0.1."""
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
    out = _core.ConjugatePrior()
    out.initial, out.dynamics, out.emissions = _niw(initial), _mniw(dynamics), _mniw(emissions)
    return out
