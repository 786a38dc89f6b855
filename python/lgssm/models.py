"""The user-facing model objects, mirroring dynamax's ``LinearGaussianSSM``."""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core, priors, streaming
from ._batch import as_batch, sequences
from ._checks import INT_MAX, count, flag, memory, nonnegative, real_array, require_observed, unscaled
from ._docstrings import shared
from ._fitting import Driver, core_options, fit_result, lbfgs_options, run_with_progress
from ._keys import as_generator, seeds
from .optimizers import core_step
from .params import (
    ParamsLGSSM,
    ParamsLGSSMDynamics,
    ParamsLGSSMEmissions,
    ParamsLGSSMInitial,
    default_props,
    from_core,
    initialization_factor,
    props_to_core,
    stack_params,
    to_core,
)


@dataclass
class PosteriorLGSSMFiltered:
    """The results of the Kalman filter (``filter``).

    For a batch of emissions every field has a leading (num_sequences,) axis (a
    padded batch is padded with NaN); for a list of sequences ``filter`` returns
    a list of these.

    Parameters
    ----------
    marginal_loglik : float or array, shape (num_sequences,)
        log p(y_{0:T-1}) over the observed entries.
    filtered_means : array, shape (num_timesteps, state_dim)
        E[z_t | y_{0:t}].
    filtered_covariances : array, shape (num_timesteps, state_dim, state_dim)
        Cov[z_t | y_{0:t}].
    predicted_means : array, shape (num_timesteps, state_dim)
        E[z_t | y_{0:t-1}] (the initial mean at t = 0).
    predicted_covariances : array, shape (num_timesteps, state_dim, state_dim)
        Cov[z_t | y_{0:t-1}].
    num_diffuse_timesteps : int or array, shape (num_sequences,), default 0
        With a diffuse initialization, the steps of the diffuse period (statsmodels'
        ``nobs_diffuse``), over which the covariances hold the finite part P_* only.
    """

    marginal_loglik: Any  # float, or (num_sequences,)
    filtered_means: Any  # (num_timesteps, state_dim): E[z_t | y_{0:t}]
    filtered_covariances: Any  # (num_timesteps, state_dim, state_dim)
    predicted_means: Any  # (num_timesteps, state_dim): E[z_t | y_{0:t-1}]
    predicted_covariances: Any  # (num_timesteps, state_dim, state_dim)
    num_diffuse_timesteps: Any = 0  # int, or (num_sequences,): statsmodels' nobs_diffuse


@dataclass
class PosteriorLGSSMSmoothed(PosteriorLGSSMFiltered):
    """The results of the smoother (``smoother``): the filter's fields and p(z_t | y_{0:T-1}).

    Parameters
    ----------
    marginal_loglik, filtered_means, filtered_covariances, predicted_means, predicted_covariances, num_diffuse_timesteps
        As in `PosteriorLGSSMFiltered`.
    smoothed_means : array, shape (num_timesteps, state_dim)
        E[z_t | y_{0:T-1}].
    smoothed_covariances : array, shape (num_timesteps, state_dim, state_dim)
        Cov[z_t | y_{0:T-1}].
    smoothed_cross_covariances : array, shape (num_timesteps - 1, state_dim, state_dim)
        Cov[z_{t+1}, z_t | y_{0:T-1}], the lag-one cross covariances.
    """

    smoothed_means: Any = None  # (num_timesteps, state_dim)
    smoothed_covariances: Any = None  # (num_timesteps, state_dim, state_dim)
    smoothed_cross_covariances: Any = None  # (num_timesteps - 1, state_dim, state_dim): Cov[z_{t+1}, z_t | y]


