"""The user-facing model objects, mirroring dynamax's ``LinearGaussianSSM``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import warnings

from . import _core, priors
from ._batch import as_batch
from ._keys import as_generator, seeds
from ._progress import ProgressBar
from .optimizers import Adam, adam
from .params import (ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions, ParamsLGSSMInitial,
                     default_props, from_core, props_to_core, to_core)


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


@dataclass
class FitSummary:
    """How a fit ended."""

    iterations: int  # iterations (EM, L-BFGS) or epochs (SGD) completed
    termination: str  # "max_iterations", "converged", "numerical_failure" or "stopped"
    message: str


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
        self._core_params(params)  # validates
        props = default_props(params)
        props.dynamics.bias.trainable = self.has_dynamics_bias
        props.emissions.bias.trainable = self.has_emissions_bias
        return params, props

    # -- inference ---------------------------------------------------------
    def _core_params(self, params: ParamsLGSSM):
        return to_core(params, self.state_dim, self.emission_dim, self.input_dim)

    def _batch(self, params, emissions, inputs):
        return self._core_params(params), as_batch(emissions, inputs, self.input_dim)

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
            inputs = np.zeros((max(int(num_timesteps), 0), self.input_dim))
        inputs = np.ascontiguousarray(inputs, dtype=np.float64)
        if inputs.ndim != 2:
            raise ValueError(f"inputs: expected an array of shape (num_timesteps, input_dim), got shape {inputs.shape}")
        return _core.sample(self._core_params(params), seeds(key, 1)[0], int(num_timesteps), inputs)

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


    # -- learning ----------------------------------------------------------
    def sufficient_stats(self, params: ParamsLGSSM, emissions, inputs=None) -> _core.SufficientStats:
        """The E-step: expected sufficient statistics summed over the sequences
        (per step for emission parameters with a time axis). Picklable, and
        ``a + b`` sums the statistics of two batches."""
        core, b = self._batch(params, emissions, inputs)
        per_step = np.ndim(params.emissions.weights) == 3
        return _core.sufficient_stats(core, b.emissions, b.inputs, per_step)

    def m_step(self, params: ParamsLGSSM, props: ParamsLGSSM, stats: _core.SufficientStats) -> ParamsLGSSM:
        """The closed-form M-step over the trainable parameters, given ``stats``."""
        core = self._core_params(params)
        return from_core(_core.m_step(core, props_to_core(props), stats, self._core_prior()), params)

    def log_prior(self, params: ParamsLGSSM) -> float:
        """log p(params); 0 for this model without priors."""
        return 0.0

    def _core_prior(self):
        return None

    def fit_em(self, params: ParamsLGSSM, props: ParamsLGSSM, emissions, inputs=None, num_iters: int = 50,
               verbose: bool = True, tolerance: float = 0.0, return_summary: bool = False):
        """Expectation-maximization. Returns (params, marginal_lls), the log
        likelihood entering each iteration; with ``return_summary`` also a
        FitSummary. Stops early when the relative change of the log likelihood
        is at most ``tolerance``; on a numerical failure it warns and returns the
        last good parameters."""
        return self._fit(_core.fit_em, params, props, emissions, inputs, num_iters, "EM", verbose,
                         return_summary, int(num_iters), float(tolerance))

    def fit_sgd(self, params: ParamsLGSSM, props: ParamsLGSSM, emissions, inputs=None, optimizer: Adam | None = None,
                batch_size: int = 1, num_epochs: int = 50, shuffle: bool = False, key=0, verbose: bool = True,
                return_summary: bool = False):
        """Adam on minibatches of whole sequences with exact gradients. Returns
        (params, losses): losses per epoch on dynamax's scale, -log p(y) divided
        by the number of emission entries, so ``-losses * emissions.size`` is the
        log likelihood. Returns the parameters after the last update; if the loss
        becomes non-finite it warns and returns the parameters with the lowest
        loss, the message naming their epoch."""
        optimizer = adam() if optimizer is None else optimizer
        if not isinstance(optimizer, Adam):
            raise ValueError(f"optimizer: expected lgssm.optimizers.adam(...), got {type(optimizer).__name__}")
        return self._fit(_core.fit_sgd, params, props, emissions, inputs, num_epochs, "SGD", verbose,
                         return_summary, optimizer.learning_rate, optimizer.b1, optimizer.b2, optimizer.eps,
                         int(batch_size), int(num_epochs), bool(shuffle), seeds(key, 1)[0])

    def fit_lbfgs(self, params: ParamsLGSSM, props: ParamsLGSSM, emissions, inputs=None, max_iters: int = 1000,
                  gradient_tolerance: float = 1e-8, function_tolerance: float = 1e-12, verbose: bool = True,
                  return_summary: bool = False):
        """L-BFGS on the log likelihood with exact gradients, until a tolerance is
        met or ``max_iters`` iterations (the summary's termination says which).
        Returns (params, marginal_lls) at each iterate."""
        return self._fit(_core.fit_lbfgs, params, props, emissions, inputs, max_iters + 1, "L-BFGS", verbose,
                         return_summary, int(max_iters), float(gradient_tolerance), float(function_tolerance))

    def _fit(self, fit, params, props, emissions, inputs, total, label, verbose, return_summary, *options):
        core, b = self._batch(params, emissions, inputs)
        bar = ProgressBar(total, label, verbose)
        try:
            fitted, history, summary = fit(core, props_to_core(props), b.emissions, b.inputs, self._core_prior(),
                                           *options, bar)
        finally:
            bar.close()
        for warning in summary["warnings"]:
            warnings.warn(f"{label}: {warning}", RuntimeWarning, stacklevel=3)
        summary = FitSummary(summary["iterations"], summary["termination"].name, summary["message"])
        if summary.termination == "numerical_failure":
            warnings.warn(f"{label} stopped: {summary.message}", RuntimeWarning, stacklevel=3)
        result = (from_core(fitted, params), np.asarray(history))
        return result + (summary,) if return_summary else result


class LinearGaussianConjugateSSM(LinearGaussianSSM):
    """A LinearGaussianSSM with conjugate priors on its parameters (dynamax's
    ``LinearGaussianConjugateSSM``): every fit is then a MAP fit, and its
    recorded objective includes ``log_prior(params)``. Priors default to
    dynamax's (see lgssm.priors.defaults)."""

    def __init__(self, state_dim: int, emission_dim: int, input_dim: int = 0, has_dynamics_bias: bool = True,
                 has_emissions_bias: bool = True, initial_prior: priors.NormalInverseWishart | None = None,
                 dynamics_prior: priors.MatrixNormalInverseWishart | None = None,
                 emission_prior: priors.MatrixNormalInverseWishart | None = None):
        super().__init__(state_dim, emission_dim, input_dim, has_dynamics_bias, has_emissions_bias)
        default = priors.defaults(self.state_dim, self.emission_dim, self.input_dim)
        self.initial_prior = default[0] if initial_prior is None else initial_prior
        self.dynamics_prior = default[1] if dynamics_prior is None else dynamics_prior
        self.emission_prior = default[2] if emission_prior is None else emission_prior

    def _core_prior(self):
        return priors.to_core(self.initial_prior, self.dynamics_prior, self.emission_prior)

    def log_prior(self, params: ParamsLGSSM) -> float:
        """log p(params) under the conjugate priors, normalizers included."""
        return _core.log_prior(self._core_params(params), self._core_prior())


def _pack(cls, batch, dicts):
    if batch.kind == "list":
        return [cls(**d) for d in dicts]
    return cls(**{key: batch.pack([d[key] for d in dicts], _TIME_OFFSETS.get(key, 0))
                  for key in dicts[0]})
