"""Is the fit any good? Residuals, tests, information criteria and model comparison.

The state-space numerics run in C++ (``lgssm/diagnostics.hpp``): one-step
innovations and their standardizations, the disturbance smoother with
auxiliary residuals, smoothed state autocovariances, the parameter count. The
statistics on those arrays (Ljung-Box, Jarque-Bera, Harvey's test for
heteroskedasticity, information criteria) follow statsmodels' ``MLEResults``
definitions exactly, so the numbers can be compared one for one.
"""

from __future__ import annotations

import functools
import html
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._checks import count, flag, memory
from ._docstrings import shared
from .continuous import ContinuousTimeSSM
from .params import param_groups, props_to_core

__all__ = [
    "Disturbances",
    "FitResult",
    "Information",
    "Innovations",
    "ModelComparison",
    "compare",
    "cross_validate",
    "delta_method",
    "disturbances",
    "heldout_log_prob",
    "information",
    "information_criteria",
    "innovations",
    "num_parameters",
    "parameter_table",
    "smoothed_autocovariances",
    "test_heteroskedasticity",
    "test_normality",
    "test_serial_correlation",
]


@dataclass
class Innovations:
    """One-step prediction errors (`innovations`).

    For a batch every per-step field has a leading (num_sequences,) axis (padded
    with NaN); for a list of sequences `innovations` returns a list of these. NaN
    marks the components not observed at a step.

    Parameters
    ----------
    marginal_loglik : float or array, shape (num_sequences,)
        log p(y), the filter's.
    step_logliks : array, shape (num_timesteps,)
        log p(y_t | y_{0:t-1}), the filter's terms (0 at a step with nothing observed).
    innovations : array, shape (num_timesteps, emission_dim)
        v_t = y_t - E[y_t | y_{0:t-1}].
    innovation_covariances : array, shape (num_timesteps, emission_dim, emission_dim)
        F_t = Cov[v_t] over the observed components (NaN elsewhere).
    standardized_innovations : array, shape (num_timesteps, emission_dim)
        L_t^{-1} v_t for the lower Cholesky factor L_t of F_t over the observed
        components (statsmodels' ``standardized_forecasts_error``).
    scaled_innovations : array, shape (num_timesteps, emission_dim)
        v_t,i / sqrt(F_t,ii), component by component.
    num_diffuse_timesteps : int or array, shape (num_sequences,), default 0
        With a diffuse initialization, the steps of the diffuse period (statsmodels'
        ``nobs_diffuse``): their innovations have infinite variance and are NaN.
    """

    marginal_loglik: Any
    step_logliks: Any
    innovations: Any
    innovation_covariances: Any
    standardized_innovations: Any
    scaled_innovations: Any
    num_diffuse_timesteps: Any = 0


@dataclass
class Disturbances:
    """The smoothed disturbances (`disturbances`).

    eps_t = y_t - H z_t - D u_t - d and eta_t = z_{t+1} - F z_t - B u_{t+1} - b;
    laid out like `Innovations` (the dynamics fields one step shorter).

    Parameters
    ----------
    marginal_loglik : float or array, shape (num_sequences,)
        log p(y).
    emission_disturbances : array, shape (num_timesteps, emission_dim)
        E[eps_t | y] (missing components included: their conditional mean).
    emission_disturbance_covariances : array, shape (num_timesteps, emission_dim, emission_dim)
        Cov[eps_t | y].
    emission_auxiliary_residuals : array, shape (num_timesteps, emission_dim)
        E[eps_t,i | y] over the standard deviation of that estimator (de Jong and
        Penzer's auxiliary residuals; NaN where it has no variance).
    dynamics_disturbances : array, shape (num_timesteps - 1, state_dim)
        E[eta_t | y].
    dynamics_disturbance_covariances : array, shape (num_timesteps - 1, state_dim, state_dim)
        Cov[eta_t | y].
    dynamics_auxiliary_residuals : array, shape (num_timesteps - 1, state_dim)
        E[eta_t,i | y] over its standard deviation (NaN for a state without noise).
    """

    marginal_loglik: Any
    emission_disturbances: Any
    emission_disturbance_covariances: Any
    emission_auxiliary_residuals: Any
    dynamics_disturbances: Any
    dynamics_disturbance_covariances: Any
    dynamics_auxiliary_residuals: Any


def _pack(b, cls, dicts: list):
    """Per-sequence dicts as ``cls`` in the caller's layout (fields named ``dynamics_*`` one step shorter)."""
    if b.kind == "list":
        return [cls(**d) for d in dicts]

    def offset(key):
        if key in ("marginal_loglik", "num_diffuse_timesteps"):
            return None
        return -1 if key.startswith("dynamics_") else 0

    return cls(**{key: b.pack([d[key] for d in dicts], offset(key)) for key in dicts[0]})


@shared
def innovations(model, params, emissions, inputs=None) -> Innovations:
    """Compute the one-step innovations v_t, their covariances F_t and standardizations.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model.
    params : ParamsLGSSM
        Its parameters.
    %(emissions)s
    %(inputs)s

    Returns
    -------
    Innovations or list of Innovations
        Batched like ``model.filter``'s results.

    Raises
    ------
    %(data_raises)s

    References
    ----------
    .. [1] J. Durbin and S. J. Koopman, *Time Series Analysis by State Space Methods*,
       2nd ed., 2012, Sec. 4.3 and 7.5.
    """
    core, b = model._batch(params, emissions, inputs, covariances=0, per_step=4 * model.emission_dim**2)
    return _pack(b, Innovations, _core.innovations(core, b.emissions, b.inputs))


@shared
def disturbances(model, params, emissions, inputs=None) -> Disturbances:
    """Run the disturbance smoother: smoothed disturbances, their covariances, auxiliary residuals.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model.
    params : ParamsLGSSM
        Its parameters.
    %(emissions)s
    %(inputs)s

    Returns
    -------
    Disturbances or list of Disturbances
        Batched like ``model.smoother``'s results.

    Raises
    ------
    %(data_raises)s

    References
    ----------
    .. [1] J. Durbin and S. J. Koopman, *Time Series Analysis by State Space Methods*,
       2nd ed., 2012, Sec. 4.5.
    .. [2] P. de Jong and J. Penzer, "Diagnosing shocks in time series", *JASA* 93(442), 1998.
    """
    core, b = model._batch(params, emissions, inputs, covariances=6, per_step=4 * model.emission_dim**2)
    return _pack(b, Disturbances, _core.disturbances(core, b.emissions, b.inputs))


@shared
def smoothed_autocovariances(model, params, emissions, lag: int, inputs=None):
    """Compute the smoothed state autocovariances Cov[z_{t+lag}, z_t | y].

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model.
    params : ParamsLGSSM
        Its parameters.
    %(emissions)s
    lag : int
        The lag k, 0 <= k < num_timesteps (0: the smoothed covariances).
    %(inputs)s

    Returns
    -------
    array, shape (num_timesteps - lag, state_dim, state_dim)
        Entry t is Cov[z_{t+lag}, z_t | y]; a leading (num_sequences,) axis for a batch
        (NaN-padded), a list for a list.

    Raises
    ------
    ValueError
        If ``lag`` is out of range, or the parameters or data are invalid.

    References
    ----------
    .. [1] J. Durbin and S. J. Koopman, *Time Series Analysis by State Space Methods*,
       2nd ed., 2012, Sec. 4.7.
    """
    lag = count("lag", lag)
    core, b = model._batch(params, emissions, inputs, covariances=4)
    out = _core.smoothed_autocovariances(core, b.emissions, b.inputs, lag)
    return b.pack(out, time_offset=-lag)


