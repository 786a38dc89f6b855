"""Structural time series models from building blocks: trends, seasonals, cycles, ARMA, regression, factors.

Each component is a small linear Gaussian state-space block (Durbin & Koopman 2012,
*Time Series Analysis by State Space Methods*, 2nd ed., Ch. 3; Harvey 1989, Ch. 2);
``+`` stacks them into a sum, and ``build`` assembles the sum into one
`StructuralModel`, a `lgssm.LinearGaussianSSM` whose state is the components' states
stacked::

    F = blockdiag(F_1, ..., F_c),  Q = blockdiag(Q_1, ..., Q_c),
    H = [H_1, ..., H_c],  D = [D_1, ...] (regression),  R = the observation noise,

so that y_t = sum_c H_c z_{c,t} + D u_t + eps_t. Every parameter matrix is written as
an element-wise constraint vec(M) = fixed + design @ beta (`lgssm.constraints.linear`):
the fixed entries of each block (the ones of a random walk, the -1 of a dummy
seasonal, zeros between blocks) stay fixed, and the free values carry readable
names (``level.variance``, ``seasonal.variance``, ``ar.coef[1]``, ``cycle.rho_cos``,
``observation.variance``), which `lgssm.diagnostics.parameter_table` and
`lgssm.FitResult.summary` show as ``dynamics.cov.level.variance`` and so on. All
numerics (filter, smoother, exact diffuse initialization, EM and gradient fits under
the constraints) are the C++ core's; this module only writes the matrices.

>>> from lgssm import structural as st
>>> model = (st.LocalLinearTrend() + st.Seasonal(12) + st.AR([0.5])).build(observation_variance=1.0)
>>> params, props = model.initialize()
>>> model.state_dim
14
>>> list(model.values(params))[:4]
['ar.coef[1]', 'trend.level.variance', 'trend.slope.variance', 'seasonal.variance']

Initialization (docs/initialization.md): the nonstationary components (trends,
seasonals, time-varying regression coefficients) are exactly diffuse (their columns
of the diffuse factor A, P_inf = A A^T; Durbin & Koopman 2012, Sec. 5.1); the
stationary ones (cycle, AR, ARMA, factors) start from their stationary covariance,
P = F P F^T + Q (`lgssm.stationary_initialization`) at the starting values. That
covariance is computed once, at the values the model is built with: a fit does not
track it as F and Q change (the C++ core has no such initialization yet), so after a
fit the stationary blocks of ``initial.cov`` are those of the starting values, not of
the estimates; `StructuralModel.with_stationary_initialization` recomputes them at
given parameters.

The parameters' maps are linear, so EM (``fit_em``) applies throughout: the cycle's
transition rho [[cos lambda, sin lambda], [-sin lambda, cos lambda]] is linear in
(rho cos lambda, rho sin lambda), and `StructuralModel.values` reports the damping
rho and frequency lambda derived from them. Stationarity of AR coefficients is not
enforced by the fits.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from . import constraints
from ._checks import count, flag, real_array
from .models import LinearGaussianSSM
from .params import stationary_initialization

__all__ = [
    "AR",
    "ARMA",
    "Component",
    "Cycle",
    "DynamicFactor",
    "LocalLevel",
    "LocalLinearTrend",
    "Regression",
    "Seasonal",
    "SmoothTrend",
    "StructuralModel",
    "Sum",
    "TimeVaryingRegression",
]


class _Block:
    """A block of a parameter matrix: vec(M) = vec(fixed) + design @ beta, with starting values.

    ``free`` lists (name, start, {(row, col): coefficient}); entries not named there are fixed.
    """

    def __init__(self, fixed, free=()):
        self.fixed = np.array(fixed, dtype=float, ndmin=2)
        rows, cols = self.fixed.shape
        self.names = tuple(name for name, _, _ in free)
        self.start = np.array([start for _, start, _ in free], dtype=float)
        self.design = np.zeros((rows * cols, len(free)))
        for k, (_, _, where) in enumerate(free):
            for (i, j), c in where.items():
                self.design[j * rows + i, k] = c

    @property
    def shape(self) -> tuple:
        return self.fixed.shape


def _name(value) -> str:
    if not isinstance(value, str) or not value or "." in value:
        raise ValueError(f"name: expected a non-empty string without '.', got {value!r}")
    return value


def _positive(name: str, value) -> float:
    """A finite float > 0."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None or np.ndim(value) != 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    x = float(value)
    if not np.isfinite(x) or x <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {x!r}")
    return x


def _vector(name: str, value, size: int) -> np.ndarray:
    a = real_array(name, value).reshape(-1) if np.ndim(value) else np.full(size, float(real_array(name, value)))
    if a.shape != (size,) or not np.isfinite(a).all():
        raise ValueError(f"{name}: expected {size} finite numbers, got {np.shape(value)}")
    return a


def _labels(name: str, labels, size: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(size)]
    out = list(labels) if isinstance(labels, (list, tuple)) else None
    if out is None or len(out) != size or len(set(out)) != size or not all(isinstance(x, str) and x for x in out):
        raise ValueError(f"{name}: expected {size} distinct non-empty strings, got {labels!r}")
    return out


