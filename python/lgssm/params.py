"""Parameters and parameter properties of a linear Gaussian SSM.

Names follow dynamax: ``params.initial.mean``, ``params.dynamics.weights``,
``params.emissions.cov`` and so on. Every field is a float64 NumPy array. A
parameter may carry a leading time axis (time-varying); see docs/conventions.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core


@dataclass
class ParameterProperties:
    """How a parameter is fitted: ``trainable=False`` freezes it."""

    trainable: bool = True
    constrainer: Any = None


@dataclass
class ParamsLGSSMInitial:
    mean: Any  # (state_dim,)
    cov: Any  # (state_dim, state_dim)


@dataclass
class ParamsLGSSMDynamics:
    weights: Any  # (state_dim, state_dim) or (num_timesteps - 1, state_dim, state_dim)
    bias: Any  # (state_dim,) or (num_timesteps - 1, state_dim)
    input_weights: Any  # (state_dim, input_dim) or (num_timesteps - 1, state_dim, input_dim)
    cov: Any  # (state_dim, state_dim) or (num_timesteps - 1, state_dim, state_dim)


@dataclass
class ParamsLGSSMEmissions:
    weights: Any  # (emission_dim, state_dim) or (num_timesteps, emission_dim, state_dim)
    bias: Any  # (emission_dim,) or (num_timesteps, emission_dim)
    input_weights: Any  # (emission_dim, input_dim) or (num_timesteps, emission_dim, input_dim)
    cov: Any  # (emission_dim, emission_dim) or (num_timesteps, emission_dim, emission_dim)


@dataclass
class ParamsLGSSM:
    initial: ParamsLGSSMInitial
    dynamics: ParamsLGSSMDynamics
    emissions: ParamsLGSSMEmissions


def _default_props(group) -> Any:
    return type(group)(**{f.name: ParameterProperties() for f in dataclasses.fields(group)})


def default_props(params: ParamsLGSSM) -> ParamsLGSSM:
    """Properties with every parameter trainable, shaped like ``params``."""
    return ParamsLGSSM(
        initial=_default_props(params.initial),
        dynamics=_default_props(params.dynamics),
        emissions=_default_props(params.emissions),
    )


def _series(name: str, value, vector: bool) -> np.ndarray:
    """A parameter as the C++ core's (num_entries, rows, cols) stack."""
    a = np.asarray(value, dtype=np.float64)
    if vector:
        if a.ndim not in (1, 2):
            raise ValueError(f"{name}: expected an array of shape (dim,) or (num_steps, dim), "
                             f"got shape {a.shape}")
        a = a[None, :, None] if a.ndim == 1 else a[:, :, None]
    else:
        if a.ndim not in (2, 3):
            raise ValueError(f"{name}: expected an array of shape (rows, cols) or "
                             f"(num_steps, rows, cols), got shape {a.shape}")
        a = a[None] if a.ndim == 2 else a
    return np.ascontiguousarray(a)


def _conditional(prefix: str, group) -> _core.LinearGaussianParams:
    out = _core.LinearGaussianParams()
    out.weights = _series(f"{prefix}.weights", group.weights, vector=False)
    out.bias = _series(f"{prefix}.bias", group.bias, vector=True)
    out.input_weights = _series(f"{prefix}.input_weights", group.input_weights, vector=False)
    out.cov = _series(f"{prefix}.cov", group.cov, vector=False)
    return out


def to_core(params: ParamsLGSSM) -> _core.Params:
    """Converts (and validates) Python parameters for the C++ core."""
    mean = np.asarray(params.initial.mean, dtype=np.float64)
    cov = np.asarray(params.initial.cov, dtype=np.float64)
    if mean.ndim != 1:
        raise ValueError(f"initial.mean: expected an array of shape (state_dim,), got shape {mean.shape}")
    if cov.ndim != 2:
        raise ValueError(f"initial.cov: expected an array of shape (state_dim, state_dim), "
                         f"got shape {cov.shape}")
    core = _core.Params(mean, cov, _conditional("dynamics", params.dynamics),
                        _conditional("emissions", params.emissions))
    core.validate()
    return core