def num_parameters(model, params, props) -> int:
    """Count the free parameters of a fit, as statsmodels counts them.

    The length of the unconstrained vector over the trainable parameters: a full
    covariance counts n (n + 1) / 2, a diagonal one n, a scalar one 1, any other
    parameter its entries, a frozen parameter 0; plus, with a diffuse
    initialization, the number q of diffuse directions (statsmodels' df_model =
    free parameters + k_diffuse_states, after Durbin & Koopman 2012, Sec. 7.4).

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM or lgssm.ContinuousTimeSSM
        The model.
    params : ParamsLGSSM or ParamsCTSSM
        Its parameters (their shapes).
    props : ParamsLGSSM or ParamsCTSSM
        The `ParameterProperties`: which parameters are trainable, which structure
        each covariance keeps.

    Returns
    -------
    int
        The number of free parameters.

    Raises
    ------
    ValueError
        If the parameters or properties are invalid.
    """
    if isinstance(model, ContinuousTimeSSM):  # known initial state; the unconstrained vector's length
        return int(_core.continuous_to_unconstrained(model.core_params(params), model.core_props(props)).size)
    core = model.core_params(params)
    diffuse = np.asarray(core.initial_diffuse)
    q = int(np.linalg.matrix_rank(diffuse)) if diffuse.size else 0
    return int(_core.num_free_parameters(core, props_to_core(props))) + q


def information_criteria(loglik: float, nobs: int, num_params: int) -> dict:
    """Compute AIC, AICc, BIC and HQIC, with statsmodels' definitions.

    ``aic = -2 loglik + 2 k``, ``aicc = -2 loglik + 2 k nobs / (nobs - k - 1)`` (inf
    when nobs <= k + 1), ``bic = -2 loglik + k log(nobs)``,
    ``hqic = -2 loglik + 2 k log(log(nobs))``. statsmodels' nobs is the number of
    time steps (``nobs_effective``: after the burn-in), not of observed entries.

    Parameters
    ----------
    loglik : float
        The maximized log likelihood.
    nobs : int
        The number of time steps (summed over sequences), less any burn-in.
    num_params : int
        k, the number of free parameters (`num_parameters`).

    Returns
    -------
    dict
        ``"aic"``, ``"aicc"``, ``"bic"``, ``"hqic"`` -> float.

    Raises
    ------
    ValueError
        If ``nobs`` is not a positive integer or ``num_params`` negative.
    """
    n, k = count("nobs", nobs, 1), count("num_params", num_params)
    ll = float(loglik)
    dof = n - k - 1.0
    return {
        "aic": -2.0 * ll + 2.0 * k,
        "aicc": -2.0 * ll + 2.0 * k * n / dof if dof > 0 else math.inf,
        "bic": -2.0 * ll + math.log(n) * k,
        "hqic": -2.0 * ll + 2.0 * math.log(math.log(n)) * k if n > 1 else math.nan,
    }


def _residual_columns(name: str, residuals, burn: int) -> np.ndarray:
    """(num_timesteps - burn, emission_dim) float64 from a 1-D or 2-D array."""
    r = np.asarray(residuals, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"{name}: expected an array of shape (num_timesteps, emission_dim), got shape {r.shape}")
    burn = count("burn", burn)
    if burn >= r.shape[0]:
        raise ValueError(f"burn: expected fewer than the {r.shape[0]} time steps, got {burn}")
    return r[burn:]


def _acf(x: np.ndarray, nlags: int) -> np.ndarray:
    """The sample autocorrelations 0..nlags (statsmodels' ``acf`` with ``adjusted=False``); NaN with NaN data."""
    d = x - x.mean()
    denom = d @ d
    return np.array([d[: len(d) - k] @ d[k:] for k in range(nlags + 1)]) / denom


