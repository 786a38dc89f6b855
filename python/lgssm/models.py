"""The user-facing model objects, mirroring dynamax's ``LinearGaussianSSM``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._batch import as_batch
from ._keys import as_generator, seeds
from .params import (ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions, ParamsLGSSMInitial,
                     default_props, to_core)


@dataclass
class PosteriorLGSSMFiltered:
    """Filtering results; fields have a leading batch axis for batched emissions."""

    marginal_loglik: Any  # float, or (num_sequences,)
    filtered_means: Any  # (num_timesteps, state_dim): E[z_t | y_{0:t}]
    filtered_covariances: Any  # (num_timesteps, state_dim, state_dim)
    predicted_means: Any  # (num_timesteps, state_dim): E[z_t | y_{0:t-1}]
    predicted_covariances: Any  # (num_timesteps, state_dim, state_dim)


@dataclass
class PosteriorLGSSMSmoothed(PosteriorLGSSMFiltered):
    """Smoothing results: the filter's fields and p(z_t | y_{0:T-1})."""

    smoothed_means: Any = None  # (num_timesteps, state_dim)
    smoothed_covariances: Any = None  # (num_timesteps, state_dim, state_dim)
    smoothed_cross_covariances: Any = None  # (num_timesteps - 1, state_dim, state_dim): Cov[z_{t+1}, z_t | y]


_TIME_OFFSETS = {"marginal_loglik": None, "smoothed_cross_covariances": -1}


