"""Continuous-time models: a linear time-invariant SDE observed at discrete times.

    x(t_0) ~ N(m, S),   dx = F x dt + L dW,   y_k ~ N(H_k x(t_k) + D_k u_k + d_k, R_k)

with F = ``params.dynamics.drift`` and Q_c = L L^T = ``params.dynamics.diffusion_cov``
(only Q_c is identifiable: L and L U with U orthogonal define the same process).
Observation times are any strictly increasing times per sequence (``times``), or
equally spaced with step ``dt``. See docs/continuous-time.md.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._batch import as_batch
from ._checks import count, flag, nonnegative
from ._docstrings import shared
from ._fitting import Driver, core_options, fit_result, lbfgs_options, run_with_progress
from ._keys import as_generator
from .models import FitSummary, LinearGaussianSSM, PosteriorLGSSMSmoothed
from .params import (
    ParameterProperties,
    ParamsLGSSM,
    ParamsLGSSMDynamics,
    ParamsLGSSMEmissions,
    ParamsLGSSMInitial,
    conditional_from_core,
    core_conditional,
    core_conditional_props,
    core_initial,
    core_initial_props,
    core_structure,
    shapes,
)


@dataclass
class ParamsCTDynamics:
    """The dynamics of a continuous-time model, dx = F x dt + L dW.

    Parameters
    ----------
    drift : array, shape (state_dim, state_dim)
        F.
    diffusion_cov : array, shape (state_dim, state_dim)
        Q_c = L L^T, symmetric positive semidefinite.
    """

    drift: Any  # F: (state_dim, state_dim)
    diffusion_cov: Any  # Q_c = L L^T: (state_dim, state_dim)


@dataclass
class ParamsCTSSM:
    """The parameters of a `ContinuousTimeSSM`.

    Parameters
    ----------
    initial : ParamsLGSSMInitial
        The state at the first observation time, x(t_0) ~ N(mean, cov).
    dynamics : ParamsCTDynamics
        F and Q_c.
    emissions : ParamsLGSSMEmissions
        As for `lgssm.LinearGaussianSSM`: constant, or a leading axis of one entry per
        observation index.
    """

    initial: ParamsLGSSMInitial
    dynamics: ParamsCTDynamics
    emissions: ParamsLGSSMEmissions  # constant, or a leading axis of one entry per observation index


def discretize(drift, diffusion_covariance, dt: float):
    """Discretize an LTI SDE: the Gaussian transition (A, Sigma) over a step ``dt``.

    ``A = exp(F dt)`` and ``Sigma = int_0^dt e^{F u} Q_c e^{F^T u} du``, the
    blocks of Van Loan's ``exp([[F, Q_c], [0, -F^T]] dt) = [[A, Sigma A^-T], [0, A^-T]]``,
    computed by scaling and squaring on the pair (A, Sigma), which stays finite
    and positive semidefinite for stiff drifts (see docs/continuous-time.md).

    Parameters
    ----------
    drift : array, shape (state_dim, state_dim)
        F.
    diffusion_covariance : array, shape (state_dim, state_dim)
        Q_c, symmetric positive semidefinite.
    dt : float
        The step.

    Returns
    -------
    weights : array, shape (state_dim, state_dim)
        A.
    cov : array, shape (state_dim, state_dim)
        Sigma.

    Raises
    ------
    ValueError
        Naming the argument that is wrong: a shape, a non-finite value, a diffusion
        covariance that is not symmetric positive semidefinite, a transition that overflows.

    References
    ----------
    .. [1] C. F. Van Loan, "Computing integrals involving the matrix exponential",
       *IEEE Trans. Automatic Control* 23(3), 1978, Theorem 1.
    .. [2] S. Särkkä and A. Solin, *Applied Stochastic Differential Equations*, 2019, Eq. 6.3.
    .. [3] N. J. Higham, "The scaling and squaring method for the matrix exponential
       revisited", *SIAM J. Matrix Anal. Appl.* 26(4), 2005.
    """
    return _core.discretize(
        _real_matrix("drift", drift), _real_matrix("diffusion_covariance", diffusion_covariance), _real("dt", dt)
    )


def undiscretize(weights, cov, dt: float):
    """Recover the SDE (F, Q_c) from a transition (A, Sigma) over a step ``dt``.

    ``F = log(A) / dt``, the principal matrix logarithm, and Q_c solves
    ``Sigma = Sigma_dt(Q_c)`` (linear in Q_c): the inverse of `discretize`.

    Parameters
    ----------
    weights : array, shape (state_dim, state_dim)
        A.
    cov : array, shape (state_dim, state_dim)
        Sigma, symmetric positive semidefinite.
    dt : float
        The step.

    Returns
    -------
    drift : array, shape (state_dim, state_dim)
        F.
    diffusion_cov : array, shape (state_dim, state_dim)
        Q_c.

    Raises
    ------
    ValueError
        When A has an eigenvalue on the closed negative real axis (no real principal
        logarithm) or Sigma is not symmetric positive semidefinite.

    Warns
    -----
    RuntimeWarning
        When the recovered Q_c was not positive semidefinite and was projected onto
        the nearest such matrix, giving the Frobenius norm of the change.

    References
    ----------
    .. [1] N. J. Higham, "Computing a nearest symmetric positive semidefinite matrix",
       *Linear Algebra Appl.* 103, 1988.
    """
    drift, diffusion_cov, correction = _core.undiscretize(
        _real_matrix("weights", weights), _real_matrix("cov", cov), _real("dt", dt)
    )
    _warn_projection(correction)
    return drift, diffusion_cov


def _real_array(name: str, value, ndim: int) -> np.ndarray:
    """``value`` as a float64 array of ``ndim`` dimensions, or ValueError naming ``name``."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        a = None
    if a is None or a.dtype.kind not in "iuf":
        raise ValueError(
            f"{name}: expected an array of real numbers, got "
            + ("a ragged or unreadable value" if a is None else f"dtype {a.dtype}")
        )
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    return a.astype(np.float64)