@dataclass
class FitSummary:
    """How a fit ended (``return_summary=True`` of the ``fit_*`` methods).

    Parameters
    ----------
    iterations : int
        Iterations (EM, L-BFGS) or epochs (SGD) completed.
    termination : str
        ``"max_iterations"``, ``"converged"``, ``"numerical_failure"`` or ``"stopped"``.
    message : str
        Why it ended, in words.
    initial_objective : float, default nan
        The history's first entry (log p(y) for EM and L-BFGS, the loss for SGD).
    final_objective : float, default nan
        The history's last entry.
    evaluations : int, default 0
        Objective evaluations: E-steps (EM), minibatch losses (SGD), objective calls (L-BFGS).
    seconds : float, default 0.0
        Wall time.
    usable : bool, default False
        Whether the returned parameters are a fit (False when it failed at its start).
    """

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
        """Convert the summary of a fit by the C++ core.

        Parameters
        ----------
        summary : dict
            The core's summary: FitSummary's fields by name, ``termination`` an enum.

        Returns
        -------
        FitSummary
            The same fields, ``termination`` as its name.
        """
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
    """A linear Gaussian state-space model, with dynamax's ``LinearGaussianSSM`` API.

    The model (docs/conventions.md gives the time index)::

        z_0 ~ N(m, S),  z_t ~ N(F z_{t-1} + B u_t + b, Q),  y_t ~ N(H z_t + D u_t + d, R)

    with m, S = ``initial.mean``, ``initial.cov``; F, B, b, Q = ``dynamics.weights``,
    ``input_weights``, ``bias``, ``cov``; H, D, d, R = the same of ``emissions``.

    Emissions are a (num_timesteps, emission_dim) array with NaN for missing
    components, a (num_sequences, num_timesteps, emission_dim) batch padded at
    the end with NaN rows, or a list of 2-D arrays of different lengths; with
    emission_dim 1 also a 1-D array or pandas Series. pandas' NA is missing too.
    Inputs, where the model has them, are laid out like the emissions with
    input_dim columns (None: zeros). Counts are integers, flags bools; a call
    whose results would not fit in the machine's memory is refused before it
    allocates them. Bad arguments raise ValueError naming the argument.

    Parameters
    ----------
    state_dim : int
        The dimension of the latent state z_t, at least 1.
    emission_dim : int
        The dimension of the emissions y_t, at least 1.
    input_dim : int, default 0
        The dimension of the inputs u_t (0: no inputs).
    has_dynamics_bias : bool, default True
        Whether the dynamics bias b is trained (False: it stays as initialized, zero by default).
    has_emissions_bias : bool, default True
        Whether the emission bias d is trained.
    initialization : {"known", "diffuse"} or array, shape (state_dim, q), default "known"
        The initial state's distribution: ``"known"``, N(m, S); ``"diffuse"``, every
        direction diffuse, z_0 ~ N(m, S + kappa I) with kappa -> infinity (Durbin &
        Koopman 2012, Sec. 5.1; m and S then do not matter); an array A, the
        directions A diffuse: N(m, S + kappa A A^T). With a diffuse part, the filter
        and smoother are the exact initial ones, ``marginal_log_prob`` is the diffuse
        log likelihood (statsmodels' and KFAS's), the initial mean and covariance are
        not learned and ``sample`` is refused (docs/initialization.md).

    Raises
    ------
    ValueError
        If a dimension is not an integer in range, a flag not a bool, the
        initialization not one of the above, or the parameters would not fit in memory.

    References
    ----------
    .. [1] S. Särkkä, *Bayesian Filtering and Smoothing*, Cambridge University Press, 2013.
    .. [2] dynamax, ``dynamax.linear_gaussian_ssm.LinearGaussianSSM`` (the method names and
       parameter names followed here).
    """

    def __init__(
        self,
        state_dim: int,
        emission_dim: int,
        input_dim: int = 0,
        has_dynamics_bias: bool = True,
        has_emissions_bias: bool = True,
        initialization="known",
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
        self._diffuse = initialization_factor(initialization, n)  # A, P_inf = A A^T; (n, 0) if known
        self.initialization = initialization if isinstance(initialization, str) else self._diffuse

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
        """Make parameters with dynamax's defaults, any of them overridden, and their properties.

        The defaults: initial N(0, I); dynamics weights 0.99 I, cov 0.1 I;
        emission weights N(0, 1) draws, cov 0.1 I; zero biases and input weights.

        Parameters
        ----------
        key : int, numpy.random.Generator or JAX PRNG key, default 0
            The randomness of the default emission weights.
        initial_mean : array, shape (state_dim,), optional
            m.
        initial_covariance : array, shape (state_dim, state_dim), optional
            S.
        dynamics_weights : array, shape (state_dim, state_dim), optional
            F; with a leading (num_timesteps - 1,) axis, one per transition (time-varying).
        dynamics_bias : array, shape (state_dim,), optional
            b; with a leading (num_timesteps - 1,) axis, one per transition (time-varying).
        dynamics_input_weights : array, shape (state_dim, input_dim), optional
            B; with a leading (num_timesteps - 1,) axis, one per transition (time-varying).
        dynamics_covariance : array, shape (state_dim, state_dim), optional
            Q; with a leading (num_timesteps - 1,) axis, one per transition (time-varying).
        emission_weights : array, shape (emission_dim, state_dim), optional
            H; with a leading (num_timesteps,) axis, one per time step (time-varying).
        emission_bias : array, shape (emission_dim,), optional
            d; with a leading (num_timesteps,) axis, one per time step (time-varying).
        emission_input_weights : array, shape (emission_dim, input_dim), optional
            D; with a leading (num_timesteps,) axis, one per time step (time-varying).
        emission_covariance : array, shape (emission_dim, emission_dim), optional
            R; with a leading (num_timesteps,) axis, one per time step (time-varying).

        Returns
        -------
        params : ParamsLGSSM
            The parameters.
        props : ParamsLGSSM
            Their `ParameterProperties`: all trainable, except the biases when
            ``has_dynamics_bias`` / ``has_emissions_bias`` is False.

        Raises
        ------
        ValueError
            Naming the keyword whose value is bad (shape, not finite, a covariance
            that is not symmetric positive semidefinite).
        """
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
        return params, self._default_props(params)

    def _default_props(self, params: ParamsLGSSM) -> ParamsLGSSM:
        """``initialize``'s properties for ``params``: all trainable, the biases as the model has them."""
        props = default_props(params)
        props.dynamics.bias.trainable = self.has_dynamics_bias
        props.emissions.bias.trainable = self.has_emissions_bias
        if self.is_diffuse:
            props.initial.mean.trainable = props.initial.cov.trainable = False
        return props

    @property
    def is_diffuse(self) -> bool:
        """Whether the initial state has a diffuse part (``initialization`` not ``"known"``)."""
        return self._diffuse.shape[1] > 0

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
        return to_core(params, self.state_dim, self.emission_dim, self.input_dim, self._diffuse)

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

    @shared
    def marginal_log_prob(self, params: ParamsLGSSM, emissions, inputs=None):
        """Compute the marginal log likelihood log p(y) by the Kalman filter.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(inputs)s

        Returns
        -------
        float or array, shape (num_sequences,)
            log p(y_{0:T-1}) over the observed entries, one per sequence for a batch or list.

        Raises
        ------
        %(data_raises)s

        Warns
        -----
        RuntimeWarning
            When the log likelihood is -inf (squared residuals overflow float64).

        References
        ----------
        .. [1] S. Särkkä, *Bayesian Filtering and Smoothing*, 2013, Eq. 4.20-4.21 and Sec. 12.2.
        """
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

    @shared
    def filter(self, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMFiltered:
        """Run the Kalman filter: log p(y), filtered and one-step predicted moments.

        The update is the square-root (array) form of the filter; no predicted
        covariance is inverted.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(inputs)s

        Returns
        -------
        PosteriorLGSSMFiltered or list of PosteriorLGSSMFiltered
            The moments, with a leading (num_sequences,) axis for a batch, a list for a list.

        Raises
        ------
        %(data_raises)s

        References
        ----------
        .. [1] S. Särkkä, *Bayesian Filtering and Smoothing*, 2013, Theorem 4.2.
        """
        core, b = self._batch(params, emissions, inputs)
        return b.pack_results(PosteriorLGSSMFiltered, _core.filter(core, b.emissions, b.inputs))

    @shared
    def smoother(self, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMSmoothed:
        """Compute the smoothed moments of p(z_t | y_{0:T-1}), with lag-one cross covariances.

        The moments of the Rauch-Tung-Striebel smoother, computed by the backward
        recursion on information of Bryson & Frazier in de Jong's form, which
        inverts no predicted covariance.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(inputs)s

        Returns
        -------
        PosteriorLGSSMSmoothed or list of PosteriorLGSSMSmoothed
            The filter's and the smoother's moments, batched like ``filter``'s.

        Raises
        ------
        %(data_raises)s

        References
        ----------
        .. [1] H. E. Rauch, F. Tung and C. T. Striebel, "Maximum likelihood estimates of linear
           dynamic systems", *AIAA Journal* 3(8), 1965.
        .. [2] S. Särkkä, *Bayesian Filtering and Smoothing*, 2013, Theorem 8.2.
        .. [3] J. Durbin and S. J. Koopman, *Time Series Analysis by State Space Methods*,
           2nd ed., 2012, Sec. 4.4.
        """
        core, b = self._batch(params, emissions, inputs, covariances=4)
        return b.pack_results(PosteriorLGSSMSmoothed, _core.smoother(core, b.emissions, b.inputs))

    def sample(self, params: ParamsLGSSM, key, num_timesteps: int, inputs=None):
        """Draw one joint sample of the states and emissions from the model.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        key : int, numpy.random.Generator or JAX PRNG key
            The randomness; the draw is deterministic given an int seed.
        num_timesteps : int
            The number of time steps, at least 1.
        inputs : array, shape (num_timesteps, input_dim), optional
            The inputs u_t; None means zeros.

        Returns
        -------
        states : array, shape (num_timesteps, state_dim)
            z_{0:T-1}.
        emissions : array, shape (num_timesteps, emission_dim)
            y_{0:T-1}.

        Raises
        ------
        ValueError
            If ``num_timesteps`` is not a positive integer, ``inputs`` is not 2-D,
            or the parameters are invalid.
        """
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

    @shared
    def posterior_sample(self, key, params: ParamsLGSSM, emissions, inputs=None, num_samples=None):
        """Draw state trajectories from the posterior p(z_{0:T-1} | y) by the simulation smoother.

        Each draw is ``z+ - E[z | y+] + E[z | y]`` for (z+, y+) drawn from the model.
        The key comes first, as in dynamax.

        Parameters
        ----------
        key : int, numpy.random.Generator or JAX PRNG key
            The randomness; one seed per sequence is drawn from it.
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(inputs)s
        num_samples : int, optional
            The number of draws; None for one draw without a sample axis.

        Returns
        -------
        array, shape (num_timesteps, state_dim) or (num_samples, num_timesteps, state_dim)
            The draws, with a leading (num_sequences,) axis for a batch (a list for a list).

        Raises
        ------
        ValueError
            If ``num_samples`` is not a positive integer, or the parameters or data are invalid.

        References
        ----------
        .. [1] J. Durbin and S. J. Koopman, "A simple and efficient simulation smoother for
           state space time series analysis", *Biometrika* 89(3), 2002.
        """
        draws_per_step = 1 if num_samples is None else count("num_samples", num_samples, 1)
        core, b = self._batch(params, emissions, inputs, per_step=draws_per_step * self.state_dim)
        draws = _core.posterior_sample(core, b.emissions, b.inputs, seeds(key, len(b.emissions)), draws_per_step)
        if num_samples is None:
            return b.pack([d[0] for d in draws], time_offset=0)
        return b.pack(draws, time_offset=0, time_axis=1)

    @shared
    def posterior_predictive(self, params: ParamsLGSSM, emissions, inputs=None, full_covariance=False):
        """Compute the mean and spread of y_t under the smoothed state p(z_t | y_{0:T-1}).

        The mean is ``H_t m_{t|T} + D_t u_t + d_t`` and the covariance
        ``H_t P_{t|T} H_t^T + R_t``, also at missing entries (an imputation).

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(inputs)s
        full_covariance : bool, default False
            Return full covariances instead of standard deviations.

        Returns
        -------
        means : array, shape (num_timesteps, emission_dim)
            E[y_t | y_{0:T-1}].
        stds_or_covariances : array, shape (num_timesteps, emission_dim) or (num_timesteps, emission_dim, emission_dim)
            The standard deviations sqrt(diag Var[y_t | y]), or with ``full_covariance``
            the covariances. Both batched like the emissions.

        Raises
        ------
        ValueError
            If ``full_covariance`` is not a bool, or the parameters or data are invalid.
        """
        full_covariance = flag("full_covariance", full_covariance)
        core, b = self._batch(
            params, emissions, inputs, covariances=4, per_step=self.emission_dim**2 if full_covariance else 0
        )
        out = _core.posterior_predictive(core, b.emissions, b.inputs, full_covariance)
        second = "covariances" if full_covariance else "stds"
        return (b.pack([o["means"] for o in out], time_offset=0), b.pack([o[second] for o in out], time_offset=0))

    @shared
    def forecast(self, params: ParamsLGSSM, emissions, num_forecast_timesteps: int, inputs=None, forecast_inputs=None):
        """Forecast the states and emissions after the data: p(z_{T+k} | y) and p(y_{T+k} | y).

        Exact predictive moments for k = 0 .. num_forecast_timesteps - 1.
        Time-varying parameters are indexed by absolute time, so they must
        extend over the horizon.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        num_forecast_timesteps : int
            The horizon K, at least 1.
        %(inputs)s
        forecast_inputs : array, shape (num_forecast_timesteps, input_dim), or one per sequence, optional
            The inputs over the horizon; None means zeros.

        Returns
        -------
        means : array, shape (num_forecast_timesteps, state_dim)
            E[z_{T+k} | y].
        covariances : array, shape (num_forecast_timesteps, state_dim, state_dim)
            Cov[z_{T+k} | y].
        emission_means : array, shape (num_forecast_timesteps, emission_dim)
            E[y_{T+k} | y].
        emission_covariances : array, shape (num_forecast_timesteps, emission_dim, emission_dim)
            Cov[y_{T+k} | y]. Each with a leading (num_sequences,) axis for a batch.

        Raises
        ------
        ValueError
            If ``num_forecast_timesteps`` is not a positive integer, or the
            parameters, data or inputs are invalid.
        """
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

    # -- streaming ---------------------------------------------------------
    def filter_init(self, params: ParamsLGSSM) -> streaming.FilterState:
        """Start a stream: the Kalman filter's state before its first step.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.

        Returns
        -------
        FilterState
            The state with ``num_timesteps == 0``; its moments are the initial
            distribution's, from which the first ``filter_step`` starts.

        Raises
        ------
        ValueError
            If the parameters are invalid.
        """
        return streaming.filter_init(self, params)

    def filter_step(self, params: ParamsLGSSM, state, emission, input=None) -> tuple[streaming.FilterState, float]:
        """Advance a stream by one observation: predict, then update on y_t.

        Step t = ``state.num_timesteps`` of the batch filter (the same C++ step):
        the prediction p(z_t | y_{0:t-1}) (at t = 0 the initial distribution;
        else through dynamics entry t - 1, driven by u_t), then the update on the
        observed entries of y_t. Stepping through a sequence gives ``filter``'s
        moments and, summed, ``marginal_log_prob``. The state is advanced in place
        and returned. Parameters are converted and validated when a different
        ``params`` object comes; arrays changed in place are not seen.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters (they may change between steps).
        state : FilterState
            From ``filter_init`` (or a previous step), advanced in place.
        emission : array, shape (emission_dim,)
            y_t, NaN where missing (all NaN: a step without observation).
        input : array, shape (input_dim,), optional
            u_t; None means zeros.

        Returns
        -------
        state : FilterState
            ``state``, whose moments are now those of z_t given y_{0:t}.
        log_likelihood : float
            log p(y_t | y_{0:t-1}) over the observed entries (0 if none).

        Raises
        ------
        ValueError
            If ``state`` is not a FilterState of this model's dimensions, or the
            parameters, ``emission`` or ``input`` are invalid.

        References
        ----------
        .. [1] S. Särkkä, *Bayesian Filtering and Smoothing*, 2013, Eq. 4.20-4.21 and Sec. 12.2.
        """
        return streaming.filter_step(self, params, state, emission, input)

    def predict_step(self, params: ParamsLGSSM, state, input=None) -> streaming.FilterState:
        """Advance a stream by one step without observation (prediction only).

        The same as ``filter_step`` with y_t all missing: the state's moments
        become those of p(z_t | y_{0:t-1}). Repeated calls forecast (the state
        moments of ``forecast``).

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters.
        state : FilterState
            From ``filter_init`` or a previous step, advanced in place.
        input : array, shape (input_dim,), optional
            u_t; None means zeros.

        Returns
        -------
        FilterState
            ``state``, advanced.

        Raises
        ------
        ValueError
            If ``state`` is not a FilterState of this model's dimensions, or the
            parameters or ``input`` are invalid.

        References
        ----------
        .. [1] S. Särkkä, *Bayesian Filtering and Smoothing*, 2013, Eq. 4.20.
        """
        return streaming.predict_step(self, params, state, input)

    def fixed_lag_smoother(self, params: ParamsLGSSM, lag: int) -> streaming.FixedLagSmoother:
        """Make a fixed-lag smoother for a stream: p(z_{t-lag} | y_{0:t}) after each y_t.

        Exact: each step runs the filter's step, then the batch smoother's
        backward recursion over the last ``lag`` + 1 steps, so the window holds
        what ``smoother`` returns for y_{0:t} there.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters (copied).
        lag : int
            The lag L >= 0 (0: the filter).

        Returns
        -------
        FixedLagSmoother
            The smoother; ``step(y_t, u_t)`` observes a step.

        Raises
        ------
        ValueError
            If ``lag`` is not an integer >= 0 or the parameters are invalid.

        References
        ----------
        .. [1] S. Särkkä, *Bayesian Filtering and Smoothing*, 2013, Theorem 8.2 (the
           smoothed moments) and Ch. 8 (fixed-lag smoothing).
        """
        return streaming.fixed_lag_smoother(self, params, lag)

    # -- learning ----------------------------------------------------------
    @shared
    def sufficient_stats(self, params: ParamsLGSSM, emissions, inputs=None) -> _core.SufficientStats:
        """Compute the E-step: expected sufficient statistics summed over the sequences.

        Per step for emission parameters with a time axis. The result is
        picklable, and ``a + b`` sums the statistics of two batches, so an
        E-step can be split across workers.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(inputs)s

        Returns
        -------
        lgssm._core.SufficientStats
            The statistics that ``m_step`` takes.

        Raises
        ------
        ValueError
            If the parameters or data are invalid.

        References
        ----------
        %(em_references)s
        """
        core, b = self._batch(params, emissions, inputs, covariances=4)
        e = params.emissions  # per-step sets only when every emission parameter is per step
        per_step = np.ndim(e.weights) == 3 and np.ndim(e.bias) == 2 and np.ndim(e.cov) == 3
        per_step = per_step and np.ndim(e.input_weights) == 3
        return _core.sufficient_stats(core, b.emissions, b.inputs, per_step)

    def m_step(self, params: ParamsLGSSM, props: ParamsLGSSM, stats: _core.SufficientStats) -> ParamsLGSSM:
        """Compute the closed-form M-step over the trainable parameters, given ``stats``.

        Each conditional is a linear regression: the trainable blocks of
        [weights, input_weights, bias] solve the normal equations with the frozen
        blocks held fixed, then the covariance is the residual second moment,
        projected onto its structure. With priors (`LinearGaussianConjugateSSM`)
        it is the MAP M-step.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.
        props : ParamsLGSSM
            The `ParameterProperties` of each parameter (trainable, structure).
        stats : lgssm._core.SufficientStats
            From ``sufficient_stats``.

        Returns
        -------
        ParamsLGSSM
            The updated parameters, shaped like ``params``.

        Raises
        ------
        ValueError
            If the parameters, properties or statistics do not match the model.

        References
        ----------
        .. [1] R. H. Shumway and D. S. Stoffer, *Time Series Analysis and Its Applications*,
           4th ed., 2017, Property 6.4.
        """
        core = self.core_params(params)
        return from_core(_core.m_step(core, props_to_core(props), stats, self.core_prior()), params)

    def log_prior(self, params: ParamsLGSSM) -> float:
        """Compute the log prior density log p(params): 0 for this model without priors.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters, e.g. from ``initialize``.

        Returns
        -------
        float
            0.0.
        """
        return 0.0

    @shared
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
        """Fit by expectation-maximization (closed-form E- and M-steps).

        Stops early when the relative change of the log likelihood is at most
        ``tolerance``; on a numerical failure it warns and returns the last good
        parameters. With priors (`LinearGaussianConjugateSSM`) it is MAP-EM and
        the history includes ``log_prior``.

        Parameters
        ----------
        params : ParamsLGSSM
            The starting parameters.
        props : ParamsLGSSM
            The `ParameterProperties` of each parameter: frozen ones are held fixed,
            covariance structures kept.
        %(emissions)s
        %(inputs)s
        num_iters : int, default 50
            The maximum number of iterations.
        %(progress)s
        tolerance : float, default 0.0
            Stop when the relative change of the log likelihood is at most this (0: never).
        %(summary)s
        accelerate : bool, default False
            SQUAREM extrapolation between pairs of EM steps, each kept only when it
            does not lower the log likelihood; every evaluated iterate is one entry of
            the history, which stays non-decreasing.

        Returns
        -------
        params : ParamsLGSSM
            The fitted parameters.
        marginal_lls : array, shape (num_evaluations,)
            The log likelihood entering each iteration.
        summary : FitSummary
            Only with ``return_summary``.

        Raises
        ------
        %(fit_raises)s

        Warns
        -----
        RuntimeWarning
            On a numerical failure (the summary's termination is ``"numerical_failure"``).

        References
        ----------
        %(em_references)s
        %(squarem_reference)s
        """
        num_iters = count("num_iters", num_iters, 0, INT_MAX)
        options = core_options(
            _core.EmOptions,
            num_iters=num_iters,
            tolerance=nonnegative("tolerance", tolerance),
            accelerate=flag("accelerate", accelerate),
        )
        return self._fit(
            Driver(_core.fit_em, "EM", num_iters, options), params, props, emissions, inputs, verbose, return_summary
        )

    @shared
    def fit_sgd(
        self,
        params: ParamsLGSSM,
        props: ParamsLGSSM,
        emissions,
        inputs=None,
        optimizer: Any = None,
        batch_size: int = 1,
        num_epochs: int = 50,
        shuffle: bool = False,
        key=0,
        verbose: bool = True,
        return_summary: bool = False,
    ):
        """Fit by stochastic gradient descent (Adam, or an optax optimizer) on minibatches of whole sequences.

        The gradients of log p(y) are exact. Returns the parameters after the
        last update; if the loss becomes non-finite it warns and returns the
        parameters with the lowest loss, the message naming their epoch.

        Parameters
        ----------
        params : ParamsLGSSM
            The starting parameters.
        props : ParamsLGSSM
            The `ParameterProperties` of each parameter: frozen ones are held fixed,
            covariance structures kept.
        %(emissions)s
        %(inputs)s
        optimizer : Adam or optax.GradientTransformation, optional
            From `lgssm.optimizers.adam` (Adam in C++, the fast path); None for ``adam()``'s
            defaults. Or any optax optimizer (``optax.adam``, ``sgd``, ``adamw``,
            ``chain(...)``, schedules), stepped by JAX in float64 on the same exact
            gradients (`lgssm.optimizers.OptaxUpdate`); optax's Adam with the same
            settings gives the same trajectory as the C++ one.
        batch_size : int, default 1
            Sequences per minibatch.
        num_epochs : int, default 50
            Passes over the sequences.
        shuffle : bool, default False
            Shuffle the sequences before each epoch.
        key : int, numpy.random.Generator or JAX PRNG key, default 0
            The randomness of the shuffling.
        %(progress)s
        %(summary)s

        Returns
        -------
        params : ParamsLGSSM
            The fitted parameters.
        losses : array, shape (num_epochs,)
            The loss per epoch on dynamax's scale, -log p(y) divided by the number of
            emission entries, so ``-losses * emissions.size`` is the log likelihood.
        summary : FitSummary
            Only with ``return_summary``.

        Raises
        ------
        ValueError
            If ``optimizer`` is neither an `Adam` nor an optax optimizer, an option is out
            of range, no emission is observed, or the parameters, properties or data are invalid.
        ImportError
            If ``optimizer`` is an optax optimizer and JAX or optax cannot be imported.

        Warns
        -----
        RuntimeWarning
            When the emissions are badly scaled for Adam's step size, and on a
            non-finite loss.

        References
        ----------
        .. [1] D. P. Kingma and J. Ba, "Adam: a method for stochastic optimization", ICLR 2015.
        """
        adam_options, update = core_step(optimizer)
        num_epochs = count("num_epochs", num_epochs, 0, INT_MAX)
        options = core_options(
            _core.SgdOptions,
            adam=adam_options,
            batch_size=count("batch_size", batch_size, 1, INT_MAX),
            num_epochs=num_epochs,
            shuffle=flag("shuffle", shuffle),
            seed=seeds(key, 1)[0],
        )
        driver = Driver(functools.partial(_core.fit_sgd, update=update), "SGD", num_epochs, options)
        return self._fit(driver, params, props, emissions, inputs, verbose, return_summary, warn_unscaled=True)

    @shared
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
        """Fit by L-BFGS on the log likelihood with exact gradients.

        Runs until a tolerance is met or ``max_iters`` iterations (the summary's
        termination says which), with a strong Wolfe line search. Where it converges
        it goes on from there over the standard deviations of the free variances
        (diagonal and scalar covariances, variance constraints), as statsmodels
        optimizes them, so that a variance that overshot towards 0 comes back (in
        their log coordinates the way there is infinitely long and flat).

        Parameters
        ----------
        params : ParamsLGSSM
            The starting parameters.
        props : ParamsLGSSM
            The `ParameterProperties` of each parameter: frozen ones are held fixed,
            covariance structures kept.
        %(emissions)s
        %(inputs)s
        max_iters : int, default 1000
            The maximum number of iterations.
        gradient_tolerance : float, default 1e-8
            Stop when ``max|grad f| <= gradient_tolerance * max(1, |f|)``, for f = -log p(y)
            divided by the number of emission entries.
        function_tolerance : float, default 1e-12
            Stop when the relative decrease of f is below this.
        %(progress)s
        %(summary)s

        Returns
        -------
        params : ParamsLGSSM
            The fitted parameters.
        marginal_lls : array, shape (num_iterates,)
            The log likelihood at each iterate, the start included.
        summary : FitSummary
            Only with ``return_summary``.

        Raises
        ------
        %(fit_raises)s

        References
        ----------
        .. [1] J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., 2006,
           Algorithms 7.4-7.5 and 3.5-3.6.
        """
        options = lbfgs_options(max_iters, gradient_tolerance, function_tolerance)
        driver = Driver(_core.fit_lbfgs, "L-BFGS", options.max_iters + 1, options)
        return self._fit(driver, params, props, emissions, inputs, verbose, return_summary)

    def _fit(self, driver: Driver, params, props, emissions, inputs, verbose, return_summary, warn_unscaled=False):
        verbose, return_summary = flag("verbose", verbose), flag("return_summary", return_summary)
        core, b = self._batch(params, emissions, inputs, covariances=4)
        require_observed("emissions", b.emissions)
        if warn_unscaled and (warning := unscaled(b.emissions)) is not None:
            warnings.warn(warning, RuntimeWarning, stacklevel=3)
        driver.options.prior = self.core_prior()
        fitted, history, summary = run_with_progress(driver, verbose, core, props_to_core(props), b.emissions, b.inputs)
        for warning in summary["warnings"]:
            warnings.warn(f"{driver.label}: {warning}", RuntimeWarning, stacklevel=3)
        summary = FitSummary.from_core(summary)
        return fit_result(from_core(fitted, params), history, summary, driver.label, return_summary, 3)


class LinearGaussianConjugateSSM(LinearGaussianSSM):
    """A `LinearGaussianSSM` with conjugate priors on its parameters (dynamax's ``LinearGaussianConjugateSSM``).

    Every fit is then a MAP fit, and its recorded objective includes
    ``log_prior(params)``.

    Parameters
    ----------
    state_dim, emission_dim, input_dim, has_dynamics_bias, has_emissions_bias
        As for `LinearGaussianSSM`.
    initial_prior : lgssm.priors.NormalInverseWishart, optional
        The prior of (initial.mean, initial.cov); None for dynamax's default.
    dynamics_prior : lgssm.priors.MatrixNormalInverseWishart, optional
        The prior of ([dynamics.weights, input_weights, bias], dynamics.cov).
    emission_prior : lgssm.priors.MatrixNormalInverseWishart, optional
        The prior of ([emissions.weights, input_weights, bias], emissions.cov).

    See Also
    --------
    lgssm.priors.defaults : The default priors.
    """

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
        """Compute log p(params) under the conjugate priors, normalizers included.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters.

        Returns
        -------
        float
            The log prior density.

        Raises
        ------
        ValueError
            If the parameters or priors have the wrong shape.
        """
        return _core.log_prior(self.core_params(params), self.core_prior())

    @shared
    def fit_blocked_gibbs(
        self,
        key,
        initial_params: ParamsLGSSM,
        sample_size: int,
        emissions,
        inputs=None,
        props: ParamsLGSSM | None = None,
        verbose: bool = True,
        return_summary: bool = False,
    ):
        """Sample the parameter posterior p(params | y) by blocked Gibbs sampling, as dynamax's.

        Each sweep draws the states of every sequence from p(z | y, params) by the
        simulation smoother, the missing emission components from their law given the
        states and the observed components of their step (data augmentation), then the
        trainable parameters from their exact conjugate conditionals given the states
        and the completed emissions: NIW for the initial state, MNIW for
        [weights, input_weights, bias] and cov of the dynamics and the emissions, under
        the model's priors (those of the MAP fits, so Gibbs samples the posterior that
        ``fit_em`` maximizes). Frozen parameters stay exactly fixed and the free ones
        are drawn given them; diagonal and scalar covariances have inverse-gamma
        conditionals (docs/bayesian.md gives the prior they correspond to). Batches may
        hold sequences of different lengths and missing values. All sweeps run in C++.

        Parameters
        ----------
        key : int, numpy.random.Generator or JAX PRNG key
            The randomness; the chain is deterministic given an int seed.
        initial_params : ParamsLGSSM
            The starting parameters, returned as the first sample.
        sample_size : int
            The number of samples, at least 1, the initial parameters included
            (``sample_size - 1`` sweeps).
        %(emissions)s
        %(inputs)s
        props : ParamsLGSSM, optional
            The `ParameterProperties` of each parameter: frozen ones are held fixed,
            covariance structures kept; None for ``initialize``'s (all trainable, the
            biases as the model has them).
        %(progress)s
        return_summary : bool, default False
            Also return log p(y) per sweep and a `FitSummary`.

        Returns
        -------
        samples : ParamsLGSSM
            Every field with a leading (sample_size,) axis: ``samples[0]`` is
            ``initial_params`` and entry i the parameters after sweep i, as in dynamax
            (fewer entries when stopped, e.g. by Ctrl-C).
        marginal_lls : array, shape (num_sweeps,)
            Only with ``return_summary``: log p(y) at the parameters entering each sweep
            (from the smoother of its state draw).
        summary : FitSummary
            Only with ``return_summary``.

        Raises
        ------
        ValueError
            If ``sample_size`` is not a positive integer, no emission is observed, or the
            parameters, properties, priors or data are invalid.

        References
        ----------
        .. [1] C. K. Carter and R. Kohn, "On Gibbs sampling for state space models",
           *Biometrika* 81(3), 1994.
        .. [2] J. Durbin and S. J. Koopman, "A simple and efficient simulation smoother for
           state space time series analysis", *Biometrika* 89(3), 2002.
        .. [3] M. A. Tanner and W. H. Wong, "The calculation of posterior distributions by
           data augmentation", *JASA* 82(398), 1987.
        """
        sample_size = count("sample_size", sample_size, 1, INT_MAX)
        verbose, return_summary = flag("verbose", verbose), flag("return_summary", return_summary)
        core, b = self._batch(initial_params, emissions, inputs)
        require_observed("emissions", b.emissions)
        props = self._default_props(initial_params) if props is None else props
        seed = seeds(key, 1)[0]
        driver = Driver(_core.fit_blocked_gibbs, "Gibbs", sample_size - 1, _core.GibbsOptions())
        samples, lls, summary = run_with_progress(
            driver,
            verbose,
            core,
            props_to_core(props),
            b.emissions,
            b.inputs,
            self.core_prior(),
            sample_size,
            seed,
        )
        stacked = stack_params([from_core(c, initial_params) for c in samples])
        summary = FitSummary.from_core(summary)
        return (stacked, np.asarray(lls), summary) if return_summary else stacked