def _initialization(value) -> str:
    if value not in ("stationary", "diffuse"):
        raise ValueError(f'initialization: expected "stationary" or "diffuse", got {value!r}')
    return value


def _spectral_radius(f: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(f)))) if f.size else 0.0


class Component:
    """A building block of a structural model; ``a + b`` is their `Sum`.

    Subclasses set the blocks of F, Q, H and D they contribute. A component is a
    specification only: `build` makes the model.

    Parameters
    ----------
    name : str
        The prefix of its parameters' names and its key in `StructuralModel.components`.
    """

    _diffuse = True  # whether the states are diffuse (else stationary)
    _weights: _Block  # F, (state_dim, state_dim)
    _cov: _Block  # Q, (state_dim, state_dim)
    _emission_weights: _Block  # H, (emission_dim, state_dim)
    _input_weights: _Block  # D, (emission_dim, input_dim), for input_dim > 0

    def __init__(self, name: str):
        self.name = _name(name)
        self.input_dim = 0
        self._per_step_emission_weights: np.ndarray | None = None  # (num_timesteps, emission_dim, state_dim)

    @property
    def state_dim(self) -> int:
        """The number of states of the block."""
        return self._weights.shape[0]

    @property
    def emission_dim(self) -> int:
        """The number of series the block emits to."""
        return self._emission_weights.shape[0]

    @property
    def parts(self) -> tuple:
        """The components of the sum (this one alone).

        Returns
        -------
        tuple of Component
            ``(self,)``.
        """
        return (self,)

    def __add__(self, other) -> Sum:
        if not isinstance(other, Component):
            return NotImplemented
        return Sum(*self.parts, *other.parts)

    def derived(self, values: dict) -> dict:
        """Quantities derived from the free values, by name (none for most components).

        Parameters
        ----------
        values : dict
            The free values by name.

        Returns
        -------
        dict
            Name -> value.
        """
        return {}

    def build(self, observation_variance=1.0) -> StructuralModel:
        """Assemble the component (or the sum) with observation noise into a `StructuralModel`.

        Parameters
        ----------
        observation_variance : float or array, shape (emission_dim,), or None, default 1.0
            The starting variance of the observation noise (one free variance per series,
            ``observation.variance``, or ``observation.variance[i]`` for several series);
            None for none (R = 0, the series observed exactly).

        Returns
        -------
        StructuralModel
            The model.

        Raises
        ------
        ValueError
            If the components do not fit together (see `StructuralModel`).
        """
        return StructuralModel(self, observation_variance)


class Sum(Component):
    """A sum of components (``a + b + c``): block-diagonal dynamics, summed emissions.

    Parameters
    ----------
    *components : Component
        The components, in state order.
    """

    def __init__(self, *components):
        if not components or not all(isinstance(c, Component) for c in components):
            raise ValueError(f"components: expected lgssm.structural components, got {components!r}")
        self._parts = tuple(p for c in components for p in c.parts)

    @property
    def parts(self) -> tuple:
        """The components, flattened.

        Returns
        -------
        tuple of Component
            In state order.
        """
        return self._parts

    @property
    def name(self) -> str:  # type: ignore[override]
        """The components' names joined by ``+``."""
        return " + ".join(p.name for p in self._parts)


class LocalLevel(Component):
    """A random-walk level, mu_t = mu_{t-1} + eta_t, eta_t ~ N(0, ``level.variance``) (DK 2012, Sec. 2.1).

    Parameters
    ----------
    variance : float, default 1.0
        The starting variance of eta (with ``stochastic=False``: none, mu constant).
    stochastic : bool, default True
        Whether the level moves.
    name : str, default "level"
        The name; its variance is ``<name>.variance``.
    """

    def __init__(self, variance=1.0, stochastic: bool = True, name: str = "level"):
        super().__init__(name)
        free = [(f"{self.name}.variance", _positive("variance", variance), {(0, 0): 1.0})]
        self._weights = _Block([[1.0]])
        self._cov = _Block([[0.0]], free if flag("stochastic", stochastic) else ())
        self._emission_weights = _Block([[1.0]])


class LocalLinearTrend(Component):
    """A level and a slope (DK 2012, Sec. 3.2.1): mu_t = mu_{t-1} + nu_{t-1} + xi_t, nu_t = nu_{t-1} + zeta_t.

    Parameters
    ----------
    level_variance : float, default 1.0
        The starting variance of xi, ``<name>.level.variance``.
    slope_variance : float, default 1.0
        The starting variance of zeta, ``<name>.slope.variance``.
    stochastic_level, stochastic_slope : bool, default True
        Whether xi, zeta are present (False: the variance is fixed at 0).
    name : str, default "trend"
        The name.
    """

    def __init__(
        self,
        level_variance=1.0,
        slope_variance=1.0,
        stochastic_level: bool = True,
        stochastic_slope: bool = True,
        name: str = "trend",
    ):
        super().__init__(name)
        free = []
        for i, (part, value, on) in enumerate(
            (("level", level_variance, stochastic_level), ("slope", slope_variance, stochastic_slope))
        ):
            if flag(f"stochastic_{part}", on):
                free.append((f"{self.name}.{part}.variance", _positive(f"{part}_variance", value), {(i, i): 1.0}))
        self._weights = _Block([[1.0, 1.0], [0.0, 1.0]])
        self._cov = _Block(np.zeros((2, 2)), free)
        self._emission_weights = _Block([[1.0, 0.0]])