def _real_matrix(name: str, value) -> np.ndarray:
    return _real_array(name, value, 2)


def _real(name: str, value) -> float:
    """A real number (not a bool or a string), or ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _warn_projection(correction: float):
    if correction > 0:
        warnings.warn(
            f"the recovered diffusion_cov was not positive semidefinite; projected onto the nearest "
            f"positive semidefinite matrix (Frobenius change {correction:.3g})",
            RuntimeWarning,
            stacklevel=3,
        )


class ContinuousTimeSSM:
    """A linear time-invariant SDE observed at discrete times, with the methods of `lgssm.LinearGaussianSSM`.

    The model::

        x(t_0) ~ N(m, S),   dx = F x dt + L dW,   y_k ~ N(H_k x(t_k) + D_k u_k + d_k, R_k)

    Every method takes the observation ``times`` (per sequence, like the
    emissions: (num_timesteps,), (num_sequences, num_timesteps) or a list) or a
    uniform step ``dt``, and works on the equivalent discrete-time model with
    one transition per gap (`discrete_params`).

    Parameters
    ----------
    state_dim : int
        The dimension of the state x(t), at least 1.
    emission_dim : int
        The dimension of the emissions y_k, at least 1.
    input_dim : int, default 0
        The dimension of the inputs u_k of the emissions (0: no inputs).
    has_emissions_bias : bool, default True
        Whether the emission bias d is trained.

    Raises
    ------
    ValueError
        If a dimension or flag is invalid.

    References
    ----------
    .. [1] S. Särkkä and A. Solin, *Applied Stochastic Differential Equations*,
       Cambridge University Press, 2019.
    """

    def __init__(self, state_dim: int, emission_dim: int, input_dim: int = 0, has_emissions_bias: bool = True):
        self._discrete = LinearGaussianSSM(state_dim, emission_dim, input_dim, has_emissions_bias=has_emissions_bias)
        self.state_dim, self.emission_dim, self.input_dim = state_dim, emission_dim, input_dim
        self.has_emissions_bias = has_emissions_bias

    def initialize(
        self,
        key=0,
        *,
        initial_mean=None,
        initial_covariance=None,
        drift=None,
        diffusion_covariance=None,
        emission_weights=None,
        emission_bias=None,
        emission_input_weights=None,
        emission_covariance=None,
    ):
        """Make parameters with defaults, any of them overridden, and their properties.

        The defaults: x(t_0) ~ N(0, I), F = -0.1 I, Q_c = 0.1 I, emissions as
        for `lgssm.LinearGaussianSSM` (N(0, 1) weights, cov 0.1 I, zero bias and
        input weights).

        Parameters
        ----------
        key : int, numpy.random.Generator or JAX PRNG key, default 0
            The randomness of the default emission weights.
        initial_mean : array, shape (state_dim,), optional
            m.
        initial_covariance : array, shape (state_dim, state_dim), optional
            S.
        drift : array, shape (state_dim, state_dim), optional
            F.
        diffusion_covariance : array, shape (state_dim, state_dim), optional
            Q_c.
        emission_weights : array, shape (emission_dim, state_dim), optional
            H; with a leading (num_timesteps,) axis, one per observation index.
        emission_bias : array, shape (emission_dim,), optional
            d; with a leading (num_timesteps,) axis, one per observation index.
        emission_input_weights : array, shape (emission_dim, input_dim), optional
            D; with a leading (num_timesteps,) axis, one per observation index.
        emission_covariance : array, shape (emission_dim, emission_dim), optional
            R; with a leading (num_timesteps,) axis, one per observation index.

        Returns
        -------
        params : ParamsCTSSM
            The parameters.
        props : ParamsCTSSM
            Their `ParameterProperties`, all trainable except an absent emission bias.

        Raises
        ------
        ValueError
            Naming the keyword whose value is bad.
        """
        rng = as_generator(key)
        n = self.state_dim
        drift = _real_matrix("drift", -0.1 * np.eye(n) if drift is None else drift)
        diffusion = _real_matrix(
            "diffusion_covariance", 0.1 * np.eye(n) if diffusion_covariance is None else diffusion_covariance
        )
        _core.validate_continuous_dynamics(drift, diffusion, n, "drift", "diffusion_covariance")
        base, base_props = self._discrete.initialize(
            rng,
            initial_mean=initial_mean,
            initial_covariance=initial_covariance,
            emission_weights=emission_weights,
            emission_bias=emission_bias,
            emission_input_weights=emission_input_weights,
            emission_covariance=emission_covariance,
        )
        params = ParamsCTSSM(
            initial=base.initial,
            dynamics=ParamsCTDynamics(drift=drift, diffusion_cov=diffusion),
            emissions=base.emissions,
        )
        self.core_params(params)  # validates
        props = ParamsCTSSM(
            initial=base_props.initial,
            dynamics=ParamsCTDynamics(ParameterProperties(), ParameterProperties()),
            emissions=base_props.emissions,
        )
        return params, props

    # -- conversions to the C++ core -------------------------------------------
    def core_params(self, params: ParamsCTSSM) -> _core.ContinuousParams:
        """Validate ``params`` and convert them for the C++ core.

        Parameters
        ----------
        params : ParamsCTSSM
            The drift and diffusion covariance, each (state_dim, state_dim), with the
            initial state and the emissions as a LinearGaussianSSM has them (the
            emissions optionally with a leading axis of one entry per observation index).

        Returns
        -------
        lgssm._core.ContinuousParams
            What the C++ continuous-time functions of ``lgssm._core`` take.

        Raises
        ------
        ValueError
            Naming the first parameter with a wrong shape, a non-finite entry, or a
            diffusion covariance that is not symmetric positive semidefinite.
        """
        table = shapes(self.state_dim, self.emission_dim, self.input_dim)
        n = self.state_dim
        drift = _real_matrix("dynamics.drift", params.dynamics.drift)
        diffusion = _real_matrix("dynamics.diffusion_cov", params.dynamics.diffusion_cov)
        _core.validate_continuous_dynamics(drift, diffusion, n, "dynamics.drift", "dynamics.diffusion_cov")
        core = _core.ContinuousParams(
            *core_initial(params.initial, table),
            drift,
            diffusion,
            core_conditional("emissions", params.emissions, table),
        )
        core.validate()
        return core

    def core_props(self, props: ParamsCTSSM) -> _core.ContinuousProps:
        """The C++ core's parameter properties of ``props``.

        Parameters
        ----------
        props : ParamsCTSSM
            A ParameterProperties per parameter (``trainable``; ``structure`` for the
            covariances), laid out like the parameters.

        Returns
        -------
        lgssm._core.ContinuousProps
            Which parameters the C++ fits change, and the structure of each covariance.

        Raises
        ------
        ValueError
            When an entry is not a ParameterProperties or has an unknown structure.
        """
        out = _core.ContinuousProps()
        out.initial = core_initial_props(props)
        out.drift = bool(props.dynamics.drift.trainable)
        out.diffusion_cov = bool(props.dynamics.diffusion_cov.trainable)
        out.diffusion_cov_structure = core_structure("dynamics.diffusion_cov", props.dynamics.diffusion_cov)
        out.emissions = core_conditional_props("emissions", props.emissions)
        return out

    def discrete_params(self, params: ParamsCTSSM, times) -> ParamsLGSSM:
        """Convert to the equivalent discrete-time parameters at ``times``.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        times : array, shape (num_timesteps,)
            Strictly increasing observation times of one sequence.

        Returns
        -------
        ParamsLGSSM
            Dynamics with one entry per gap, shape (num_timesteps - 1, state_dim, state_dim)
            (a single constant entry when the gaps are equal), zero bias and input
            weights; the emissions of ``params``.

        Raises
        ------
        ValueError
            If the times are not 1-D, finite and strictly increasing, or the parameters are invalid.
        """
        core = _core.to_discrete(self.core_params(params), _real_array("times", times, 1))
        dyn = core.dynamics
        weights, cov = np.array(dyn.weights), np.array(dyn.cov)
        return ParamsLGSSM(
            initial=ParamsLGSSMInitial(np.array(core.initial_mean), np.array(core.initial_cov)),
            dynamics=ParamsLGSSMDynamics(
                weights=weights[0] if len(weights) == 1 else weights,
                bias=np.array(dyn.bias)[0, :, 0],
                input_weights=np.array(dyn.input_weights)[0],
                cov=cov[0] if len(cov) == 1 else cov,
            ),
            emissions=params.emissions,
        )

    def _sequences(self, emissions, inputs, times, dt):
        b = as_batch(emissions, inputs, self.input_dim)
        return b, per_sequence_times(b, times, dt)

    def _each(self, method: str, params, emissions, inputs, times, dt, **kwargs):
        b, ts = self._sequences(emissions, inputs, times, dt)
        fn = getattr(self._discrete, method)
        return b, [
            fn(self.discrete_params(params, t), y, inputs=u, **kwargs) for y, u, t in zip(b.emissions, b.inputs, ts)
        ]

    # -- inference -------------------------------------------------------------
    @shared
    def marginal_log_prob(self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None):
        """Compute the marginal log likelihood log p(y) by the Kalman filter.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(times)s
        %(inputs)s

        Returns
        -------
        float or array, shape (num_sequences,)
            log p(y) over the observed entries, one per sequence for a batch or list.

        Raises
        ------
        %(times_raises)s

        See Also
        --------
        lgssm.models.LinearGaussianSSM.marginal_log_prob : The same on the discrete-time model.
        """
        b, out = self._each("marginal_log_prob", params, emissions, inputs, times, dt)
        return out[0] if b.kind == "single" else np.asarray(out)

    @shared
    def filter(self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None):
        """Run the Kalman filter: log p(y), filtered and one-step predicted moments.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(times)s
        %(inputs)s

        Returns
        -------
        PosteriorLGSSMFiltered or list of PosteriorLGSSMFiltered
            The moments at the observation times, batched like the emissions.

        Raises
        ------
        %(times_raises)s

        See Also
        --------
        lgssm.models.LinearGaussianSSM.filter : The same on the discrete-time model.
        """
        b, out = self._each("filter", params, emissions, inputs, times, dt)
        return b.pack_results(type(out[0]), [dataclasses.asdict(o) for o in out])

    @shared
    def smoother(self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None) -> PosteriorLGSSMSmoothed:
        """Compute the smoothed moments of p(x(t_k) | y), with lag-one cross covariances.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(times)s
        %(inputs)s

        Returns
        -------
        PosteriorLGSSMSmoothed or list of PosteriorLGSSMSmoothed
            The moments at the observation times, batched like the emissions.

        Raises
        ------
        %(times_raises)s

        See Also
        --------
        lgssm.models.LinearGaussianSSM.smoother : The same on the discrete-time model.
        """
        b, out = self._each("smoother", params, emissions, inputs, times, dt)
        return b.pack_results(PosteriorLGSSMSmoothed, [dataclasses.asdict(o) for o in out])

    @shared
    def posterior_predictive(
        self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None, full_covariance=False
    ):
        """Compute the mean and spread of y_k under the smoothed state.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(times)s
        %(inputs)s
        full_covariance : bool, default False
            Return full covariances instead of standard deviations.

        Returns
        -------
        means : array, shape (num_timesteps, emission_dim)
            E[y_k | y].
        stds_or_covariances : array, shape (num_timesteps, emission_dim) or (num_timesteps, emission_dim, emission_dim)
            The standard deviations, or with ``full_covariance`` the covariances.
            Both batched like the emissions.

        Raises
        ------
        %(times_raises)s

        See Also
        --------
        lgssm.models.LinearGaussianSSM.posterior_predictive : The same on the discrete-time model.
        """
        b, out = self._each(
            "posterior_predictive", params, emissions, inputs, times, dt, full_covariance=full_covariance
        )
        return tuple(b.pack([o[i] for o in out], time_offset=0) for i in range(2))

    @shared
    def posterior_sample(self, key, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None, num_samples=None):
        """Draw state trajectories from the posterior p(x(t_0), ..., x(t_{T-1}) | y).

        Parameters
        ----------
        key : int, numpy.random.Generator or JAX PRNG key
            The randomness, shared by the sequences in turn.
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(times)s
        %(inputs)s
        num_samples : int, optional
            The number of draws; None for one draw without a sample axis.

        Returns
        -------
        array, shape (num_timesteps, state_dim) or (num_samples, num_timesteps, state_dim)
            The draws, batched like the emissions.

        Raises
        ------
        %(times_raises)s

        See Also
        --------
        lgssm.models.LinearGaussianSSM.posterior_sample : The same on the discrete-time model.
        """
        b, ts = self._sequences(emissions, inputs, times, dt)
        rng = as_generator(key)
        draws = [
            self._discrete.posterior_sample(rng, self.discrete_params(params, t), y, inputs=u, num_samples=num_samples)
            for y, u, t in zip(b.emissions, b.inputs, ts)
        ]
        return b.pack(draws, time_offset=0, time_axis=0 if num_samples is None else 1)

    def sample(self, params: ParamsCTSSM, key, times=None, num_timesteps=None, dt=None, inputs=None):
        """Draw one joint sample of the states and emissions at ``times``, or at steps of ``dt``.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        key : int, numpy.random.Generator or JAX PRNG key
            The randomness.
        times : array, shape (num_timesteps,), optional
            Strictly increasing observation times.
        num_timesteps : int, optional
            The number of steps: with ``dt`` instead of ``times``, or a check on ``len(times)``.
        dt : float, optional
            The step between observations, with ``num_timesteps``.
        inputs : array, shape (num_timesteps, input_dim), optional
            The inputs u_k; None means zeros.

        Returns
        -------
        states : array, shape (num_timesteps, state_dim)
            x(t_k).
        emissions : array, shape (num_timesteps, emission_dim)
            y_k.

        Raises
        ------
        ValueError
            If neither ``times`` nor ``num_timesteps`` with ``dt`` is given, or
            ``num_timesteps`` disagrees with ``times``.
        """
        if times is None:
            if num_timesteps is None or dt is None:
                raise ValueError("times: expected times, or num_timesteps with dt")
            times = _real("dt", dt) * np.arange(count("num_timesteps", num_timesteps, 1), dtype=np.float64)
        times = _real_array("times", times, 1)
        if num_timesteps is not None and count("num_timesteps", num_timesteps, 1) != len(times):
            raise ValueError(f"times: expected num_timesteps = {num_timesteps} times, got {len(times)}")
        return self._discrete.sample(self.discrete_params(params, times), key, len(times), inputs=inputs)

    @shared
    def forecast(
        self,
        params: ParamsCTSSM,
        emissions,
        forecast_times=None,
        times=None,
        dt=None,
        num_forecast_timesteps=None,
        inputs=None,
        forecast_inputs=None,
    ):
        """Forecast the states and emissions at future times: exact predictive moments.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        forecast_times : array, shape (num_forecast_timesteps,) or one per sequence, optional
            Future times, after each sequence's last time.
        %(times)s
        num_forecast_timesteps : int, optional
            With ``dt`` instead of ``forecast_times``: that many further steps of ``dt``.
        %(inputs)s
        forecast_inputs : array, shape (num_forecast_timesteps, input_dim), or one per sequence, optional
            The inputs at the forecast times; None means zeros.

        Returns
        -------
        means : array, shape (num_forecast_timesteps, state_dim)
            E[x(t) | y] at the forecast times.
        covariances : array, shape (num_forecast_timesteps, state_dim, state_dim)
            Cov[x(t) | y].
        emission_means : array, shape (num_forecast_timesteps, emission_dim)
            E[y(t) | y].
        emission_covariances : array, shape (num_forecast_timesteps, emission_dim, emission_dim)
            Cov[y(t) | y]. Each with a leading (num_sequences,) axis for a batch.

        Raises
        ------
        ValueError
            If neither ``forecast_times`` nor ``num_forecast_timesteps`` with ``dt``
            is given, or the times, parameters or data are invalid.
        """
        b, ts = self._sequences(emissions, inputs, times, dt)
        out = []
        for i, (y, u, t) in enumerate(zip(b.emissions, b.inputs, ts)):
            if forecast_times is None:
                if num_forecast_timesteps is None or dt is None:
                    raise ValueError("forecast_times: expected forecast_times, or num_forecast_timesteps with dt")
                future = t[-1] + _real("dt", dt) * np.arange(
                    1, count("num_forecast_timesteps", num_forecast_timesteps, 0) + 1
                )
            else:
                future = np.asarray(forecast_times if b.kind != "list" else forecast_times[i], dtype=np.float64)
                future = future if future.ndim == 1 else future[i]
            fu = None if forecast_inputs is None else (forecast_inputs if b.kind == "single" else forecast_inputs[i])
            out.append(
                self._discrete.forecast(
                    self.discrete_params(params, np.concatenate([t, future])),
                    y,
                    len(future),
                    inputs=u,
                    forecast_inputs=fu,
                )
            )
        return tuple(b.pack([o[k] for o in out]) for k in range(4))

    # -- learning --------------------------------------------------------------
    @shared
    def sufficient_stats(
        self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None
    ) -> _core.ContinuousStats:
        """Compute the E-step: the discrete-time statistics, transitions grouped by step length.

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        %(emissions)s
        %(times)s
        %(inputs)s

        Returns
        -------
        lgssm._core.ContinuousStats
            The statistics, with the step lengths in ``stats.gaps``; picklable, and
            ``a + b`` sums those of two batches.

        Raises
        ------
        %(times_raises)s
        """
        b, ts = self._sequences(emissions, inputs, times, dt)
        return _core.continuous_sufficient_stats(self.core_params(params), b.emissions, b.inputs, ts)

    def m_step(
        self, params: ParamsCTSSM, props: ParamsCTSSM, stats: _core.ContinuousStats, m_step_iters: int = 10
    ) -> ParamsCTSSM:
        """Compute the generalized M-step of ``fit_em`` given ``stats``.

        Closed form for the initial state and the emissions; ``m_step_iters``
        L-BFGS iterations with exact gradients for (F, Q_c).

        Parameters
        ----------
        params : ParamsCTSSM
            The parameters, e.g. from ``initialize``.
        props : ParamsCTSSM
            The `ParameterProperties` of each parameter.
        stats : lgssm._core.ContinuousStats
            From ``sufficient_stats``.
        m_step_iters : int, default 10
            L-BFGS iterations for (F, Q_c), at least 1.

        Returns
        -------
        ParamsCTSSM
            The updated parameters.

        Raises
        ------
        ValueError
            If ``m_step_iters`` is not a positive integer, or the parameters,
            properties or statistics are invalid.
        """
        return _from_core(
            _core.continuous_m_step(
                self.core_params(params), self.core_props(props), stats, count("m_step_iters", m_step_iters, 1)
            ),
            params,
        )

    @shared
    def fit_em(
        self,
        params: ParamsCTSSM,
        props: ParamsCTSSM,
        emissions,
        times=None,
        dt=None,
        inputs=None,
        num_iters: int = 50,
        verbose: bool = True,
        tolerance: float = 0.0,
        m_step_iters: int = 10,
        accelerate: bool = True,
        return_summary: bool = False,
    ):
        """Fit by expectation-maximization.

        When every sequence shares one step, the closed-form EM on the equivalent
        discrete model (then F, Q_c by the matrix logarithm); otherwise
        generalized EM with an exact-gradient M-step for (F, Q_c), accelerated by
        SQUAREM unless ``accelerate=False``. Every E-step is one entry of
        ``marginal_lls``, which never decreases.

        Parameters
        ----------
        params : ParamsCTSSM
            The starting parameters.
        props : ParamsCTSSM
            The `ParameterProperties` of each parameter: frozen ones are held fixed.
        %(emissions)s
        %(times)s
        %(inputs)s
        num_iters : int, default 50
            The maximum number of iterations.
        %(progress)s
        tolerance : float, default 0.0
            Stop when the relative change of the log likelihood is at most this (0: never).
        m_step_iters : int, default 10
            L-BFGS iterations per generalized M-step.
        accelerate : bool, default True
            SQUAREM extrapolation (generalized EM only), each step kept only when it
            does not lower the log likelihood.
        %(summary)s

        Returns
        -------
        params : ParamsCTSSM
            The fitted parameters.
        marginal_lls : array, shape (num_evaluations,)
            The log likelihood at each E-step.
        summary : FitSummary
            Only with ``return_summary``.

        Raises
        ------
        %(times_raises)s

        References
        ----------
        %(em_references)s
        %(squarem_reference)s
        """
        num_iters = count("num_iters", num_iters, 0)
        options = core_options(
            _core.ContinuousEmOptions,
            num_iters=num_iters,
            tolerance=nonnegative("tolerance", tolerance),
            m_step_iters=count("m_step_iters", m_step_iters, 1),
            accelerate=flag("accelerate", accelerate),
        )
        driver = Driver(_core.continuous_fit_em, "EM", num_iters, options)
        return self._fit(driver, params, props, emissions, times, dt, inputs, verbose, return_summary)

    @shared
    def fit_lbfgs(
        self,
        params: ParamsCTSSM,
        props: ParamsCTSSM,
        emissions,
        times=None,
        dt=None,
        inputs=None,
        max_iters: int = 1000,
        gradient_tolerance: float = 1e-8,
        function_tolerance: float = 1e-12,
        verbose: bool = True,
        return_summary: bool = False,
    ):
        """Fit by L-BFGS on log p(y), with exact gradients through the matrix exponential.

        Parameters
        ----------
        params : ParamsCTSSM
            The starting parameters.
        props : ParamsCTSSM
            The `ParameterProperties` of each parameter: frozen ones are held fixed.
        %(emissions)s
        %(times)s
        %(inputs)s
        max_iters : int, default 1000
            The maximum number of iterations.
        gradient_tolerance : float, default 1e-8
            Stop when the gradient is this small, relative to the objective (as for
            `lgssm.LinearGaussianSSM.fit_lbfgs`).
        function_tolerance : float, default 1e-12
            Stop when the relative decrease of the objective is below this.
        %(progress)s
        %(summary)s

        Returns
        -------
        params : ParamsCTSSM
            The fitted parameters.
        marginal_lls : array, shape (num_iterates,)
            The log likelihood at each iterate, the start included.
        summary : FitSummary
            Only with ``return_summary``.

        Raises
        ------
        %(times_raises)s

        References
        ----------
        .. [1] J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., 2006.
        """
        options = lbfgs_options(max_iters, gradient_tolerance, function_tolerance)
        driver = Driver(_core.continuous_fit_lbfgs, "L-BFGS", options.max_iters + 1, options)
        return self._fit(driver, params, props, emissions, times, dt, inputs, verbose, return_summary)

    def _fit(self, driver: Driver, params, props, emissions, times, dt, inputs, verbose, return_summary):
        b, ts = self._sequences(emissions, inputs, times, dt)
        core, core_props = self.core_params(params), self.core_props(props)
        fitted, history, summary, correction = run_with_progress(
            driver, verbose, core, core_props, b.emissions, b.inputs, ts
        )
        _warn_projection(correction)
        summary = FitSummary.from_core(summary)
        return fit_result(_from_core(fitted, params), history, summary, driver.label, return_summary, 3)


def _from_core(core: _core.ContinuousParams, like: ParamsCTSSM) -> ParamsCTSSM:
    return ParamsCTSSM(
        initial=ParamsLGSSMInitial(np.array(core.initial_mean), np.array(core.initial_cov)),
        dynamics=ParamsCTDynamics(np.array(core.drift), np.array(core.diffusion_cov)),
        emissions=conditional_from_core(core.emissions, like.emissions, ParamsLGSSMEmissions),
    )


def per_sequence_times(batch, times, dt) -> list:
    """Make one 1-D array of observation times per sequence of ``batch``.

    Parameters
    ----------
    batch : Batch
        The emissions as normalized by ``lgssm._batch.as_batch``.
    times : array, shape (num_timesteps,) or (num_sequences, num_timesteps), or list, optional
        Laid out like the emissions without their last axis.
    dt : float, optional
        A uniform step instead (exactly one of ``times`` and ``dt``).

    Returns
    -------
    list of array, shape (num_timesteps_i,)
        The times of each sequence (a padded batch's cut to the sequence's length).

    Raises
    ------
    ValueError
        If neither or both are given, ``dt`` is not finite and positive, or the times
        are not one per step of each sequence.
    """
    if (times is None) == (dt is None):
        raise ValueError("times, dt: expected exactly one of them, got " + ("neither" if times is None else "both"))
    if dt is not None:
        dt = _real("dt", dt)
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt: expected a finite step > 0, got {dt!r}")
        return [dt * np.arange(len(y), dtype=np.float64) for y in batch.emissions]
    if batch.kind == "single":
        ts = [_real_array("times", times, 1)]
    elif isinstance(times, (list, tuple)):
        ts = [_real_array(f"times[{i}]", t, 1) for i, t in enumerate(times)]
    else:
        ts = list(_real_array("times", times, 2))
    if len(ts) != len(batch.emissions):
        raise ValueError(f"times: expected one array per sequence ({len(batch.emissions)}), got {len(ts)}")
    for i, (t, y) in enumerate(zip(ts, batch.emissions)):
        steps = batch.num_timesteps if batch.kind == "padded" else len(y)  # padded: times of the padding too
        if t.shape != (steps,):
            name = "times" if batch.kind == "single" else f"times[{i}]"
            raise ValueError(f"{name}: expected shape ({steps},) (one time per step of the emissions), got {t.shape}")
    return [np.ascontiguousarray(t[: len(y)]) for t, y in zip(ts, batch.emissions)]
