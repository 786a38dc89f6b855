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
from ._fitting import Driver, fit_result, run_with_progress
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
    drift: Any  # F: (state_dim, state_dim)
    diffusion_cov: Any  # Q_c = L L^T: (state_dim, state_dim)


@dataclass
class ParamsCTSSM:
    initial: ParamsLGSSMInitial
    dynamics: ParamsCTDynamics
    emissions: ParamsLGSSMEmissions  # constant, or a leading axis of one entry per observation index


def discretize(drift, diffusion_covariance, dt: float):
    """(A, Sigma): the transition over a step ``dt``, A = exp(F dt) and
    Sigma = int_0^dt e^{F u} Q_c e^{F^T u} du (the blocks of Van Loan's
    exp([[F, Q_c], [0, -F^T]] dt) = [[A, Sigma A^-T], [0, A^-T]]), by scaling and
    squaring on the pair (A, Sigma), which stays finite and positive semidefinite
    for stiff drifts (see docs/continuous-time.md). ``drift`` and
    ``diffusion_covariance`` are (state_dim, state_dim); ValueError names the
    argument that is wrong (shape, non-finite, a diffusion covariance that is not
    symmetric positive semidefinite, a transition that overflows)."""
    return _core.discretize(
        _real_matrix("drift", drift), _real_matrix("diffusion_covariance", diffusion_covariance), _real("dt", dt)
    )


def undiscretize(weights, cov, dt: float):
    """(F, Q_c) from a transition (A, Sigma) over ``dt``: F = log(A) / dt, the
    principal matrix logarithm, and Q_c solving Sigma = Sigma_dt(Q_c) (linear in
    Q_c). Raises ValueError when A has an eigenvalue on the closed negative real
    axis or Sigma is not symmetric positive semidefinite; a recovered Q_c that is
    not positive semidefinite is projected onto the nearest one, with a warning
    giving the Frobenius norm of the change."""
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
    """An LTI-SDE state-space model with the method names of LinearGaussianSSM;
    every method takes the observation ``times`` (per sequence, like the
    emissions: (T,), (B, T) or a list) or a uniform step ``dt``."""

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
        """Defaults: x(t_0) ~ N(0, I), F = -0.1 I, Q_c = 0.1 I, emissions as
        LinearGaussianSSM (N(0, 1) weights, cov 0.1 I, zero bias and input weights)."""
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
        """The equivalent discrete-time parameters at ``times``: dynamics with one
        entry per gap (a single constant entry when the gaps are equal)."""
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
    def marginal_log_prob(self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None):
        b, out = self._each("marginal_log_prob", params, emissions, inputs, times, dt)
        return out[0] if b.kind == "single" else np.asarray(out)

    def filter(self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None):
        b, out = self._each("filter", params, emissions, inputs, times, dt)
        return b.pack_results(type(out[0]), [dataclasses.asdict(o) for o in out])

    def smoother(self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None) -> PosteriorLGSSMSmoothed:
        b, out = self._each("smoother", params, emissions, inputs, times, dt)
        return b.pack_results(PosteriorLGSSMSmoothed, [dataclasses.asdict(o) for o in out])

    def posterior_predictive(
        self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None, full_covariance=False
    ):
        b, out = self._each(
            "posterior_predictive", params, emissions, inputs, times, dt, full_covariance=full_covariance
        )
        return tuple(b.pack([o[i] for o in out], time_offset=0) for i in range(2))

    def posterior_sample(self, key, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None, num_samples=None):
        b, ts = self._sequences(emissions, inputs, times, dt)
        rng = as_generator(key)
        draws = [
            self._discrete.posterior_sample(rng, self.discrete_params(params, t), y, inputs=u, num_samples=num_samples)
            for y, u, t in zip(b.emissions, b.inputs, ts)
        ]
        return b.pack(draws, time_offset=0, time_axis=0 if num_samples is None else 1)

    def sample(self, params: ParamsCTSSM, key, times=None, num_timesteps=None, dt=None, inputs=None):
        """A joint draw at ``times``, or at num_timesteps steps of ``dt``."""
        if times is None:
            if num_timesteps is None or dt is None:
                raise ValueError("times: expected times, or num_timesteps with dt")
            times = _real("dt", dt) * np.arange(count("num_timesteps", num_timesteps, 1), dtype=np.float64)
        times = _real_array("times", times, 1)
        if num_timesteps is not None and count("num_timesteps", num_timesteps, 1) != len(times):
            raise ValueError(f"times: expected num_timesteps = {num_timesteps} times, got {len(times)}")
        return self._discrete.sample(self.discrete_params(params, times), key, len(times), inputs=inputs)

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
        """Exact predictive moments at future ``forecast_times`` (after each
        sequence's last time), or at num_forecast_timesteps further steps of dt:
        (means, covariances, emission_means, emission_covariances)."""
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
    def sufficient_stats(
        self, params: ParamsCTSSM, emissions, times=None, dt=None, inputs=None
    ) -> _core.ContinuousStats:
        """The E-step: the discrete-time statistics with the transitions grouped
        by step length (``stats.gaps``). Picklable; ``a + b`` sums two batches."""
        b, ts = self._sequences(emissions, inputs, times, dt)
        return _core.continuous_sufficient_stats(self.core_params(params), b.emissions, b.inputs, ts)

    def m_step(
        self, params: ParamsCTSSM, props: ParamsCTSSM, stats: _core.ContinuousStats, m_step_iters: int = 10
    ) -> ParamsCTSSM:
        """The generalized M-step of ``fit_em`` given ``stats``: closed form for the
        initial state and emissions, ``m_step_iters`` L-BFGS iterations for (F, Q_c)."""
        return _from_core(
            _core.continuous_m_step(
                self.core_params(params), self.core_props(props), stats, count("m_step_iters", m_step_iters, 1)
            ),
            params,
        )

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
        """EM: the seed document's closed-form EM on the equivalent discrete model
        when every sequence shares one step (then F, Q_c by the matrix logarithm);
        otherwise generalized EM with an exact-gradient M-step for (F, Q_c)
        (``m_step_iters`` L-BFGS iterations per M-step), accelerated by SQUAREM
        unless ``accelerate=False``; every E-step is one entry of marginal_lls,
        which never decreases. Returns (params, marginal_lls[, summary])."""
        num_iters = count("num_iters", num_iters, 0)
        options = (
            num_iters,
            nonnegative("tolerance", tolerance),
            count("m_step_iters", m_step_iters, 1),
            flag("accelerate", accelerate),
        )
        driver = Driver(_core.continuous_fit_em, "EM", num_iters, options)
        return self._fit(driver, params, props, emissions, times, dt, inputs, verbose, return_summary)

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
        """Gradient ascent (L-BFGS) on log p(y) with exact gradients through the
        matrix exponential. Returns (params, marginal_lls[, summary])."""
        max_iters = count("max_iters", max_iters, 0)
        tolerances = (
            nonnegative("gradient_tolerance", gradient_tolerance),
            nonnegative("function_tolerance", function_tolerance),
        )
        driver = Driver(_core.continuous_fit_lbfgs, "L-BFGS", max_iters + 1, (max_iters, *tolerances))
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
    """One 1-D array of observation times per sequence of ``batch``, from
    ``times`` laid out like the emissions without their last axis, or steps
    ``dt`` apart (exactly one of the two)."""
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