class SmoothTrend(LocalLinearTrend):
    """The smooth trend (integrated random walk): a `LocalLinearTrend` whose level has no noise (DK 2012, Sec. 3.2.1).

    Parameters
    ----------
    slope_variance : float, default 1.0
        The starting variance of the slope's noise, ``<name>.slope.variance``.
    name : str, default "trend"
        The name.
    """

    def __init__(self, slope_variance=1.0, name: str = "trend"):
        super().__init__(0.0, slope_variance, stochastic_level=False, name=name)


class Seasonal(Component):
    """A seasonal of period s: dummy form, or trigonometric with some harmonics (DK 2012, Sec. 3.2.1).

    Dummy (``harmonics=None``): s - 1 states, gamma_t = -(gamma_{t-1} + ... + gamma_{t-s+1}) + omega_t.
    Trigonometric: for j = 1..harmonics and lambda_j = 2 pi j / s, a pair
    (gamma_j, gamma*_j) rotated by lambda_j each step, each with noise of variance
    ``<name>.variance`` (one variance shared by all states, as statsmodels'
    ``freq_seasonal``), gamma_j emitted. The harmonic at lambda_j = pi (j = s / 2) has
    one state (gamma*_j would never be seen).

    Parameters
    ----------
    period : int or float
        s, at least 2; an integer for the dummy form.
    harmonics : int, optional
        The number of harmonics, 1 <= harmonics <= s / 2; None for the dummy form.
    variance : float, default 1.0
        The starting variance ``<name>.variance``.
    stochastic : bool, default True
        Whether the pattern moves (False: variance fixed at 0).
    name : str, default "seasonal"
        The name.
    """

    def __init__(self, period, harmonics=None, variance=1.0, stochastic: bool = True, name: str = "seasonal"):
        super().__init__(name)
        stochastic = flag("stochastic", stochastic)
        s: float
        if harmonics is None:
            s = count("period", period, 2)
            n = s - 1
            f = np.zeros((n, n))
            f[0] = -1.0
            f[1:, :-1] = np.eye(n - 1)
            h = np.zeros((1, n))
            h[0, 0] = 1.0
            noisy = [0]
        else:
            s = _positive("period", period)
            if s < 2:
                raise ValueError(f"period: expected a number >= 2, got {s!r}")
            k = count("harmonics", harmonics, 1)
            if k > s / 2:
                raise ValueError(f"harmonics: expected an integer in [1, period / 2 = {s / 2:g}], got {k}")
            blocks, rows = [], []
            for j in range(1, k + 1):
                lam = 2.0 * math.pi * j / s
                if 2 * j == s:  # lambda = pi: cos = -1, sin = 0, gamma* unobserved
                    blocks.append(np.array([[-1.0]]))
                else:
                    c, sn = math.cos(lam), math.sin(lam)
                    blocks.append(np.array([[c, sn], [-sn, c]]))
                rows.append(np.eye(1, blocks[-1].shape[0]))
            n = sum(b.shape[0] for b in blocks)
            f = np.zeros((n, n))
            h = np.zeros((1, n))
            at = 0
            for b, r in zip(blocks, rows):
                f[at : at + b.shape[0], at : at + b.shape[0]] = b
                h[:, at : at + b.shape[0]] = r
                at += b.shape[0]
            noisy = list(range(n))
        self.period, self.harmonics = s, harmonics
        self._weights = _Block(f)
        free = [(f"{self.name}.variance", _positive("variance", variance), {(i, i): 1.0 for i in noisy})]
        self._cov = _Block(np.zeros((n, n)), free if stochastic else ())
        self._emission_weights = _Block(h)