class LinearGaussianSSM:
    """A linear Gaussian state-space model (see docs/conventions.md):

        z_0 ~ N(m, S),  z_t ~ N(F z_{t-1} + B u_t + b, Q),  y_t ~ N(H z_t + D u_t + d, R).

    Emissions are (num_timesteps, emission_dim) arrays with NaN for missing
    components, a (num_sequences, num_timesteps, emission_dim) batch padded at
    the end with NaN rows, or a list of 2-D arrays of different lengths.
    """

    def __init__(self, state_dim: int, emission_dim: int, input_dim: int = 0,
                 has_dynamics_bias: bool = True, has_emissions_bias: bool = True):
        for name, value, low in (("state_dim", state_dim, 1), ("emission_dim", emission_dim, 1),
                                 ("input_dim", input_dim, 0)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        self.state_dim = int(state_dim)
        self.emission_dim = int(emission_dim)
        self.input_dim = int(input_dim)
        self.has_dynamics_bias = has_dynamics_bias
        self.has_emissions_bias = has_emissions_bias

    def initialize(self, key=0, *, initial_mean=None, initial_covariance=None, dynamics_weights=None,
                   dynamics_bias=None, dynamics_input_weights=None, dynamics_covariance=None,
                   emission_weights=None, emission_bias=None, emission_input_weights=None,
                   emission_covariance=None):
        """Parameters with dynamax's defaults (initial N(0, I); dynamics 0.99 I,
        cov 0.1 I; emission weights N(0, 1) draws, cov 0.1 I; zero biases and
        input weights), any of them overridden, and their properties (all
        trainable except absent biases)."""
        n, p, m = self.state_dim, self.emission_dim, self.input_dim
        rng = as_generator(key)

        def pick(value, default):
            return np.array(default() if value is None else value, dtype=np.float64)

        params = ParamsLGSSM(
            initial=ParamsLGSSMInitial(mean=pick(initial_mean, lambda: np.zeros(n)),
                                       cov=pick(initial_covariance, lambda: np.eye(n))),
            dynamics=ParamsLGSSMDynamics(
                weights=pick(dynamics_weights, lambda: 0.99 * np.eye(n)),
                bias=pick(dynamics_bias, lambda: np.zeros(n)),
                input_weights=pick(dynamics_input_weights, lambda: np.zeros((n, m))),
                cov=pick(dynamics_covariance, lambda: 0.1 * np.eye(n))),
            emissions=ParamsLGSSMEmissions(
                weights=pick(emission_weights, lambda: rng.standard_normal((p, n))),
                bias=pick(emission_bias, lambda: np.zeros(p)),
                input_weights=pick(emission_input_weights, lambda: np.zeros((p, m))),
                cov=pick(emission_covariance, lambda: 0.1 * np.eye(p))),
        )
        to_core(params)  # validates
        props = default_props(params)
        props.dynamics.bias.trainable = self.has_dynamics_bias
        props.emissions.bias.trainable = self.has_emissions_bias
        return params, props

    # -- inference ---------------------------------------------------------
    def _batch(self, params, emissions, inputs):
        return to_core(params), as_batch(emissions, inputs, self.input_dim)

    def marginal_log_prob(self, params: ParamsLGSSM, emissions, inputs=None):
        """log p(y) over the observed entries: a float, or one per sequence."""
        core, b = self._batch(params, emissions, inputs)
        lls = _core.marginal_log_prob(core, b.emissions, b.inputs)
        return float(lls[0]) if b.kind == "single" else np.asarray(lls)

    def filter(self, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMFiltered:
        """Kalman filter: log p(y), filtered and one-step predicted moments."""
        core, b = self._batch(params, emissions, inputs)
        return _pack(PosteriorLGSSMFiltered, b, _core.filter(core, b.emissions, b.inputs))

    def smoother(self, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMSmoothed:
        """Rauch-Tung-Striebel smoother, with lag-one cross covariances."""
        core, b = self._batch(params, emissions, inputs)
        return _pack(PosteriorLGSSMSmoothed, b, _core.smoother(core, b.emissions, b.inputs))

    def sample(self, params: ParamsLGSSM, key, num_timesteps: int, inputs=None):
        """A joint draw (states (num_timesteps, state_dim), emissions (num_timesteps, emission_dim))."""
        if inputs is None:
            inputs = np.zeros((num_timesteps, self.input_dim))
        inputs = np.ascontiguousarray(inputs, dtype=np.float64)
        if inputs.ndim != 2:
            raise ValueError(f"inputs: expected an array of shape (num_timesteps, input_dim), got shape {inputs.shape}")
        return _core.sample(to_core(params), seeds(key, 1)[0], int(num_timesteps), inputs)

    def posterior_sample(self, key, params: ParamsLGSSM, emissions, inputs=None, num_samples=None):
        """Draws of z ~ p(z | y) (forward filtering, backward sampling):
        (num_timesteps, state_dim), or (num_samples, num_timesteps, state_dim)."""
        core, b = self._batch(params, emissions, inputs)
        draws = _core.posterior_sample(core, b.emissions, b.inputs, seeds(key, len(b.emissions)),
                                       1 if num_samples is None else int(num_samples))
        if num_samples is None:
            return b.pack([d[0] for d in draws], time_offset=0)
        return b.pack(draws, time_offset=0, time_axis=1)

    def posterior_predictive(self, params: ParamsLGSSM, emissions, inputs=None, full_covariance=False):
        """Mean and standard deviation of y_t under p(z_t | y) (covariances with
        ``full_covariance=True``), each (num_timesteps, emission_dim[, emission_dim])."""
        core, b = self._batch(params, emissions, inputs)
        out = _core.posterior_predictive(core, b.emissions, b.inputs, bool(full_covariance))
        second = "covariances" if full_covariance else "stds"
        return (b.pack([o["means"] for o in out], time_offset=0),
                b.pack([o[second] for o in out], time_offset=0))

    def forecast(self, params: ParamsLGSSM, emissions, num_forecast_timesteps: int, inputs=None,
                 forecast_inputs=None):
        """Exact p(z_{T+k} | y) and p(y_{T+k} | y) for k < num_forecast_timesteps:
        (means, covariances, emission_means, emission_covariances)."""
        core, b = self._batch(params, emissions, inputs)
        k = int(num_forecast_timesteps)
        if forecast_inputs is None:
            fus = [np.zeros((max(k, 0), self.input_dim)) for _ in b.emissions]
        else:
            fb = as_batch(np.asarray(forecast_inputs, dtype=np.float64)
                          if not isinstance(forecast_inputs, (list, tuple)) else forecast_inputs,
                          None, 0)
            fus = fb.emissions
        out = _core.forecast(core, b.emissions, b.inputs, k, fus)
        return tuple(b.pack([o[i] for o in out]) for i in range(4))


def _pack(cls, batch, dicts):
    if batch.kind == "list":
        return [cls(**d) for d in dicts]
    return cls(**{key: batch.pack([d[key] for d in dicts], _TIME_OFFSETS.get(key, 0))
                  for key in dicts[0]})