def test_serial_correlation(residuals, lags=None, burn: int = 0, model_df: int = 0) -> np.ndarray:
    """Ljung-Box test of no serial correlation, per component (statsmodels' ``test_serial_correlation``).

    Q(h) = n (n + 2) sum_{k=1}^{h} rho_k^2 / (n - k) for the sample autocorrelations
    rho_k of the residuals after the burn-in (n of them), against chi2(h - model_df).
    A component with missing values gives NaN, as in statsmodels.

    Parameters
    ----------
    residuals : array, shape (num_timesteps, emission_dim) or (num_timesteps,)
        Standardized innovations, NaN where missing.
    lags : int, optional
        The largest lag h; every lag 1..h is reported. None: min(10, n // 5).
    burn : int, default 0
        Leading time steps to leave out (statsmodels' ``loglikelihood_burn``, for
        diffuse initial states; 0 for lgssm's known initial distribution).
    model_df : int, default 0
        Degrees of freedom subtracted from each lag's (p-values NaN where none remain).

    Returns
    -------
    array, shape (emission_dim, 2, lags)
        [i, 0] the statistics, [i, 1] the p-values of component i.

    Raises
    ------
    ValueError
        If the residuals are not 1-D or 2-D, or ``lags``, ``burn`` or ``model_df`` is out of range.
    """
    from scipy import stats

    r = _residual_columns("residuals", residuals, burn)
    n = r.shape[0]
    lags = min(10, n // 5) if lags is None else count("lags", lags, 1)
    if lags < 1 or lags >= n:
        raise ValueError(f"lags: expected an integer in [1, {n - 1}] (fewer than the residuals), got {lags}")
    model_df = count("model_df", model_df)
    ks = np.arange(1, lags + 1)
    out = np.empty((r.shape[1], 2, lags))
    for i in range(r.shape[1]):
        rho = _acf(r[:, i], lags)[1:]
        q = n * (n + 2) * np.cumsum(rho**2 / (n - ks))
        dof = ks - model_df
        p = np.full(lags, np.nan)
        p[dof > 0] = stats.chi2.sf(q[dof > 0], dof[dof > 0])
        out[i, 0], out[i, 1] = q, p
    return out


def test_normality(residuals, burn: int = 0) -> np.ndarray:
    """Jarque-Bera test of normality, per component (statsmodels' ``test_normality``).

    JB = n / 6 (S^2 + (K - 3)^2 / 4) over the n observed residuals after the burn-in,
    with S and K their (biased) sample skewness and kurtosis, against chi2(2).

    Parameters
    ----------
    residuals : array, shape (num_timesteps, emission_dim) or (num_timesteps,)
        Standardized innovations, NaN where missing (left out).
    burn : int, default 0
        Leading time steps to leave out.

    Returns
    -------
    array, shape (emission_dim, 4)
        Per component: the statistic, its p-value, the skewness and the kurtosis.

    Raises
    ------
    ValueError
        If the residuals are not 1-D or 2-D, ``burn`` is out of range, or a component
        has fewer than 2 observed residuals.
    """
    from scipy import stats

    r = _residual_columns("residuals", residuals, burn)
    out = np.empty((r.shape[1], 4))
    for i in range(r.shape[1]):
        x = r[~np.isnan(r[:, i]), i]
        if x.size < 2:
            raise ValueError(f"residuals: component {i} has {x.size} observed residuals; expected at least 2")
        skew, kurt = stats.skew(x), 3.0 + stats.kurtosis(x)
        jb = x.size / 6.0 * (skew**2 + (kurt - 3.0) ** 2 / 4.0)
        out[i] = jb, stats.chi2.sf(jb, 2), skew, kurt
    return out


def test_heteroskedasticity(residuals, burn: int = 0, alternative: str = "two-sided", use_f: bool = True) -> np.ndarray:
    """Harvey's test of a break in variance, per component (statsmodels' ``test_heteroskedasticity``).

    With h = round(n / 3) for the n residuals after the burn-in,
    H(h) = sum of the last h squared residuals / sum of the first h (NaN left out);
    against F(d1, d2) after scaling by d2 / d1 (d1, d2 the observed counts of the two
    blocks), or with ``use_f=False`` d2 H against chi2(d1).

    Parameters
    ----------
    residuals : array, shape (num_timesteps, emission_dim) or (num_timesteps,)
        Standardized innovations, NaN where missing.
    burn : int, default 0
        Leading time steps to leave out.
    alternative : {"two-sided", "increasing", "decreasing"}, default "two-sided"
        The alternative of the p-value ("decreasing" inverts the statistic).
    use_f : bool, default True
        The F distribution (True) or its chi-squared limit.

    Returns
    -------
    array, shape (emission_dim, 2)
        Per component: the statistic and its p-value (NaN where a block has fewer
        than 2 observed residuals).

    Raises
    ------
    ValueError
        If the residuals are not 1-D or 2-D, or an argument is out of range.

    References
    ----------
    .. [1] A. C. Harvey, *Forecasting, Structural Time Series Models and the Kalman
       Filter*, Cambridge University Press, 1990, Sec. 5.4.
    """
    from scipy import stats

    if alternative not in ("two-sided", "increasing", "decreasing"):
        raise ValueError(f"alternative: expected 'two-sided', 'increasing' or 'decreasing', got {alternative!r}")
    use_f = flag("use_f", use_f)
    r = _residual_columns("residuals", residuals, burn)
    h = int(np.round(r.shape[0] / 3))
    if h < 1:
        raise ValueError(f"residuals: expected at least 2 time steps after the burn-in, got {r.shape[0]}")
    out = np.empty((r.shape[1], 2))
    for i in range(r.shape[1]):
        sq = r[:, i] ** 2
        late, early = sq[-h:], sq[:h]
        d1, d2 = int((~np.isnan(late)).sum()), int((~np.isnan(early)).sum())
        if d1 < 2 or d2 < 2:
            out[i] = np.nan, np.nan
            continue
        stat = np.nansum(late) / np.nansum(early)
        if alternative == "decreasing":
            stat, d1, d2 = 1.0 / stat, d2, d1
        dist, scaled = (stats.f(d1, d2), stat * d2 / d1) if use_f else (stats.chi2(d1), stat * d2)
        lower, upper = dist.cdf(scaled), dist.sf(scaled)
        p = 2.0 * min(lower, upper) if alternative == "two-sided" else upper
        # The statistic reported for "decreasing" is the inverted one, as statsmodels does.
        out[i] = stat, p
    return out


def _entries(name: str, value: np.ndarray, prop) -> list[tuple[str, Any]]:
    """The free entries of one trainable parameter as (label, value): a constraint's
    free values by name; else all entries of a mean, bias or weight matrix, the lower
    triangle of a full covariance, the diagonal of a diagonal one, the (0, 0) entry of
    a scalar one."""
    a = np.asarray(value, dtype=np.float64)
    c = getattr(prop, "constraint", None)
    if c is not None:  # the free values beta, by the constraint's names
        return [(f"{name}.{label}", float(b)) for label, b in zip(c.names, c.free_values(a))]
    if a.ndim == 1:
        return [(f"{name}[{i}]", float(a[i])) for i in range(a.shape[0])]
    if not name.endswith("cov"):  # initial.cov, dynamics.cov or .diffusion_cov, emissions.cov
        return [(f"{name}[{i},{j}]", float(a[i, j])) for i in range(a.shape[0]) for j in range(a.shape[1])]
    if prop.structure == "scalar":
        return [(f"{name} (scalar)", float(a[0, 0]))]
    if prop.structure == "diagonal":
        return [(f"{name}[{i},{i}]", float(a[i, i])) for i in range(a.shape[0])]
    return [(f"{name}[{i},{j}]", float(a[i, j])) for i in range(a.shape[0]) for j in range(i + 1)]


def parameter_table(params, props) -> list[tuple[str, Any]]:
    """List the fitted parameters' free entries as (label, estimate), in the order of `information`.

    A constrained parameter contributes its free values, labelled
    ``"group.name.<constraint name>"``; a trainable per-step series is one row (its
    estimate a note).

    Parameters
    ----------
    params : ParamsLGSSM
        The parameters.
    props : ParamsLGSSM
        Their `ParameterProperties`.

    Returns
    -------
    list of (str, float or str)
        (label, estimate) per free parameter.
    """
    rows: list[tuple[str, Any]] = []
    for (group, values), (_, group_props) in zip(param_groups(params), param_groups(props)):
        for name, prop in vars(group_props).items():
            if not prop.trainable:
                continue
            value = np.asarray(getattr(values, name))
            label = f"{group}.{name}"
            entry_ndim = 1 if name in ("mean", "bias") else 2
            if value.size == 0:
                continue
            if value.ndim > entry_ndim:
                rows.append((label, f"per step ({value.shape[0]} entries)"))
            else:
                rows.extend(_entries(label, value, prop))
    return rows


COV_TYPES = ("hessian", "oim", "opg", "robust", "robust_oim")
_COV_NOTES = {
    "hessian": "the exact observed information",
    "oim": "Harvey's information matrix, statsmodels' oim",
    "opg": "outer product of the per-step scores",
    "robust": "sandwich of the exact Hessian and the OPG",
    "robust_oim": "sandwich of Harvey's matrix and the OPG, statsmodels' robust",
}


@dataclass
class Information:
    """The score and information matrices of log p(y) over the free parameters (`information`).

    The free parameters theta are on the user's scale: the free values of a
    constrained parameter, every entry of another mean, bias or weight matrix (row by
    row), the lower triangle of a full covariance (row by row), the diagonal of a
    diagonal one, the variance of a scalar one; frozen parameters are left out
    (`parameter_table` lists them in this order).

    Parameters
    ----------
    names : list of str
        The parameters' labels, (num_params,).
    estimates : array, shape (num_params,)
        theta.
    marginal_loglik : float
        log p(y), summed over the sequences.
    score : array, shape (num_params,)
        d log p(y) / d theta.
    hessian : array, shape (num_params, num_params), or None
        The exact d^2 log p(y) / d theta d theta^T (None when not computed).
    opg : array, shape (num_params, num_params)
        The sum over steps of s_t s_t^T, s_t the score of log p(y_t | y_{0:t-1}).
    oim : array, shape (num_params, num_params)
        Harvey's information matrix (1989, eq. 3.4.69), statsmodels' ``oim``.
    """

    names: list
    estimates: Any
    marginal_loglik: float
    score: Any
    hessian: Any
    opg: Any
    oim: Any

    def cov_params(self, cov_type: str = "hessian") -> np.ndarray:
        """Compute the covariance of the estimates.

        ``"hessian"``: (-H)^{-1} for the exact Hessian H (the observed information);
        ``"oim"``: Harvey's information matrix inverted (statsmodels' ``cov_type="oim"``);
        ``"opg"``: the OPG inverted (statsmodels' ``"opg"``); ``"robust"``: the sandwich
        (-H)^{-1} OPG (-H)^{-1} (Huber 1967; White 1982); ``"robust_oim"``: the sandwich
        with Harvey's matrix as the bread (statsmodels' ``"robust"``). Computed by
        Cholesky solves, never by inverting a matrix that may be singular.

        Parameters
        ----------
        cov_type : {"hessian", "oim", "opg", "robust", "robust_oim"}, default "hessian"
            The estimator.

        Returns
        -------
        array, shape (num_params, num_params)
            The covariance of theta.

        Raises
        ------
        ValueError
            If ``cov_type`` is unknown, the Hessian was not computed, or the information
            is not positive definite (not a maximum, or a parameter the data do not
            determine: the message names it).
        """
        if cov_type not in COV_TYPES:
            raise ValueError(f"cov_type: expected one of {', '.join(COV_TYPES)}, got {cov_type!r}")
        if cov_type in ("hessian", "robust") and self.hessian is None:
            raise ValueError(f"cov_type: {cov_type!r} needs the Hessian (information(..., hessian=True))")
        bread = -self.hessian if cov_type in ("hessian", "robust") else (self.opg if cov_type == "opg" else self.oim)
        meat = self.opg if cov_type.startswith("robust") else None
        return np.asarray(_core.information_covariance(bread, meat, list(self.names)))


def information(
    model, params, props, emissions, inputs=None, hessian: bool = True, num_threads: int = 0, times=None, dt=None
) -> Information:
    """Compute the exact score, Hessian, OPG and Harvey's information of log p(y).

    Over the free parameters (`Information`), by forward sensitivity recursions of
    the Kalman filter (``lgssm/information.hpp`` gives the equations): exact, with
    missing data handled exactly, for any model whose trainable parameters are
    time-invariant (frozen ones may vary per step). For a continuous-time model the
    free parameters include the drift's entries and the diffusion covariance's, and
    the transition over each gap enters with its exact first and second derivatives.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM or lgssm.ContinuousTimeSSM
        The model.
    params : ParamsLGSSM or ParamsCTSSM
        The parameters (usually the fitted ones).
    props : ParamsLGSSM or ParamsCTSSM
        The `ParameterProperties`: which parameters are free, their structures and
        constraints.
    emissions : array or list
        The data, as the fits take them.
    inputs : array or list, optional
        The inputs; None means zeros.
    hessian : bool, default True
        Also the Hessian (its cost grows with the square of the number of parameters;
        the rest linearly).
    num_threads : int, default 0
        Threads over sequences (0: all cores).
    times : array or list, optional
        A continuous-time model's observation times, as its fits take them.
    dt : float, optional
        Instead of ``times``: one uniform step (exactly one of the two, for a
        continuous-time model only).

    Returns
    -------
    Information
        The matrices, and the parameters' labels and values.

    Raises
    ------
    ValueError
        If the parameters, properties or data are invalid, a trainable parameter
        varies per step, or the Hessian's workspaces would not fit in memory.
    RuntimeError
        If an innovation covariance is not numerically positive definite.

    References
    ----------
    .. [1] A. C. Harvey, *Forecasting, Structural Time Series Models and the Kalman
       Filter*, Cambridge University Press, 1989, Sec. 3.4.5-3.4.6.
    """
    hessian = flag("hessian", hessian)
    num_threads = count("num_threads", num_threads)
    if isinstance(model, ContinuousTimeSSM):
        b, ts = model._sequences(emissions, inputs, times, dt)
        compute = functools.partial(
            _core.continuous_information, model.core_params(params), model.core_props(props), b.emissions, b.inputs, ts
        )
    else:
        if times is not None or dt is not None:
            raise ValueError(f"times, dt: expected None for a {type(model).__name__} (a discrete-time model)")
        core, b = model._batch(params, emissions, inputs, covariances=0)
        compute = functools.partial(_core.information, core, props_to_core(props), b.emissions, b.inputs)
    if hessian:  # second-order sensitivities: (n + n^2) floats per pair, four sets per sequence in flight
        k, n = num_parameters(model, params, props), model.state_dim
        memory(
            "hessian",
            True,
            4 * min(num_threads or os.cpu_count() or 1, len(b.emissions)) * k * (k + 1) // 2 * (n + n * n),
            f"the second-order sensitivities of {k} parameters",
            "hessian=False (cov_type 'oim' or 'opg'), or fewer free parameters",
        )
    out: Any = compute(hessian, num_threads)
    names = [label for label, _ in parameter_table(params, props)]
    if len(names) != len(out["free_parameters"]):  # a per-step trainable series is refused by the core first
        raise ValueError(f"props: expected {len(out['free_parameters'])} labelled free parameters, got {len(names)}")
    return Information(
        names=names,
        estimates=np.asarray(out["free_parameters"]),
        marginal_loglik=float(out["marginal_loglik"]),
        score=np.asarray(out["score"]),
        hessian=np.asarray(out["hessian"]) if hessian else None,
        opg=np.asarray(out["opg"]),
        oim=np.asarray(out["harvey"]),
    )


def delta_method(fn, estimates, cov, step: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Propagate a parameter covariance to derived quantities g(theta) by the delta method.

    Cov[g] = J Cov[theta] J^T with J = dg/dtheta at the estimates, by central
    differences with one Richardson extrapolation (error O(step^4)), steps
    ``step * |theta_i|`` (``step`` where theta_i = 0).

    Parameters
    ----------
    fn : callable
        theta (num_params,) -> g, an array-like of shape (num_outputs,) or a float.
    estimates : array_like, shape (num_params,)
        theta.
    cov : array_like, shape (num_params, num_params)
        Its covariance (e.g. `FitResult.cov_params`).
    step : float, default 1e-3
        The relative difference step, > 0.

    Returns
    -------
    (array, shape (num_outputs,), array, shape (num_outputs, num_outputs))
        g(theta) and its covariance.

    Raises
    ------
    ValueError
        If the shapes disagree, ``step`` is not positive, or ``fn`` gives non-finite values.
    """
    theta = np.asarray(estimates, dtype=np.float64).reshape(-1)
    c = np.asarray(cov, dtype=np.float64)
    if c.shape != (theta.size, theta.size):
        raise ValueError(f"cov: expected shape ({theta.size}, {theta.size}), got {c.shape}")
    if not (isinstance(step, (int, float)) and step > 0):
        raise ValueError(f"step: expected a positive number, got {step!r}")

    def g(x):
        out = np.asarray(fn(x), dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(out)):
            raise ValueError("fn: expected finite values near the estimates, got a NaN or an infinity")
        return out

    jac = _richardson_jacobian(g, theta, step)
    out = jac @ c @ jac.T
    return g(theta), 0.5 * (out + out.T)


def _richardson_jacobian(f, x: np.ndarray, step: float) -> np.ndarray:
    """d f / d x of f: (n,) -> (m,) by central differences with one Richardson extrapolation,
    (4 D(h / 2) - D(h)) / 3 with h = step |x_i| (step where x_i = 0): error O(h^4)."""
    cols = []
    for i in range(x.size):
        h = step * (abs(x[i]) if x[i] != 0.0 else 1.0)

        def central(d, i=i):
            e = np.zeros_like(x)
            e[i] = d
            return (f(x + e) - f(x - e)) / (2.0 * d)

        cols.append((4.0 * central(h / 2.0) - central(h)) / 3.0)
    return np.column_stack(cols)


_DASH = "\u2014"


@dataclass
class FitResult:
    """A fitted model with its data: residuals, tests, information criteria, summary and plots.

    statsmodels' ``MLEResults`` for lgssm: ``summary()`` prints the parameters with
    their standard errors and the fit statistics, ``plot_diagnostics()`` draws
    statsmodels' four panels; `bse`, `cov_params`, `conf_int` and `delta_method` give
    the uncertainty of the estimates.

    A continuous-time model is given with its observation times (``times`` or
    ``dt``): its residuals, tests and disturbances are those of the discrete-time
    model of each sequence's times (`lgssm.ContinuousTimeSSM.discrete_params`), its
    free parameters and their standard errors are the drift's and the diffusion
    covariance's entries with the initial state's and the emissions'.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM or lgssm.ContinuousTimeSSM
        The model.
    params : ParamsLGSSM or ParamsCTSSM
        The fitted parameters.
    props : ParamsLGSSM or ParamsCTSSM
        The `ParameterProperties` of the fit (which parameters were free).
    emissions : array or list
        The data the model was fitted to, as the fits take them.
    inputs : array or list, optional
        The inputs; None means zeros.
    fit_summary : FitSummary, optional
        How the fit ended (``return_summary=True`` of a ``fit_*`` method).
    burn : int, default 0
        Leading time steps of each sequence left out of the tests and of nobs
        (statsmodels' ``loglikelihood_burn``; 0 for a known initial distribution).
        With a diffuse initialization the tests leave out at least the diffuse
        period, ``max(burn, num_diffuse_timesteps)`` steps, as statsmodels does.
    name : str, optional
        A label for tables (default: the model's class and dimensions).
    cov_type : {"hessian", "oim", "opg", "robust", "robust_oim"}, default "hessian"
        The covariance of `bse`, `pvalues`, `conf_int` and the summary
        (`Information.cov_params`).
    times : array or list, optional
        A continuous-time model's observation times, as its fits take them.
    dt : float, optional
        Instead of ``times``: one uniform step (exactly one of the two, for a
        continuous-time model only).
    """

    model: Any
    params: Any
    props: Any
    emissions: Any
    inputs: Any = None
    fit_summary: Any = None
    burn: int = 0
    name: str | None = None
    cov_type: str = "hessian"
    times: Any = None
    dt: Any = None

    def __post_init__(self):
        self._cache = {}  # the innovations and the information, computed once
        self.burn = count("burn", self.burn)
        if self.cov_type not in COV_TYPES:
            raise ValueError(f"cov_type: expected one of {', '.join(COV_TYPES)}, got {self.cov_type!r}")
        if self.name is None:
            m = self.model
            self.name = f"{type(m).__name__}(state_dim={m.state_dim}, emission_dim={m.emission_dim})"
        if isinstance(self.model, ContinuousTimeSSM):
            self._sequences()  # checks the times
        elif self.times is not None or self.dt is not None:
            raise ValueError(f"times, dt: expected None for a {type(self.model).__name__} (a discrete-time model)")

    @property
    def _step(self) -> dict:
        """The observation times as the continuous-time model's methods take them (empty for discrete time)."""
        return {"times": self.times, "dt": self.dt} if isinstance(self.model, ContinuousTimeSSM) else {}

    def _sequences(self) -> tuple:
        """(batch, per-sequence times or None) of the data, computed once."""
        if "sequences" not in self._cache:
            if isinstance(self.model, ContinuousTimeSSM):
                out = self.model._sequences(self.emissions, self.inputs, self.times, self.dt)
            else:
                out = self.model._batch(self.params, self.emissions, self.inputs, covariances=0)[1], None
            self._cache["sequences"] = out
        return self._cache["sequences"]

    def _discrete_params(self) -> list:
        """A continuous-time model's discrete-time parameters at each sequence's times, computed once."""
        if "discrete" not in self._cache:
            self._cache["discrete"] = [self.model.discrete_params(self.params, t) for t in self._sequences()[1]]
        return self._cache["discrete"]

    def _per_sequence(self, fn) -> list:
        """fn(discrete-time model, its params, emissions, inputs) for each sequence of a continuous-time
        model (the discrete-time model of its times), or once over all for a discrete-time one."""
        if not isinstance(self.model, ContinuousTimeSSM):
            return [fn(self.model, self.params, self.emissions, self.inputs)]
        b = self._sequences()[0]
        d = self.model._discrete
        return [fn(d, p, y, u) for p, y, u in zip(self._discrete_params(), b.emissions, b.inputs)]

    def _innovations_list(self) -> list:
        if "innovations" not in self._cache:

            def each(model, params, y, u):
                core, b = model._batch(params, y, u, covariances=0)
                return [Innovations(**d) for d in _core.innovations(core, b.emissions, b.inputs)]

            inn = [i for part in self._per_sequence(each) for i in part]
            shortest = min(len(i.step_logliks) for i in inn)
            if self.burn >= shortest:
                raise ValueError(
                    f"burn: expected fewer than the {shortest} steps of the shortest sequence, got {self.burn}"
                )
            self._cache["innovations"] = inn
        return self._cache["innovations"]

    def _unwrapped(self, parts: list):
        """One result per sequence of a continuous-time model, as the discrete-time functions return them."""
        if not isinstance(self.model, ContinuousTimeSSM):
            return parts[0]
        return parts[0] if self._sequences()[0].kind == "single" else parts

    def innovations(self) -> Innovations | list:
        """Compute the one-step innovations (`lgssm.diagnostics.innovations`).

        Returns
        -------
        Innovations or list of Innovations
            As `lgssm.diagnostics.innovations` returns them for this fit's data.
        """
        return self._unwrapped(self._per_sequence(innovations))

    def disturbances(self) -> Disturbances | list:
        """Run the disturbance smoother (`lgssm.diagnostics.disturbances`).

        Returns
        -------
        Disturbances or list of Disturbances
            As `lgssm.diagnostics.disturbances` returns them for this fit's data.
        """
        return self._unwrapped(self._per_sequence(disturbances))

    def _test_burn(self, sequence: int = 0) -> int:
        """The steps the residual tests leave out: max(burn, the diffuse period) (statsmodels)."""
        inn = self._innovations_list()[count("sequence", sequence, 0, len(self._innovations_list()) - 1)]
        return max(self.burn, int(inn.num_diffuse_timesteps))

    def standardized_residuals(self, sequence: int = 0) -> np.ndarray:
        """Give the standardized innovations of one sequence (Cholesky), the burn-in included.

        Parameters
        ----------
        sequence : int, default 0
            Which sequence of a batch or list.

        Returns
        -------
        array, shape (num_timesteps, emission_dim)
            L_t^{-1} v_t, NaN where missing.

        Raises
        ------
        ValueError
            If ``sequence`` is out of range.
        """
        inn = self._innovations_list()
        i = count("sequence", sequence, 0, len(inn) - 1)
        return np.asarray(inn[i].standardized_innovations)

    def information(self, hessian: bool = True) -> Information:
        """Compute the score, the exact Hessian, OPG and Harvey's information at the fit (`information`).

        Parameters
        ----------
        hessian : bool, default True
            Whether the Hessian is needed (the only part whose cost grows with the square
            of the number of parameters).

        Returns
        -------
        Information
            Computed once per FitResult (again only to add the Hessian).
        """
        info = self._cache.get("information")
        if info is None or (hessian and info.hessian is None):
            info = information(
                self.model, self.params, self.props, self.emissions, self.inputs, hessian=hessian, **self._step
            )
            self._cache["information"] = info
        return info

    @property
    def param_names(self) -> list:
        """The free parameters' labels (list of str; `parameter_table`)."""
        return [label for label, _ in parameter_table(self.params, self.props)]

    @property
    def estimates(self) -> np.ndarray:
        """The free parameters theta on the user's scale (array, shape (num_params,))."""
        return self.information(hessian=False).estimates

    def cov_params(self, cov_type: str | None = None) -> np.ndarray:
        """Compute the covariance of the estimates (`Information.cov_params`).

        Parameters
        ----------
        cov_type : {"hessian", "oim", "opg", "robust", "robust_oim"}, optional
            The estimator; None for this result's ``cov_type``.

        Returns
        -------
        array, shape (num_params, num_params)
            The covariance, in the order of `param_names`.

        Raises
        ------
        ValueError
            If ``cov_type`` is unknown or the information is not positive definite (the
            message names the parameter the data do not determine).
        """
        cov_type = self.cov_type if cov_type is None else cov_type
        return self.information(hessian=cov_type in ("hessian", "robust")).cov_params(cov_type)

    @property
    def bse(self) -> np.ndarray:
        """The standard errors of the estimates under ``cov_type`` (array, shape (num_params,))."""
        return np.sqrt(np.diag(self.cov_params()))

    @property
    def zvalues(self) -> np.ndarray:
        """The Wald statistics estimate / std err (array, shape (num_params,))."""
        return self.estimates / self.bse

    @property
    def pvalues(self) -> np.ndarray:
        """The two-sided p-values of the Wald statistics against N(0, 1) (array, shape (num_params,))."""
        from scipy import stats

        return 2.0 * stats.norm.sf(np.abs(self.zvalues))

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Compute the Wald intervals estimate -+ z_{1 - alpha/2} std err.

        Parameters
        ----------
        alpha : float, default 0.05
            One minus the coverage, in (0, 1).

        Returns
        -------
        array, shape (num_params, 2)
            Lower and upper limits.

        Raises
        ------
        ValueError
            If ``alpha`` is not in (0, 1), or as `cov_params`.
        """
        from scipy import stats

        if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
            raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
        half = stats.norm.ppf(1.0 - alpha / 2.0) * self.bse
        return np.column_stack([self.estimates - half, self.estimates + half])

    def delta_method(self, fn, cov_type: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Estimate derived quantities g(theta) and their covariance (`delta_method`).

        Parameters
        ----------
        fn : callable
            theta (num_params,), in the order of `param_names` -> g (num_outputs,) or a float.
        cov_type : str, optional
            As `cov_params`.

        Returns
        -------
        (array, shape (num_outputs,), array, shape (num_outputs, num_outputs))
            g(theta) and its covariance; ``np.sqrt(np.diag(cov))`` are the standard errors.
        """
        return delta_method(fn, self.estimates, self.cov_params(cov_type))

    @property
    def loglik(self) -> float:
        """The log likelihood log p(y) at the fitted parameters, summed over the sequences (float)."""
        return float(sum(i.marginal_loglik for i in self._innovations_list()))

    @property
    def num_params(self) -> int:
        """The number of free parameters, k (int; `num_parameters`)."""
        return num_parameters(self.model, self.params, self.props)

    @property
    def nobs(self) -> int:
        """The number of time steps, summed over the sequences, less the burn-in (int; statsmodels' nobs_effective)."""
        return sum(max(len(i.step_logliks) - self.burn, 0) for i in self._innovations_list())

    @property
    def criteria(self) -> dict:
        """The information criteria AIC, AICc, BIC and HQIC (dict; `information_criteria`)."""
        return information_criteria(self.loglik, self.nobs, self.num_params)

    @property
    def aic(self) -> float:
        """Akaike's information criterion, -2 loglik + 2 k (float)."""
        return self.criteria["aic"]

    @property
    def aicc(self) -> float:
        """AIC with the small-sample correction (float)."""
        return self.criteria["aicc"]

    @property
    def bic(self) -> float:
        """The Bayes information criterion, -2 loglik + k log(nobs) (float)."""
        return self.criteria["bic"]

    @property
    def hqic(self) -> float:
        """The Hannan-Quinn information criterion, -2 loglik + 2 k log(log(nobs)) (float)."""
        return self.criteria["hqic"]

    def test_serial_correlation(self, lags=None, sequence: int = 0) -> np.ndarray:
        """Ljung-Box test on the standardized residuals (`lgssm.diagnostics.test_serial_correlation`).

        Parameters
        ----------
        lags : int, optional
            The largest lag; None for min(10, nobs // 5).
        sequence : int, default 0
            Which sequence.

        Returns
        -------
        array, shape (emission_dim, 2, lags)
            Statistics and p-values per component and lag.
        """
        return test_serial_correlation(self.standardized_residuals(sequence), lags=lags, burn=self._test_burn(sequence))

    def test_normality(self, sequence: int = 0) -> np.ndarray:
        """Jarque-Bera test on the standardized residuals (`lgssm.diagnostics.test_normality`).

        Parameters
        ----------
        sequence : int, default 0
            Which sequence.

        Returns
        -------
        array, shape (emission_dim, 4)
            Statistic, p-value, skewness, kurtosis per component.
        """
        return test_normality(self.standardized_residuals(sequence), burn=self._test_burn(sequence))

    def test_heteroskedasticity(self, alternative: str = "two-sided", use_f: bool = True, sequence: int = 0):
        """Harvey's test of a break in variance (`lgssm.diagnostics.test_heteroskedasticity`).

        Parameters
        ----------
        alternative : {"two-sided", "increasing", "decreasing"}, default "two-sided"
            The alternative.
        use_f : bool, default True
            F distribution (True) or chi-squared.
        sequence : int, default 0
            Which sequence.

        Returns
        -------
        array, shape (emission_dim, 2)
            Statistic and p-value per component.
        """
        return test_heteroskedasticity(
            self.standardized_residuals(sequence), burn=self._test_burn(sequence), alternative=alternative, use_f=use_f
        )

    def tests(self, sequence: int = 0) -> dict:
        """Collect the three tests at their defaults, as plain numbers (JSON-ready).

        Parameters
        ----------
        sequence : int, default 0
            Which sequence.

        Returns
        -------
        dict
            ``"ljung_box"``: statistic and p-value per component at lag 1 and at the
            default largest lag; ``"jarque_bera"``: statistic, p-value, skewness,
            kurtosis; ``"heteroskedasticity"``: statistic and two-sided p-value.
        """
        lb = self.test_serial_correlation(sequence=sequence)
        jb = self.test_normality(sequence=sequence)
        het = self.test_heteroskedasticity(sequence=sequence)

        def num(x):
            return None if not np.isfinite(x) else float(x)

        return {
            "ljung_box": [
                {
                    "lags": int(lb.shape[2]),
                    "statistic_lag1": num(c[0, 0]),
                    "pvalue_lag1": num(c[1, 0]),
                    "statistic": num(c[0, -1]),
                    "pvalue": num(c[1, -1]),
                }
                for c in lb
            ],
            "jarque_bera": [
                {"statistic": num(r[0]), "pvalue": num(r[1]), "skew": num(r[2]), "kurtosis": num(r[3])} for r in jb
            ],
            "heteroskedasticity": [{"statistic": num(r[0]), "pvalue": num(r[1])} for r in het],
        }

    def bootstrap(
        self,
        num_replicates: int = 200,
        method: str = "parametric",
        fit: str = "lbfgs",
        num_iters: int = 1000,
        key=0,
        num_workers: int | None = None,
        client=None,
        progress: bool = False,
    ):
        """Bootstrap the free parameters: refit data made like the original, ``num_replicates`` times.

        Parameters
        ----------
        num_replicates : int, default 200
            The number of refits, at least 2.
        method : {"parametric", "innovations"}, default "parametric"
            Draw the data from the fitted model, or resample the standardized
            innovations (Stoffer & Wall 1991; each step's from the steps observed in the
            same components; the first ``burn`` steps keep theirs).
        fit : {"lbfgs", "em"}, default "lbfgs"
            How each replicate is refitted, starting from the fitted parameters.
        num_iters : int, default 1000
            The refit's iterations at most.
        key : int or numpy.random.Generator, default 0
            The randomness; replicate r uses the r-th spawned seed, however the work is spread.
        num_workers : int, optional
            Threads running refits at once (default: every core).
        client : dask.distributed.Client, optional
            Run one task per replicate on this cluster instead.
        progress : bool, default False
            Show a progress bar on stderr.

        Returns
        -------
        lgssm.bootstrap.BootstrapResult
            The replicates' estimates, ``standard_errors`` and percentile ``intervals(level)``.

        Raises
        ------
        ValueError
            If an argument is invalid.
        RuntimeError
            If fewer than 2 refits succeed.
        """
        from . import bootstrap

        return bootstrap.run(self, num_replicates, method, fit, num_iters, key, num_workers, client, progress)

    def _sections(self) -> tuple[list, list, list]:
        """(fit statistics, parameter rows, test rows) of the summary, as strings."""
        crit = self.criteria
        fs = self.fit_summary
        fit = [
            ("Model", self.name),
            ("Time steps (nobs)", str(self.nobs)),
            ("Log likelihood", f"{self.loglik:.6g}"),
            ("Free parameters", str(self.num_params)),
            ("AIC", f"{crit['aic']:.6g}"),
            ("AICc", f"{crit['aicc']:.6g}"),
            ("BIC", f"{crit['bic']:.6g}"),
            ("HQIC", f"{crit['hqic']:.6g}"),
        ]
        if self.burn:
            fit.insert(2, ("Burn-in steps", str(self.burn)))
        if fs is not None:
            fit.append(("Fit", f"{fs.termination} after {fs.iterations} iterations"))
        table = parameter_table(self.params, self.props)
        try:
            bse = self.bse
        except (ValueError, RuntimeError) as err:  # no standard errors here: dashes, and why
            self._cache["bse_error"] = str(err)
            params = [
                (label, value if isinstance(value, str) else f"{value:.6g}") + (_DASH,) * 5 for label, value in table
            ]
        else:
            z, p, ci = self.estimates / bse, self.pvalues, self.conf_int()
            params = [
                (
                    label,
                    f"{value:.6g}",
                    f"{bse[i]:.6g}",
                    f"{z[i]:.3f}",
                    f"{p[i]:.3f}",
                    f"{ci[i, 0]:.6g}",
                    f"{ci[i, 1]:.6g}",
                )
                for i, (label, value) in enumerate(table)
            ]
        tests: list[tuple[str, ...]] = []
        try:
            t = self.tests()
        except ValueError as err:  # too few residuals for a test
            tests.append(("Tests", str(err)))
        else:
            for i, (lb, jb, het) in enumerate(zip(t["ljung_box"], t["jarque_bera"], t["heteroskedasticity"])):
                tag = f" [y{i}]" if len(t["ljung_box"]) > 1 else ""

                def show(x):
                    return "nan" if x is None else f"{x:.4g}"

                tests += [
                    (f"Ljung-Box (L1) (Q){tag}", show(lb["statistic_lag1"]), f"Prob(Q) {show(lb['pvalue_lag1'])}"),
                    (f"Ljung-Box (L{lb['lags']}) (Q){tag}", show(lb["statistic"]), f"Prob(Q) {show(lb['pvalue'])}"),
                    (f"Jarque-Bera (JB){tag}", show(jb["statistic"]), f"Prob(JB) {show(jb['pvalue'])}"),
                    (f"Skew / Kurtosis{tag}", show(jb["skew"]), show(jb["kurtosis"])),
                    (f"Heteroskedasticity (H){tag}", show(het["statistic"]), f"Prob(H) {show(het['pvalue'])}"),
                ]
        return fit, params, tests

    _PARAM_HEADER = ("parameter", "estimate", "std err", "z", "P>|z|", "[0.025", "0.975]")

    def summary(self) -> str:
        """Write the fit as a plain-text table: fit statistics, parameters, residual tests.

        Each free parameter is listed by name with its estimate, standard error (under
        ``cov_type``), Wald statistic, two-sided p-value and 95% Wald interval (dashes,
        with the reason below the table, where the information is not positive
        definite). The tests are on the standardized innovations of the first sequence.

        Returns
        -------
        str
            The table.
        """
        fit, params, tests = self._sections()
        width = 78
        rule, thin = "=" * width, "-" * width
        lines = [" lgssm fit summary ".center(width, "="), *(f"{k:<22}{v}" for k, v in fit), rule]
        # Each column at least its default width, and two wider than its longest entry.
        table = [self._PARAM_HEADER, *params]
        cols = [max(len(r[0]) for r in table) + 2] + [
            max(c, 2 + max(len(str(r[k])) for r in table)) for k, c in enumerate((11, 10, 8, 7, 10, 10), start=1)
        ]

        def row(r):
            return r[0].ljust(cols[0]) + "".join(str(x).rjust(c) for x, c in zip(r[1:], cols[1:]))

        lines += [row(self._PARAM_HEADER), thin, *(row(r) for r in params), rule]
        lines += [f"{r[0]:<34}{r[1]:>12}    {r[2] if len(r) > 2 else ''}" for r in tests]
        lines += [rule, self._covariance_note()]
        return "\n".join(lines)

    def _covariance_note(self) -> str:
        """The summary's last line: the covariance type, or why there are no standard errors."""
        if "bse_error" in self._cache:
            return f"Standard errors not available ({_DASH}): {self._cache['bse_error']}"
        return f"Covariance type: {self.cov_type} ({_COV_NOTES[self.cov_type]})."

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """The summary as HTML tables (Jupyter)."""
        fit, params, tests = self._sections()
        esc = html.escape

        def table(header, rows):
            head = "" if header is None else "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
            body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            return f"<table>{head}{body}</table>"

        return (
            "<div><strong>lgssm fit summary</strong>"
            + table(None, fit)
            + table(self._PARAM_HEADER, params)
            + table(None, tests)
            + f"<p>{esc(self._covariance_note())}</p></div>"
        )

    def plot_diagnostics(self, variable: int = 0, lags: int = 10, sequence: int = 0, fig=None, figsize=None, path=None):
        """Draw statsmodels' four diagnostic panels of one component's standardized residuals.

        Standardized residuals over time; their histogram with a Gaussian KDE and the
        N(0, 1) density; a normal Q-Q plot with the standardized line; the correlogram
        (lags 1..``lags``, Bartlett's 95% band). Burn-in steps are left out.

        Parameters
        ----------
        variable : int, default 0
            The emission component.
        lags : int, default 10
            Lags of the correlogram.
        sequence : int, default 0
            Which sequence.
        fig : matplotlib.figure.Figure, optional
            Draw into this figure (its contents are replaced); None for a new one.
        figsize : tuple, optional
            The new figure's size; None for (12, 8).
        path : str or path, optional
            Also save the figure there (atomically; the format follows the extension).

        Returns
        -------
        matplotlib.figure.Figure
            The figure.

        Raises
        ------
        ValueError
            If ``variable``, ``lags`` or ``sequence`` is out of range, or fewer than 3
            residuals are observed.
        """
        from scipy import stats

        from .plot import _finish, _pyplot

        burn = self._test_burn(sequence)
        resid = self.standardized_residuals(sequence)[burn:]
        variable = count("variable", variable, 0, resid.shape[1] - 1)
        x = resid[:, variable]
        observed = x[~np.isnan(x)]
        if observed.size < 3:
            raise ValueError(f"emissions: component {variable} has {observed.size} observed residuals; expected >= 3")
        lags = count("lags", lags, 1, observed.size - 1)
        plt = _pyplot()
        if fig is None:
            fig = plt.figure(figsize=figsize or (12, 8))
        else:
            fig.clf()
        axes = fig.subplots(2, 2)
        t = np.arange(burn, burn + len(x))
        ax = axes[0, 0]
        ax.plot(t, x)
        ax.axhline(0, color="k", linewidth=0.5)
        ax.set_xlim(t[0], t[-1])
        ax.set_title(f"Standardized residual for y{variable}")
        ax = axes[0, 1]
        ax.hist(observed, density=True, bins="auto", label="Hist", color="C0", alpha=0.6)
        grid = np.linspace(min(-3.0, observed.min()), max(3.0, observed.max()), 200)
        ax.plot(grid, stats.gaussian_kde(observed)(grid), label="KDE", color="C1")
        ax.plot(grid, stats.norm.pdf(grid), label="N(0,1)", color="C2")
        ax.set_xlim(grid[0], grid[-1])
        ax.legend()
        ax.set_title("Histogram plus estimated density")
        ax = axes[1, 0]
        n = observed.size
        theoretical = stats.norm.ppf(np.arange(1, n + 1) / (n + 1))
        ordered = np.sort(observed)
        ax.plot(theoretical, ordered, "o", markersize=3, color="C0")
        sd, mean = ordered.std(ddof=1), ordered.mean()
        ax.plot(theoretical, mean + sd * theoretical, color="C3")  # statsmodels' line="s"
        ax.set_xlabel("Theoretical Quantiles")
        ax.set_ylabel("Sample Quantiles")
        ax.set_title("Normal Q-Q")
        ax = axes[1, 1]
        rho = _acf(observed, lags)
        ks = np.arange(1, lags + 1)
        band = 1.96 * np.sqrt((1.0 + 2.0 * np.cumsum(np.r_[0.0, rho[1:lags] ** 2])) / n)
        ax.fill_between(ks, -band, band, color="C0", alpha=0.2, linewidth=0)
        ax.vlines(ks, 0, rho[1:], color="C0")
        ax.plot(ks, rho[1:], "o", color="C0")
        ax.axhline(0, color="k", linewidth=0.5)
        ax.set_xlabel("Lag")
        ax.set_title("Correlogram")
        fig.tight_layout()
        return _finish(fig, path)


def _check_fit(method) -> None:
    if method not in ("em", "lbfgs"):
        raise ValueError(f"fit: expected 'em' or 'lbfgs', got {method!r}")


def _fit(model, params, props, emissions, inputs, method: str, num_iters: int, **step):
    """(params, FitSummary) of ``model.fit_em`` or ``model.fit_lbfgs``, silent; ``step``: a
    continuous-time model's ``times`` or ``dt``."""
    _check_fit(method)
    if method == "em":
        fitted, _, summary = model.fit_em(
            params, props, emissions, inputs=inputs, num_iters=num_iters, verbose=False, return_summary=True, **step
        )
    else:
        fitted, _, summary = model.fit_lbfgs(
            params, props, emissions, inputs=inputs, max_iters=num_iters, verbose=False, return_summary=True, **step
        )
    return fitted, summary


@shared
def heldout_log_prob(model, params, emissions, num_heldout: int, inputs=None) -> float:
    """Compute log p(y_{T0:T-1} | y_{0:T0-1}) of the last ``num_heldout`` steps of one series.

    Exactly the filter's terms log p(y_t | y_{0:t-1}) summed over t >= T0 = T -
    ``num_heldout`` (no difference of two log likelihoods is taken).

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model.
    params : ParamsLGSSM
        Its parameters (fitted on the first T0 steps, for an honest score).
    emissions : array, shape (num_timesteps, emission_dim)
        One whole series, NaN where missing.
    num_heldout : int
        The number of trailing steps scored, 1 <= num_heldout <= num_timesteps.
    %(inputs)s

    Returns
    -------
    float
        The held-out predictive log likelihood.

    Raises
    ------
    ValueError
        If the emissions are not one sequence, ``num_heldout`` is out of range, or the
        parameters or data are invalid.
    """
    core, b = model._batch(params, emissions, inputs, covariances=0)
    if b.kind != "single":
        raise ValueError("emissions: expected one sequence, an array of shape (num_timesteps, emission_dim)")
    steps = b.emissions[0].shape[0]
    h = count("num_heldout", num_heldout, 1, steps)
    terms: Any = _core.innovations(core, b.emissions, b.inputs)[0]
    return float(np.sum(terms["step_logliks"][steps - h :]))


@shared
def cross_validate(
    model, params, props, emissions, num_folds: int = 5, inputs=None, fit: str = "em", num_iters: int = 100, key=0
) -> dict:
    """K-fold cross-validated predictive log likelihood over sequences.

    The sequences are shuffled (by ``key``) and split into ``num_folds`` folds; each
    fold is scored by log p(y) of its sequences under the parameters fitted, from
    ``params``, to the other folds.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model.
    params : ParamsLGSSM
        The starting parameters of every fit.
    props : ParamsLGSSM
        The `ParameterProperties` of the fits.
    %(emissions)s
    num_folds : int, default 5
        The number of folds, 2 <= num_folds <= num_sequences.
    %(inputs)s
    fit : {"em", "lbfgs"}, default "em"
        The fitting method.
    num_iters : int, default 100
        Its iterations.
    key : int or numpy.random.Generator, default 0
        The randomness of the shuffling.

    Returns
    -------
    dict
        ``"fold_logliks"``: array, shape (num_folds,), each fold's held-out log p(y);
        ``"total"``: their sum; ``"folds"``: the sequence indices of each fold.

    Raises
    ------
    ValueError
        If ``num_folds`` is out of range, ``fit`` unknown, or the data invalid.
    """
    from ._keys import as_generator

    _, b = model._batch(params, emissions, inputs, covariances=0)
    k = count("num_folds", num_folds, 2, max(len(b.emissions), 2))
    if len(b.emissions) < 2:
        raise ValueError("emissions: expected at least 2 sequences for cross-validation, got 1")
    order = as_generator(key).permutation(len(b.emissions))
    folds = [np.sort(f).tolist() for f in np.array_split(order, k)]
    scores = []
    for fold in folds:
        train = [i for i in range(len(b.emissions)) if i not in fold]
        fitted, _ = _fit(
            model, params, props, [b.emissions[i] for i in train], [b.inputs[i] for i in train], fit, num_iters
        )
        lls = model.marginal_log_prob(fitted, [b.emissions[i] for i in fold], [b.inputs[i] for i in fold])
        scores.append(float(np.sum(lls)))
    return {"fold_logliks": np.array(scores), "total": float(np.sum(scores)), "folds": folds}


@dataclass
class ModelComparison:
    """The table `compare` returns: one row per candidate.

    Parameters
    ----------
    rows : list of dict
        Per candidate: ``name``, ``state_dim``, ``loglik``, ``num_params``, ``nobs``,
        ``aic``, ``aicc``, ``bic``, ``hqic`` and, with a held-out block, ``heldout_loglik``.
    results : list of FitResult
        The fits, in the same order.
    """

    rows: list
    results: list

    def best(self, criterion: str = "bic") -> FitResult:
        """Pick the candidate with the lowest criterion (the highest held-out log likelihood).

        Parameters
        ----------
        criterion : {"aic", "aicc", "bic", "hqic", "heldout_loglik"}, default "bic"
            The criterion.

        Returns
        -------
        FitResult
            The best fit.

        Raises
        ------
        ValueError
            If the criterion is unknown or not in the table.
        """
        if criterion not in self.rows[0] or criterion in ("name", "state_dim", "num_params", "nobs"):
            raise ValueError(f"criterion: expected one of aic, aicc, bic, hqic, heldout_loglik, got {criterion!r}")
        sign = -1.0 if criterion == "heldout_loglik" else 1.0
        return self.results[int(np.argmin([sign * r[criterion] for r in self.rows]))]

    def __str__(self) -> str:
        keys = list(self.rows[0])
        cells = [[str(r[k]) if isinstance(r[k], (str, int)) else f"{r[k]:.6g}" for k in keys] for r in self.rows]
        widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
        line = "  ".join(k.rjust(w) for k, w in zip(keys, widths))
        return "\n".join([line, "-" * len(line), *("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells)])

    def _repr_html_(self) -> str:
        """The table as HTML (Jupyter)."""
        keys = list(self.rows[0])
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(r[k]) if isinstance(r[k], (str, int)) else f'{r[k]:.6g}')}</td>" for k in keys
            )
            + "</tr>"
            for r in self.rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"


@shared
def compare(
    candidates,
    emissions,
    inputs=None,
    fit: str = "em",
    num_iters: int = 100,
    num_heldout: int = 0,
    key=0,
    names=None,
) -> ModelComparison:
    """Fit each candidate model to the same data and tabulate log likelihood, parameters and criteria.

    Parameters
    ----------
    candidates : list
        Each a `lgssm.LinearGaussianSSM` (started from ``initialize(key)``, all
        parameters free but the biases it was built without), a tuple
        ``(model, params, props)`` (fitted from ``params``), or a `FitResult` (taken
        as it is), for example ``[LinearGaussianSSM(n, p) for n in range(1, 6)]``.
    %(emissions)s
    %(inputs)s
    fit : {"em", "lbfgs"}, default "em"
        The fitting method.
    num_iters : int, default 100
        Its iterations.
    num_heldout : int, default 0
        With one series and num_heldout > 0: fit on all but the last ``num_heldout``
        steps and add their predictive log likelihood (`heldout_log_prob`) as
        ``heldout_loglik``; the criteria are then those of the shorter fit.
    key : int, default 0
        The randomness of ``initialize`` for bare models.
    names : list of str, optional
        The candidates' labels in the table (default: a FitResult's name, else the
        model's class and dimensions).

    Returns
    -------
    ModelComparison
        The table (``print`` it, or read ``rows``); ``best("bic")`` picks a fit.

    Raises
    ------
    ValueError
        If a candidate is of an unknown kind, ``fit`` is unknown, ``num_heldout`` is out
        of range, or the data are invalid.
    """
    if not isinstance(candidates, (list, tuple)) or len(candidates) == 0:
        raise ValueError("candidates: expected a non-empty list of models, (model, params, props) or FitResult")
    num_heldout = count("num_heldout", num_heldout)
    if names is not None and (not isinstance(names, (list, tuple)) or len(names) != len(candidates)):
        raise ValueError(f"names: expected a list of {len(candidates)} labels, got {names!r}")
    full_emissions, full_inputs = emissions, inputs
    if num_heldout:
        y = np.asarray(emissions, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or not 1 <= num_heldout < y.shape[0]:
            raise ValueError(
                f"num_heldout: expected one series of more than {num_heldout} steps, got emissions of shape {y.shape}"
            )
        full_emissions = y
        emissions = y[:-num_heldout]
        if inputs is not None:
            full_inputs = np.asarray(inputs, dtype=np.float64)
            inputs = full_inputs[:-num_heldout]
    rows, results = [], []
    for i, c in enumerate(candidates):
        if isinstance(c, FitResult):
            result = c
        else:
            if isinstance(c, tuple) and len(c) == 3:
                model, params, props = c
            elif hasattr(c, "initialize"):
                model = c
                params, props = model.initialize(key)
            else:
                raise ValueError(
                    f"candidates[{i}]: expected a model, a (model, params, props) tuple or a FitResult, "
                    f"got {type(c).__name__}"
                )
            fitted, summary = _fit(model, params, props, emissions, inputs, fit, num_iters)
            result = FitResult(model, fitted, props, emissions, inputs, fit_summary=summary)
        if names is not None:
            result.name = str(names[i])
        row = {
            "name": result.name,
            "state_dim": result.model.state_dim,
            "loglik": result.loglik,
            "num_params": result.num_params,
            "nobs": result.nobs,
            **result.criteria,
        }
        if num_heldout:
            row["heldout_loglik"] = heldout_log_prob(
                result.model, result.params, full_emissions, num_heldout, full_inputs
            )
        rows.append(row)
        results.append(result)
    return ModelComparison(rows, results)