class Cycle(Component):
    """A damped stochastic cycle (DK 2012, Sec. 3.2.1; Harvey 1989, Sec. 2.3.4).

    (c_t, c*_t) = rho [[cos lambda, sin lambda], [-sin lambda, cos lambda]] (c_{t-1}, c*_{t-1})
    + (kappa_t, kappa*_t), both noises of variance ``<name>.variance``, c_t emitted. The
    transition is linear in its free values ``<name>.rho_cos`` = rho cos lambda and
    ``<name>.rho_sin`` = rho sin lambda (so EM fits it in closed form);
    `StructuralModel.values` derives ``<name>.damping`` rho, ``<name>.frequency`` lambda
    and ``<name>.period`` 2 pi / lambda.

    Parameters
    ----------
    period : float
        The starting period 2 pi / lambda, at least 2 time steps.
    damping : float, default 0.9
        The starting rho, in (0, 1) (in (0, 1] with a diffuse initialization).
    variance : float, default 1.0
        The starting variance.
    initialization : {"stationary", "diffuse"}, default "stationary"
        The stationary covariance variance / (1 - rho^2) I at the starting values, or
        diffuse (statsmodels' ``UnobservedComponents`` does that).
    name : str, default "cycle"
        The name.
    """

    def __init__(self, period, damping=0.9, variance=1.0, initialization: str = "stationary", name: str = "cycle"):
        super().__init__(name)
        p = _positive("period", period)
        if p < 2:
            raise ValueError(f"period: expected a number >= 2, got {p!r}")
        self._diffuse = _initialization(initialization) == "diffuse"
        rho = _positive("damping", damping)
        if rho > 1 or (rho == 1 and not self._diffuse):
            raise ValueError(
                f"damping: expected a number in (0, 1{']' if self._diffuse else ')'} (a stationary cycle), got {rho!r}"
            )
        lam = 2.0 * math.pi / p
        a = f"{self.name}.rho_cos"
        b = f"{self.name}.rho_sin"
        self._weights = _Block(
            np.zeros((2, 2)),
            [
                (a, rho * math.cos(lam), {(0, 0): 1.0, (1, 1): 1.0}),
                (b, rho * math.sin(lam), {(0, 1): 1.0, (1, 0): -1.0}),
            ],
        )
        v = _positive("variance", variance)
        self._cov = _Block(np.zeros((2, 2)), [(f"{self.name}.variance", v, {(0, 0): 1.0, (1, 1): 1.0})])
        self._emission_weights = _Block([[1.0, 0.0]])

    def derived(self, values: dict) -> dict:
        """The damping rho, frequency lambda and period 2 pi / lambda of the free values.

        Parameters
        ----------
        values : dict
            The free values by name (``<name>.rho_cos``, ``<name>.rho_sin``).

        Returns
        -------
        dict
            ``<name>.damping``, ``<name>.frequency``, ``<name>.period``.
        """
        a, b = values[f"{self.name}.rho_cos"], values[f"{self.name}.rho_sin"]
        lam = math.atan2(b, a)
        return {
            f"{self.name}.damping": math.hypot(a, b),
            f"{self.name}.frequency": lam,
            f"{self.name}.period": 2.0 * math.pi / lam if lam != 0 else math.inf,
        }


class ARMA(Component):
    """An ARMA(p, q) component, with its MA coefficients in the emission row.

    x_t = phi_1 x_{t-1} + ... + phi_p x_{t-p} + eta_t is emitted as x_t + theta_1 x_{t-1} + ...
    + theta_q x_{t-q}. The state is (x_t, ..., x_{t-r+1}), r = max(p, q + 1), with the companion
    transition (its first row ``<name>.ar.coef[i]``) and the MA coefficients ``<name>.ma.coef[j]``
    in the emission row, so that every free value enters linearly (Harvey 1989, Sec. 3.3; the
    emission is an ARMA(p, q) process since theta(L) x_t = theta(L) phi(L)^-1 eta_t). The noise
    variance is ``<name>.variance``. ``build(None)`` makes the series the ARMA process itself
    (no observation noise; then its MA coefficients are not fitted, since the core's fits
    take free emission weights only in rows with noise).

    Parameters
    ----------
    ar : int or array, shape (p,)
        The order p, or the starting coefficients phi (zeros for an int).
    ma : int or array, shape (q,), default 0
        The order q, or the starting coefficients theta.
    variance : float, default 1.0
        The starting variance of eta.
    initialization : {"stationary", "diffuse"}, default "stationary"
        The stationary covariance at the starting values (phi must then be stationary), or diffuse.
    name : str, default "arma"
        The name.
    """

    def __init__(self, ar, ma=0, variance=1.0, initialization: str = "stationary", name: str = "arma"):
        super().__init__(name)
        self._setup(ar, ma, variance, initialization, f"{self.name}.ar.coef", f"{self.name}.ma.coef")

    def _setup(self, ar, ma, variance, initialization, ar_name, ma_name):
        phi = np.zeros(count("ar", ar, 0)) if np.ndim(ar) == 0 else _vector("ar", ar, np.size(ar))
        theta = np.zeros(count("ma", ma, 0)) if np.ndim(ma) == 0 else _vector("ma", ma, np.size(ma))
        p, q = phi.size, theta.size
        r = max(p, q + 1)
        self._diffuse = _initialization(initialization) == "diffuse"
        f = np.zeros((r, r))
        f[1:, :-1] = np.eye(r - 1)
        companion = f.copy()
        companion[0, :p] = phi
        if not self._diffuse and _spectral_radius(companion) >= 1:
            raise ValueError(
                f"ar: expected stationary AR coefficients (roots of the AR polynomial outside the unit circle) "
                f"for a stationary initialization, got {phi.tolist()}"
            )
        self._weights = _Block(f, [(f"{ar_name}[{i + 1}]", phi[i], {(0, i): 1.0}) for i in range(p)])
        v = _positive("variance", variance)
        self._cov = _Block(np.zeros((r, r)), [(f"{self.name}.variance", v, {(0, 0): 1.0})])
        self._emission_weights = _Block(
            np.eye(1, r), [(f"{ma_name}[{j + 1}]", theta[j], {(0, j + 1): 1.0}) for j in range(q)]
        )


