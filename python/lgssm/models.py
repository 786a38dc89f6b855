"""The user-facing model objects, mirroring dynamax's ``LinearGaussianSSM``."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core, priors
from ._batch import as_batch, sequences
from ._checks import INT_MAX, count, flag, memory, nonnegative, real_array, require_observed, unscaled
from ._fitting import Driver, fit_result, run_with_progress
from ._keys import as_generator, seeds
from .optimizers import Adam, adam
from .params import (
    ParamsLGSSM,
    ParamsLGSSMDynamics,
    ParamsLGSSMEmissions,
    ParamsLGSSMInitial,
    default_props,
    from_core,
    props_to_core,
    to_core,
)


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
    initial_objective: float = math.nan  # the history's first entry (log p(y) for EM and L-BFGS, the loss for SGD)
    final_objective: float = math.nan  # the history's last entry
    evaluations: int = 0  # objective evaluations: E-steps (EM), minibatch losses (SGD), objective calls (L-BFGS)
    seconds: float = 0.0  # wall time
    usable: bool = False  # the returned parameters are a fit (False when it failed at its start)

    @classmethod
    def from_core(cls, summary: dict) -> FitSummary:
        """The summary of a fit by the C++ core (its dict of FitSummary's fields)."""
        return cls(
            summary["iterations"],
            summary["termination"].name,
            summary["message"],
            summary["initial_objective"],
            summary["final_objective"],
            summary["evaluations"],
            summary["seconds"],
            summary["usable"],
        )


class LinearGaussianSSM:
    """A linear Gaussian state-space model (see docs/conventions.md):

        z_0 ~ N(m, S),  z_t ~ N(F z_{t-1} + B u_t + b, Q),  y_t ~ N(H z_t + D u_t + d, R).

    Emissions are (num_timesteps, emission_dim) arrays with NaN for missing
    components, a (num_sequences, num_timesteps, emission_dim) batch padded at
    the end with NaN rows, or a list of 2-D arrays of different lengths; with
    emission_dim 1 also a 1-D array or pandas Series. pandas' NA is missing too.
    Counts are integers, flags bools; a call whose results would not fit in the
    machine's memory is refused before it allocates them.
    """

    def __init__(
        self,
        state_dim: int,
        emission_dim: int,
        input_dim: int = 0,
        has_dynamics_bias: bool = True,
        has_emissions_bias: bool = True,
    ):
        n, p, m = (
            count("state_dim", state_dim, 1),
            count("emission_dim", emission_dim, 1),
            count("input_dim", input_dim),
        )
        largest = max((n, "state_dim"), (p, "emission_dim"), (m, "input_dim"))
        memory(
            largest[1],
            largest[0],
            3 * n * n + n * (m + 1) + p * (n + m + 1) + p * p,
            "the parameters (initial.cov, dynamics.weights, dynamics.cov, emissions.weights, emissions.cov, ...)",
        )
        self.state_dim, self.emission_dim, self.input_dim = n, p, m
        self.has_dynamics_bias = flag("has_dynamics_bias", has_dynamics_bias)
        self.has_emissions_bias = flag("has_emissions_bias", has_emissions_bias)

    def initialize(
        self,
        key=0,
        *,
        initial_mean=None,
        initial_covariance=None,
        dynamics_weights=None,
        dynamics_bias=None,
        dynamics_input_weights=None,
        dynamics_covariance=None,
        emission_weights=None,
        emission_bias=None,
        emission_input_weights=None,
        emission_covariance=None,
    ):
        """Parameters with dynamax's defaults (initial N(0, I); dynamics 0.99 I,
        cov 0.1 I; emission weights N(0, 1) draws, cov 0.1 I; zero biases and
        input weights), any of them overridden, and their properties (all
        trainable except absent biases). An error names the keyword whose value is bad."""
        n, p, m = self.state_dim, self.emission_dim, self.input_dim
        rng = as_generator(key)
        given = {}  # parameter name -> initialize() keyword, for the values given

        def pick(keyword, name, value, default):
            if value is None:
                return default()
            given[name] = keyword
            return np.array(real_array(keyword, value))

        params = ParamsLGSSM(
            initial=ParamsLGSSMInitial(
                mean=pick("initial_mean", "initial.mean", initial_mean, lambda: np.zeros(n)),
                cov=pick("initial_covariance", "initial.cov", initial_covariance, lambda: np.eye(n)),
            ),
            dynamics=ParamsLGSSMDynamics(
                weights=pick("dynamics_weights", "dynamics.weights", dynamics_weights, lambda: 0.99 * np.eye(n)),
                bias=pick("dynamics_bias", "dynamics.bias", dynamics_bias, lambda: np.zeros(n)),
                input_weights=pick(
                    "dynamics_input_weights", "dynamics.input_weights", dynamics_input_weights, lambda: np.zeros((n, m))
                ),
                cov=pick("dynamics_covariance", "dynamics.cov", dynamics_covariance, lambda: 0.1 * np.eye(n)),
            ),
            emissions=ParamsLGSSMEmissions(
                weights=pick(
                    "emission_weights", "emissions.weights", emission_weights, lambda: rng.standard_normal((p, n))
                ),
                bias=pick("emission_bias", "emissions.bias", emission_bias, lambda: np.zeros(p)),
                input_weights=pick(
                    "emission_input_weights",
                    "emissions.input_weights",
                    emission_input_weights,
                    lambda: np.zeros((p, m)),
                ),
                cov=pick("emission_covariance", "emissions.cov", emission_covariance, lambda: 0.1 * np.eye(p)),
            ),
        )
        try:
            self.core_params(params)  # validates
        except ValueError as err:
            message = str(err)
            name = next((k for k in given if message.startswith(k)), None)
            if name is None:
                raise
            raise ValueError(given[name] + message[len(name) :]) from None
        props = default_props(params)
        props.dynamics.bias.trainable = self.has_dynamics_bias
        props.emissions.bias.trainable = self.has_emissions_bias
        return params, props

    # -- the C++ core's objects -----------------------------------------------
    def core_params(self, params: ParamsLGSSM) -> _core.Params:
        """The C++ core's parameters of ``params``, validated.

        Parameters
        ----------
        params : ParamsLGSSM
            Parameters of this model: ``initial.mean`` (state_dim,), ``initial.cov``
            (state_dim, state_dim), ``dynamics.weights`` (state_dim, state_dim) and so
            on, each conditional parameter optionally with a leading time axis.

        Returns
        -------
        lgssm._core.Params
            What the C++ functions of ``lgssm._core`` take.

        Raises
        ------
        ValueError
            When a parameter has the wrong shape or is not valid (a covariance that is
            not symmetric positive definite, a non-finite entry); the message names it.
        """
        return to_core(params, self.state_dim, self.emission_dim, self.input_dim)

    def core_prior(self) -> _core.ConjugatePrior | None:
        """The C++ core's prior on the parameters: None, as this model has none.

        Returns
        -------
        lgssm._core.ConjugatePrior or None
            None here; a LinearGaussianConjugateSSM returns its priors.
        """
        return None

    # -- inference ---------------------------------------------------------

    def _batch(self, params, emissions, inputs, covariances: int = 2, per_step: int = 0):
        """The core's parameters and the data, refused when the results would not fit
        in memory: ``covariances`` (state_dim, state_dim) matrices and ``per_step``
        further floats for each time step."""
        core, b = self.core_params(params), as_batch(emissions, inputs, self.input_dim, self.emission_dim)
        steps = sum(len(y) for y in b.emissions)
        memory(
            "emissions",
            f"{steps} time steps",
            steps * (covariances * self.state_dim**2 + per_step),
            f"the results ({covariances} (state_dim, state_dim) covariances per step)",
            "fewer time steps per call (split the sequences) or a smaller state_dim",
        )
        return core, b

    def marginal_log_prob(self, params: ParamsLGSSM, emissions, inputs=None):
        """log p(y) over the observed entries: a float, or one per sequence."""
        core, b = self._batch(params, emissions, inputs)
        lls = _core.marginal_log_prob(core, b.emissions, b.inputs)
        if np.isneginf(lls).any():
            warnings.warn(
                "marginal_log_prob: the log likelihood is -inf: the data's squared residuals overflow "
                "float64 (|y| near 1e154 or more); rescale the emissions",
                RuntimeWarning,
                stacklevel=2,
            )
        return float(lls[0]) if b.kind == "single" else np.asarray(lls)

    def filter(self, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMFiltered:
        """Kalman filter: log p(y), filtered and one-step predicted moments."""
        core, b = self._batch(params, emissions, inputs)
        return b.pack_results(PosteriorLGSSMFiltered, _core.filter(core, b.emissions, b.inputs))

    def smoother(self, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMSmoothed:
        """Smoothed moments p(z_t | y), with lag-one cross covariances."""
        core, b = self._batch(params, emissions, inputs, covariances=4)
        return b.pack_results(PosteriorLGSSMSmoothed, _core.smoother(core, b.emissions, b.inputs))

    def sample(self, params: ParamsLGSSM, key, num_timesteps: int, inputs=None):
        """A joint draw (states (num_timesteps, state_dim), emissions (num_timesteps, emission_dim))."""
        num_timesteps = count("num_timesteps", num_timesteps, 1)
        memory(
            "num_timesteps",
            num_timesteps,
            num_timesteps * (self.state_dim + self.emission_dim + self.input_dim),
            "the states, emissions and inputs",
        )
        core, seed = self.core_params(params), seeds(key, 1)[0]
        if inputs is None:
            inputs = np.zeros((num_timesteps, self.input_dim))
        inputs = np.ascontiguousarray(real_array("inputs", inputs))
        if inputs.ndim != 2:
            raise ValueError(f"inputs: expected an array of shape (num_timesteps, input_dim), got shape {inputs.shape}")
        return _core.sample(core, seed, num_timesteps, inputs)

    def posterior_sample(self, key, params: ParamsLGSSM, emissions, inputs=None, num_samples=None):
        """Draws of z ~ p(z | y) (Durbin & Koopman's simulation smoother):
        (num_timesteps, state_dim), or (num_samples, num_timesteps, state_dim)."""
        draws_per_step = 1 if num_samples is None else count("num_samples", num_samples, 1)
        core, b = self._batch(params, emissions, inputs, per_step=draws_per_step * self.state_dim)
        draws = _core.posterior_sample(core, b.emissions, b.inputs, seeds(key, len(b.emissions)), draws_per_step)
        if num_samples is None:
            return b.pack([d[0] for d in draws], time_offset=0)
        return b.pack(draws, time_offset=0, time_axis=1)

    def posterior_predictive(self, params: ParamsLGSSM, emissions, inputs=None, full_covariance=False):
        """Mean and standard deviation of y_t under p(z_t | y) (covariances with
        ``full_covariance=True``), each (num_timesteps, emission_dim[, emission_dim])."""
        full_covariance = flag("full_covariance", full_covariance)
        core, b = self._batch(
            params, emissions, inputs, covariances=4, per_step=self.emission_dim**2 if full_covariance else 0
        )
        out = _core.posterior_predictive(core, b.emissions, b.inputs, full_covariance)
        second = "covariances" if full_covariance else "stds"
        return (b.pack([o["means"] for o in out], time_offset=0), b.pack([o[second] for o in out], time_offset=0))

    def forecast(self, params: ParamsLGSSM, emissions, num_forecast_timesteps: int, inputs=None, forecast_inputs=None):
        """Exact p(z_{T+k} | y) and p(y_{T+k} | y) for k < num_forecast_timesteps:
        (means, covariances, emission_means, emission_covariances)."""
        k = count("num_forecast_timesteps", num_forecast_timesteps, 1)
        core, b = self._batch(params, emissions, inputs)
        memory(
            "num_forecast_timesteps",
            k,
            len(b.emissions) * k * (self.state_dim + self.emission_dim) ** 2,
            "the forecast means and covariances",
        )
        if forecast_inputs is None:
            fus = [np.zeros((k, self.input_dim)) for _ in b.emissions]
        else:
            fus = sequences(forecast_inputs, "forecast_inputs", "input_dim")[1]
        out = _core.forecast(core, b.emissions, b.inputs, k, fus)
        return tuple(b.pack([o[i] for o in out]) for i in range(4))

    # -- learning ----------------------------------------------------------
    def sufficient_stats(self, params: ParamsLGSSM, emissions, inputs=None) -> _core.SufficientStats:
        """The E-step: expected sufficient statistics summed over the sequences
        (per step for emission parameters with a time axis). Picklable, and
        ``a + b`` sums the statistics of two batches."""
        core, b = self._batch(params, emissions, inputs, covariances=4)
        per_step = np.ndim(params.emissions.weights) == 3
        return _core.sufficient_stats(core, b.emissions, b.inputs, per_step)

    def m_step(self, params: ParamsLGSSM, props: ParamsLGSSM, stats: _core.SufficientStats) -> ParamsLGSSM:
        """The closed-form M-step over the trainable parameters, given ``stats``."""
        core = self.core_params(params)
        return from_core(_core.m_step(core, props_to_core(props), stats, self.core_prior()), params)

    def log_prior(self, params: ParamsLGSSM) -> float:
        """log p(params); 0 for this model without priors."""
        return 0.0

    def fit_em(
        self,
        params: ParamsLGSSM,
        props: ParamsLGSSM,
        emissions,
        inputs=None,
        num_iters: int = 50,
        verbose: bool = True,
        tolerance: float = 0.0,
        return_summary: bool = False,
        accelerate: bool = False,
    ):
        """Expectation-maximization. Returns (params, marginal_lls), the log
        likelihood entering each iteration; with ``return_summary`` also a
        FitSummary. Stops early when the relative change of the log likelihood
        is at most ``tolerance``; on a numerical failure it warns and returns the
        last good parameters. ``accelerate``: SQUAREM extrapolation (Varadhan &
        Roland 2008) between pairs of EM steps, each kept only when it does not
        lower the log likelihood; every evaluated iterate is one entry of the
        history, which stays non-decreasing."""
        num_iters = count("num_iters", num_iters, 0, INT_MAX)
        options = (num_iters, nonnegative("tolerance", tolerance), flag("accelerate", accelerate))
        return self._fit(
            Driver(_core.fit_em, "EM", num_iters, options), params, props, emissions, inputs, verbose, return_summary
        )

    def fit_sgd(
        self,
        params: ParamsLGSSM,
        props: ParamsLGSSM,
        emissions,
        inputs=None,
        optimizer: Adam | None = None,
        batch_size: int = 1,
        num_epochs: int = 50,
        shuffle: bool = False,
        key=0,
        verbose: bool = True,
        return_summary: bool = False,
    ):
        """Adam on minibatches of whole sequences with exact gradients. Returns
        (params, losses): losses per epoch on dynamax's scale, -log p(y) divided
        by the number of emission entries, so ``-losses * emissions.size`` is the
        log likelihood. Returns the parameters after the last update; if the loss
        becomes non-finite it warns and returns the parameters with the lowest
        loss, the message naming their epoch."""
        optimizer = adam() if optimizer is None else optimizer
        if not isinstance(optimizer, Adam):
            raise ValueError(f"optimizer: expected lgssm.optimizers.adam(...), got {type(optimizer).__name__}")
        num_epochs = count("num_epochs", num_epochs, 0, INT_MAX)
        options = (
            optimizer.learning_rate,
            optimizer.b1,
            optimizer.b2,
            optimizer.eps,
            count("batch_size", batch_size, 1, INT_MAX),
            num_epochs,
            flag("shuffle", shuffle),
            seeds(key, 1)[0],
        )
        driver = Driver(_core.fit_sgd, "SGD", num_epochs, options)
        return self._fit(driver, params, props, emissions, inputs, verbose, return_summary, warn_unscaled=True)

    def fit_lbfgs(
        self,
        params: ParamsLGSSM,
        props: ParamsLGSSM,
        emissions,
        inputs=None,
        max_iters: int = 1000,
        gradient_tolerance: float = 1e-8,
        function_tolerance: float = 1e-12,
        verbose: bool = True,
        return_summary: bool = False,
    ):
        """L-BFGS on the log likelihood with exact gradients, until a tolerance is
        met or ``max_iters`` iterations (the summary's termination says which).
        Returns (params, marginal_lls) at each iterate."""
        max_iters = count("max_iters", max_iters, 0, INT_MAX - 1)
        tolerances = (
            nonnegative("gradient_tolerance", gradient_tolerance),
            nonnegative("function_tolerance", function_tolerance),
        )
        driver = Driver(_core.fit_lbfgs, "L-BFGS", max_iters + 1, (max_iters, *tolerances))
        return self._fit(driver, params, props, emissions, inputs, verbose, return_summary)

    def _fit(self, driver: Driver, params, props, emissions, inputs, verbose, return_summary, warn_unscaled=False):
        verbose, return_summary = flag("verbose", verbose), flag("return_summary", return_summary)
        core, b = self._batch(params, emissions, inputs, covariances=4)
        require_observed("emissions", b.emissions)
        if warn_unscaled and (warning := unscaled(b.emissions)) is not None:
            warnings.warn(warning, RuntimeWarning, stacklevel=3)
        fitted, history, summary = run_with_progress(
            driver, verbose, core, props_to_core(props), b.emissions, b.inputs, self.core_prior()
        )
        for warning in summary["warnings"]:
            warnings.warn(f"{driver.label}: {warning}", RuntimeWarning, stacklevel=3)
        summary = FitSummary.from_core(summary)
        return fit_result(from_core(fitted, params), history, summary, driver.label, return_summary, 3)


class LinearGaussianConjugateSSM(LinearGaussianSSM):
    """A LinearGaussianSSM with conjugate priors on its parameters (dynamax's
    ``LinearGaussianConjugateSSM``): every fit is then a MAP fit, and its
    recorded objective includes ``log_prior(params)``. Priors default to
    dynamax's (see lgssm.priors.defaults)."""

    def __init__(
        self,
        state_dim: int,
        emission_dim: int,
        input_dim: int = 0,
        has_dynamics_bias: bool = True,
        has_emissions_bias: bool = True,
        initial_prior: priors.NormalInverseWishart | None = None,
        dynamics_prior: priors.MatrixNormalInverseWishart | None = None,
        emission_prior: priors.MatrixNormalInverseWishart | None = None,
    ):
        super().__init__(state_dim, emission_dim, input_dim, has_dynamics_bias, has_emissions_bias)
        default = priors.defaults(self.state_dim, self.emission_dim, self.input_dim)
        self.initial_prior = default[0] if initial_prior is None else initial_prior
        self.dynamics_prior = default[1] if dynamics_prior is None else dynamics_prior
        self.emission_prior = default[2] if emission_prior is None else emission_prior

    def core_prior(self) -> _core.ConjugatePrior:
        """The C++ core's conjugate priors of this model.

        Returns
        -------
        lgssm._core.ConjugatePrior
            ``initial_prior``, ``dynamics_prior`` and ``emission_prior`` as the C++
            fits and ``lgssm._core.log_prior`` take them.
        """
        return priors.to_core(self.initial_prior, self.dynamics_prior, self.emission_prior)

    def log_prior(self, params: ParamsLGSSM) -> float:
        """log p(params) under the conjugate priors, normalizers included."""
        return _core.log_prior(self.core_params(params), self.core_prior())