class AR(ARMA):
    """An AR(p) component in companion form: its first row ``<name>.coef[i]``, one variance ``<name>.variance``.

    Parameters
    ----------
    ar : int or array, shape (p,)
        The order p (at least 1), or the starting coefficients phi_1..phi_p (zeros for an int).
    variance : float, default 1.0
        The starting variance of the noise.
    initialization : {"stationary", "diffuse"}, default "stationary"
        The stationary covariance at the starting values, or diffuse.
    name : str, default "ar"
        The name.
    """

    def __init__(self, ar, variance=1.0, initialization: str = "stationary", name: str = "ar"):
        Component.__init__(self, name)
        if np.ndim(ar) == 0:
            count("ar", ar, 1)
        elif np.size(ar) == 0:
            raise ValueError("ar: expected an order >= 1 or at least one coefficient, got none")
        self._setup(ar, 0, variance, initialization, f"{self.name}.coef", "")


class Regression(Component):
    """Regression on the model's inputs with fixed coefficients: y_t += beta^T u_t (``emissions.input_weights``).

    The coefficients are free parameters ``<name>.coef[<label>]``; pass the regressors as
    the ``inputs`` of every call of the model (their columns in the order of the
    `Regression` components of the sum).

    Parameters
    ----------
    num_inputs : int
        The number of regressors k, at least 1.
    coef : float or array, shape (k,), default 0.0
        The starting coefficients.
    labels : sequence of str, optional
        The regressors' labels (default ``0``, ``1``, ...).
    name : str, default "regression"
        The name.
    """

    def __init__(self, num_inputs: int, coef=0.0, labels=None, name: str = "regression"):
        super().__init__(name)
        k = count("num_inputs", num_inputs, 1)
        beta = _vector("coef", coef, k)
        names = _labels("labels", labels, k)
        self.input_dim = k
        self._weights = _Block(np.zeros((0, 0)))
        self._cov = _Block(np.zeros((0, 0)))
        self._emission_weights = _Block(np.zeros((1, 0)))
        self._input_weights = _Block(
            np.zeros((1, k)), [(f"{self.name}.coef[{names[i]}]", beta[i], {(0, i): 1.0}) for i in range(k)]
        )


class TimeVaryingRegression(Component):
    """Regression with random-walk coefficients as states: y_t += x_t^T beta_t, beta_t = beta_{t-1} + eta_t.

    The regressors are part of the model (per-step emission weights): it applies to series
    of at most their length, and forecasts need them over the forecast steps too (give
    num_timesteps + num_forecast_timesteps rows). Each coefficient has the variance
    ``<name>.variance[<label>]``; with ``stochastic=False`` the coefficients are constant
    and estimated by the smoother (statsmodels' ``mle_regression=False``). Diffuse.

    The per-step emission weights are frozen; the variances (time-invariant) are fitted
    by EM and the gradient fits from the statistics pooled over the steps.

    Parameters
    ----------
    inputs : array, shape (num_timesteps, k)
        The regressors x_t.
    variance : float or array, shape (k,), default 1.0
        The starting variances.
    stochastic : bool, default True
        Whether the coefficients move.
    labels : sequence of str, optional
        The regressors' labels (default ``0``, ``1``, ...).
    name : str, default "tvreg"
        The name.
    """

    def __init__(self, inputs, variance=1.0, stochastic: bool = True, labels=None, name: str = "tvreg"):
        super().__init__(name)
        x = real_array("inputs", inputs)
        x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or not np.isfinite(x).all():
            raise ValueError(f"inputs: expected a finite array of shape (num_timesteps, k), got shape {x.shape}")
        k = x.shape[1]
        names = _labels("labels", labels, k)
        free = []
        if flag("stochastic", stochastic):
            v = _vector("variance", variance, k)
            if (v <= 0).any():
                raise ValueError(f"variance: expected numbers > 0, got {v.tolist()}")
            free = [(f"{self.name}.variance[{names[i]}]", v[i], {(i, i): 1.0}) for i in range(k)]
        self._weights = _Block(np.eye(k))
        self._cov = _Block(np.zeros((k, k)), free)
        self._emission_weights = _Block(np.zeros((1, k)))
        self._per_step_emission_weights = x[:, None, :]


class DynamicFactor(Component):
    """Common factors f_t (k of them) loading on N series: y_t += Lambda f_t, f_t = A f_{t-1} + eta_t, eta_t ~ N(0, I).

    Identified as usual (Geweke & Zhou 1996; Bai & Wang 2015): the factors' noise is the
    identity and the loadings Lambda (N x k) are lower triangular, their free entries
    ``<name>.loading[i,j]`` for j <= i. A is diagonal (``factor_dynamics="ar1"``,
    ``<name>.ar[i]``) or full (``"var1"``, ``<name>.var[i,j]``). Stationary. Add the series'
    own noise with ``build`` (one variance per series).

    Parameters
    ----------
    num_series : int
        N, at least 1.
    num_factors : int
        k, in [1, N].
    factor_dynamics : {"ar1", "var1"}, default "ar1"
        Independent AR(1) factors, or a VAR(1).
    loadings : array, shape (N, k), optional
        The starting loadings (their upper triangle must be 0); default ones on and below the diagonal.
    transition : array, shape (k, k), optional
        The starting A (diagonal for "ar1"; stable); default 0.5 I.
    name : str, default "factor"
        The name.
    """

    def __init__(
        self,
        num_series: int,
        num_factors: int,
        factor_dynamics: str = "ar1",
        loadings=None,
        transition=None,
        name: str = "factor",
    ):
        super().__init__(name)
        n = count("num_series", num_series, 1)
        k = count("num_factors", num_factors, 1, n)
        if factor_dynamics not in ("ar1", "var1"):
            raise ValueError(f'factor_dynamics: expected "ar1" or "var1", got {factor_dynamics!r}')
        lam = np.tril(np.ones((n, k))) if loadings is None else real_array("loadings", loadings)
        if lam.shape != (n, k) or not np.isfinite(lam).all() or np.any(np.triu(lam, 1) != 0):
            raise ValueError(
                f"loadings: expected a finite lower-triangular array of shape ({n}, {k}), got shape {lam.shape}"
            )
        a = 0.5 * np.eye(k) if transition is None else real_array("transition", transition)
        if a.shape != (k, k) or not np.isfinite(a).all():
            raise ValueError(f"transition: expected a finite array of shape ({k}, {k}), got shape {a.shape}")
        if factor_dynamics == "ar1" and np.any(a != np.diag(np.diag(a))):
            raise ValueError(
                'transition: expected a diagonal array for factor_dynamics="ar1", got off-diagonal entries'
            )
        if _spectral_radius(a) >= 1:
            raise ValueError(f"transition: expected a stable array (spectral radius < 1), got {_spectral_radius(a):g}")
        cells = [(i, i) for i in range(k)] if factor_dynamics == "ar1" else [(i, j) for i in range(k) for j in range(k)]
        label = (lambda i, j: f"ar[{i}]") if factor_dynamics == "ar1" else (lambda i, j: f"var[{i},{j}]")
        self._diffuse = False
        self._weights = _Block(
            np.zeros((k, k)), [(f"{self.name}.{label(i, j)}", a[i, j], {(i, j): 1.0}) for i, j in cells]
        )
        self._cov = _Block(np.eye(k))
        self._emission_weights = _Block(
            np.zeros((n, k)),
            [
                (f"{self.name}.loading[{i},{j}]", lam[i, j], {(i, j): 1.0})
                for i in range(n)
                for j in range(min(i + 1, k))
            ],
        )


def _assemble(blocks: list, shape: tuple) -> tuple:
    """vec(M) = fixed + design beta of the whole matrix from (block, row offset, column offset)."""
    rows, cols = shape
    fixed = np.zeros(shape)
    designs, names, start = [], [], []
    for block, i0, j0 in blocks:
        r, c = block.shape
        fixed[i0 : i0 + r, j0 : j0 + c] = block.fixed
        d = np.zeros((rows * cols, block.design.shape[1]))
        for j in range(c):
            d[(j0 + j) * rows + i0 : (j0 + j) * rows + i0 + r] = block.design[j * r : (j + 1) * r]
        designs.append(d)
        names.extend(block.names)
        start.extend(block.start)
    design = np.concatenate(designs, axis=1) if designs else np.zeros((rows * cols, 0))
    return fixed, design, names, np.array(start, dtype=float)


class StructuralModel(LinearGaussianSSM):
    """One `lgssm.LinearGaussianSSM` assembled from structural components (``(a + b).build()``).

    The state stacks the components' states in order; F, Q are block diagonal, H and D
    the components' blocks side by side, R diagonal with one variance per series. Every
    parameter is constrained (`lgssm.constraints.linear`) to its components' form with
    readable names, the biases are zero, and the initialization is exact diffuse for the
    diffuse components' states, with the stationary components' covariance at the
    starting values in ``initial.cov`` (computed once: fits do not track it; see the module
    docstring). ``initialize`` returns the starting parameters and their properties;
    ``fit_em``, ``fit_lbfgs``, `lgssm.FitResult` and everything else of the base class work
    on them.

    Parameters
    ----------
    components : Component
        A component or a `Sum` of them, with distinct names, all emitting to the same
        number of series, at least one with states.
    observation_variance : float or array, shape (emission_dim,), or None, default 1.0
        The starting variances of the observation noise (``observation.variance``, or
        ``observation.variance[i]`` for several series); None for no observation noise.

    Attributes
    ----------
    parts : tuple of Component
        The components, in state order.
    constraints : dict
        Parameter name (``"dynamics.weights"``, ``"dynamics.cov"``, ``"emissions.weights"``,
        ``"emissions.input_weights"``, ``"emissions.cov"``) -> its
        `lgssm.constraints.Constraint`, for the parameters with free values (the others
        are frozen).

    Raises
    ------
    ValueError
        If the components are not components, share a name (or use ``observation``),
        differ in their number of series or have no state, or free emission weights
        (ARMA, factors) meet per-step ones (`TimeVaryingRegression`).
    """

    def __init__(self, components, observation_variance=1.0):
        if not isinstance(components, Component):
            raise ValueError(
                f"components: expected an lgssm.structural component or sum, got {type(components).__name__}"
            )
        parts = components.parts
        names = [c.name for c in parts]
        clash = sorted({x for x in names if names.count(x) > 1 or x == "observation"})
        if clash:
            raise ValueError(f"components: expected distinct names other than 'observation', got {clash} (give name=)")
        dims = {c.emission_dim for c in parts}
        if len(dims) != 1:
            raise ValueError(f"components: expected the same number of series in every component, got {sorted(dims)}")
        (p,) = dims
        n = sum(c.state_dim for c in parts)
        m = sum(c.input_dim for c in parts)
        if n == 0:
            raise ValueError("components: expected at least one component with states, got only regressions")
        self.parts = parts
        self._slices, at = {}, 0
        for c in parts:
            self._slices[c.name] = slice(at, at + c.state_dim)
            at += c.state_dim

        offsets = [(c, self._slices[c.name].start) for c in parts]
        assembled = {
            "dynamics.weights": _assemble([(c._weights, i, i) for c, i in offsets], (n, n)),
            "dynamics.cov": _assemble([(c._cov, i, i) for c, i in offsets], (n, n)),
            "emissions.weights": _assemble([(c._emission_weights, 0, i) for c, i in offsets], (p, n)),
        }
        regs, at = [], 0
        for c in parts:
            if c.input_dim:
                regs.append((c._input_weights, 0, at))
                at += c.input_dim
        assembled["emissions.input_weights"] = _assemble(regs, (p, m))
        if observation_variance is None:
            assembled["emissions.cov"] = _assemble([], (p, p))
        else:
            r = _vector("observation_variance", observation_variance, p)
            if (r <= 0).any():
                raise ValueError(f"observation_variance: expected numbers > 0, got {r.tolist()}")
            label = (lambda i: "observation.variance") if p == 1 else (lambda i: f"observation.variance[{i}]")
            assembled["emissions.cov"] = _assemble(
                [(_Block(np.zeros((p, p)), [(label(i), r[i], {(i, i): 1.0}) for i in range(p)]), 0, 0)], (p, p)
            )

        self.constraints = {}  # parameter -> lgssm.constraints.Constraint, for the parameters with free values
        values = {}
        for key, (fixed, design, labels, start) in assembled.items():
            if labels:
                self.constraints[key] = constraints.linear(fixed, design, names=labels)
                values[key] = self.constraints[key].matrix(start)
            else:
                values[key] = fixed
        steps = [c._per_step_emission_weights for c in parts if c._per_step_emission_weights is not None]
        if steps:
            if "emissions.weights" in self.constraints:
                raise ValueError(
                    "components: expected no free emission weights (ARMA, DynamicFactor) together with a "
                    "TimeVaryingRegression (per-step emission weights), got both"
                )
            lengths = {s.shape[0] for s in steps}
            if len(lengths) != 1:
                raise ValueError(f"components: expected regressors of one length, got lengths {sorted(lengths)}")
            h = np.repeat(values["emissions.weights"][None], lengths.pop(), axis=0)
            for c in parts:
                if c._per_step_emission_weights is not None:
                    h[:, :, self._slices[c.name]] = c._per_step_emission_weights
            values["emissions.weights"] = h

        diffuse = np.zeros(n, dtype=bool)
        for c in parts:
            diffuse[self._slices[c.name]] = c._diffuse
        super().__init__(
            n,
            p,
            m,
            has_dynamics_bias=False,
            has_emissions_bias=False,
            initialization=np.eye(n)[:, diffuse] if diffuse.any() else "known",
        )
        self._start = LinearGaussianSSM.initialize(
            self,
            initial_mean=np.zeros(n),
            initial_covariance=self._stationary_cov(values["dynamics.weights"], values["dynamics.cov"]),
            dynamics_weights=values["dynamics.weights"],
            dynamics_covariance=values["dynamics.cov"],
            emission_weights=values["emissions.weights"],
            emission_input_weights=values["emissions.input_weights"],
            emission_covariance=values["emissions.cov"],
        )
        props = self._start[1]
        props.initial.mean.trainable = props.initial.cov.trainable = False
        props.dynamics.input_weights.trainable = False
        for key in assembled:
            group, field = key.split(".")
            prop = getattr(getattr(props, group), field)
            prop.constraint = self.constraints.get(key)
            prop.trainable = key in self.constraints

    def _stationary_cov(self, f: np.ndarray, q: np.ndarray) -> np.ndarray:
        """initial.cov: the stationary covariance of each stationary component's block at F and Q, zero elsewhere."""
        cov = np.zeros((self.state_dim, self.state_dim))
        for c in self.parts:
            s = self._slices[c.name]
            if not c._diffuse and c.state_dim:
                cov[s, s] = stationary_initialization(f[s, s], q[s, s])
        return cov

    def with_stationary_initialization(self, params):
        """The parameters with the stationary components' initial covariance recomputed at their own F and Q.

        The fits keep ``initial.cov`` as it was built (the stationary covariance at the
        starting values); this gives the exact stationary log likelihood at fitted values,
        and a start for a refit from there.

        Parameters
        ----------
        params : ParamsLGSSM
            Parameters of this model, e.g. fitted.

        Returns
        -------
        ParamsLGSSM
            A copy with ``initial.cov`` = blockdiag of P_c = F_c P_c F_c^T + Q_c over the
            stationary components (zero for the diffuse ones).

        Raises
        ------
        ValueError
            If a stationary component's block of F is not stable.
        """
        out = copy.deepcopy(params)
        f, q = np.asarray(params.dynamics.weights, dtype=float), np.asarray(params.dynamics.cov, dtype=float)
        out.initial.cov = self._stationary_cov(f, q)
        return out

    def initialize(self, key=0):  # type: ignore[override]
        """The starting parameters of the components and their constrained properties.

        Parameters
        ----------
        key : int, default 0
            Not used (the starting values are the components'); kept so that the model
            can stand wherever a `lgssm.LinearGaussianSSM` is initialized by key
            (`lgssm.compare`).

        Returns
        -------
        params : ParamsLGSSM
            The starting values (a fresh copy).
        props : ParamsLGSSM
            Their properties: the free values constrained by name, everything else frozen.
        """
        return copy.deepcopy(self._start)

    def values(self, params) -> dict:
        """The free values of ``params`` by name, and the quantities derived from them (a cycle's damping, ...).

        Parameters
        ----------
        params : ParamsLGSSM
            Parameters of this model, e.g. fitted.

        Returns
        -------
        dict
            Name -> float: the free values in the order of
            `lgssm.diagnostics.parameter_table` (without its ``dynamics.cov.`` prefixes),
            then the derived quantities.

        Raises
        ------
        ValueError
            If a parameter has the wrong shape.
        """
        out: dict = {}
        for key, c in self.constraints.items():
            group, field = key.split(".")
            out.update(zip(c.names, (float(b) for b in c.free_values(getattr(getattr(params, group), field)))))
        for part in self.parts:
            out.update(part.derived(out))
        return out

    def components(self, params, emissions, inputs=None) -> dict:
        """The smoothed contribution of each component to the emissions.

        For a component c with states z_c and emission block H_c (and D_c for a
        regression): E[H_c z_{c,t} + D_c u_t | y] = H_c m_{c,t|T} + D_c u_t and its
        variance diag(H_c P_{cc,t|T} H_c^T), from the smoother; the contributions sum to
        the smoothed emission mean E[H z_t + D u_t | y] (`posterior_predictive`'s mean).

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters.
        emissions : array, shape (num_timesteps, emission_dim) or (num_timesteps,)
            One sequence, NaN where missing.
        inputs : array, shape (num_timesteps, input_dim), optional
            The regressors of the `Regression` components.

        Returns
        -------
        dict
            Component name -> (mean, variance), each of shape (num_timesteps, emission_dim).

        Raises
        ------
        ValueError
            If the emissions are not one sequence, or the parameters or data are invalid.
        """
        if isinstance(emissions, (list, tuple)) or np.ndim(emissions) > 2:
            raise ValueError(
                f"emissions: expected one sequence (num_timesteps, emission_dim), got {np.shape(emissions)}"
            )
        post = self.smoother(params, emissions, inputs)
        mean, cov = np.asarray(post.smoothed_means), np.asarray(post.smoothed_covariances)
        t = mean.shape[0]
        h = np.asarray(params.emissions.weights, dtype=float)
        h = np.broadcast_to(h, (t, *h.shape[-2:])) if h.ndim == 2 else h[:t]  # per-step H may extend past the data
        d = np.asarray(params.emissions.input_weights, dtype=float)
        u = np.zeros((t, self.input_dim)) if inputs is None else np.asarray(inputs, dtype=float).reshape(t, -1)
        out, at = {}, 0
        for c in self.parts:
            s = self._slices[c.name]
            hc = h[:, :, s]
            m = np.einsum("tpn,tn->tp", hc, mean[:, s])
            v = np.einsum("tpn,tnk,tpk->tp", hc, cov[:, s, s], hc)
            if c.input_dim:
                m = m + u[:, at : at + c.input_dim] @ d[:, at : at + c.input_dim].T
                at += c.input_dim
            out[c.name] = (m, v)
        return out
