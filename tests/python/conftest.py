"""Model variants shared by the Python tests, and the matrix-comparison helper.

Every variant is a small model with fixed-seed random parameters and data, kept
as plain NumPy (a dict of ``LinearGaussianSSM.initialize`` keyword arguments)
so that the dense reference never sees lgssm objects. Tests that take a
``variant`` argument run over all variants; ``forecast_variant`` over those whose
per-step parameters extend over the forecast horizon; ``variant, form`` over
variants and the three ways of passing sequences ("single": one (T, p) array,
"list": a list of arrays of different lengths, "padded": a NaN-padded
(B, T, p) array).
"""

import os
import sys
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dense_reference import entry  # noqa: E402

RTOL = 1e-9
FORMS = ("single", "list", "padded")


# --------------------------------------------------------------------------
# The comparison helper.


def _fmt(a):
    return np.array2string(np.asarray(a), precision=17, max_line_width=160, threshold=400)


def assert_close(actual, expected, name, rtol=RTOL, atol=None):
    """Assert |actual - expected| <= atol + rtol |expected| elementwise, NaN where expected is NaN.

    atol defaults to rtol * max|expected| (entries that are zero by cancellation
    are compared on the scale of the array). On failure prints the max absolute
    and relative difference, where it is, and both arrays and their difference.
    `actual` must be a NumPy array or a Python/NumPy float.
    """
    assert isinstance(actual, (np.ndarray, float, np.floating)), (
        f"{name}: expected a NumPy array or float, got {type(actual).__name__}"
    )
    a = np.asarray(actual)
    e = np.asarray(expected, dtype=float)
    assert a.dtype == np.float64, f"{name}: expected dtype float64, got {a.dtype}"
    assert a.shape == e.shape, f"{name}: expected shape {e.shape}, got {a.shape}"
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        raise AssertionError(
            f"{name}: NaN pattern differs; NaN in actual only at {np.argwhere(nan_a & ~nan_e).tolist()[:10]}, "
            f"in expected only at {np.argwhere(nan_e & ~nan_a).tolist()[:10]}\n"
            f"actual:\n{_fmt(a)}\nexpected:\n{_fmt(e)}"
        )
    fin = ~nan_e
    if not fin.any():
        return
    scale = float(np.max(np.abs(e[fin])))
    if atol is None:
        atol = rtol * scale
    diff = np.where(fin, np.abs(a - np.where(fin, e, 0.0)), 0.0)
    tol = atol + rtol * np.abs(np.where(fin, e, 0.0))
    bad = diff > tol
    if bad.any() or not np.all(np.isfinite(a[fin])):
        rel = diff / np.maximum(np.abs(np.where(fin, e, 0.0)), np.finfo(float).tiny)
        worst = np.unravel_index(np.argmax(diff - tol), diff.shape) if diff.ndim else ()
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {int(fin.sum())} entries differ beyond "
            f"atol={atol:.3g} + rtol={rtol:.3g}*|expected|; max abs diff {diff.max():.3e}, "
            f"max rel diff {rel.max():.3e}, worst at {tuple(int(i) for i in worst)}: "
            f"actual {a[worst]!r} vs expected {e[worst]!r}\n"
            f"actual:\n{_fmt(a)}\nexpected:\n{_fmt(e)}\ndifference:\n{_fmt(a - e)}"
        )


# --------------------------------------------------------------------------
# Random building blocks.


def central_differences(f, x, step=1e-5):
    """The central-difference gradient of a scalar f at x, steps step * max(1, |x_i|)."""
    fd = np.empty(x.size)
    for i in range(x.size):
        h = step * max(1.0, abs(x[i]))
        e = np.zeros(x.size)
        e[i] = h
        fd[i] = (f(x + e) - f(x - e)) / (2 * h)
    return fd


def spd(rng, d, scale=1.0, rank=None):
    """A random symmetric positive (semi)definite d x d matrix."""
    if rank is not None:
        A = rng.normal(size=(d, rank))
        return scale * (A @ A.T) / rank
    A = rng.normal(size=(d, d))
    return scale * (A @ A.T / d + 0.2 * np.eye(d))


def stable(rng, n, radius=0.9):
    A = rng.normal(size=(n, n))
    return radius * A / np.max(np.abs(np.linalg.eigvals(A)))


def simulate(rng, params, num_timesteps, inputs):
    """One joint draw of (states, emissions) by the recursions (plain NumPy)."""
    n = len(params["initial_mean"])
    p = np.shape(params["emission_weights"])[-2]
    u = np.zeros((num_timesteps, 0)) if inputs is None else inputs
    z = np.zeros((num_timesteps, n))
    y = np.zeros((num_timesteps, p))
    z[0] = rng.multivariate_normal(params["initial_mean"], params["initial_covariance"], method="eigh")
    for t in range(num_timesteps):
        if t > 0:
            k = t - 1
            mean = (
                entry(params, "dynamics_weights", k) @ z[t - 1]
                + entry(params, "dynamics_input_weights", k) @ u[t]
                + entry(params, "dynamics_bias", k)
            )
            z[t] = rng.multivariate_normal(mean, entry(params, "dynamics_covariance", k), method="eigh")
        mean = (
            entry(params, "emission_weights", t) @ z[t]
            + entry(params, "emission_input_weights", t) @ u[t]
            + entry(params, "emission_bias", t)
        )
        y[t] = rng.multivariate_normal(mean, entry(params, "emission_covariance", t))
    return z, y


# --------------------------------------------------------------------------
# Variants.


@dataclass
class Sequence:
    emissions: np.ndarray  # (T, p), NaN = missing
    inputs: np.ndarray = None  # (T, m) or None
    forecast_inputs: np.ndarray = None  # (K, m) or None


@dataclass
class Variant:
    name: str
    state_dim: int
    emission_dim: int
    input_dim: int
    params: dict  # initialize() keyword arguments, all of them
    init_kwargs: dict  # what is passed to initialize()
    seq: Sequence
    batch: list = field(default_factory=list)  # Sequences of different lengths
    num_forecast_timesteps: int = 3
    forecast: bool = True  # per-step params cover the forecast horizon
    has_dynamics_bias: bool = True
    has_emissions_bias: bool = True

    def __repr__(self):
        return f"Variant({self.name})"


def make_params(rng, n, p, m, *, steps=None, diag_R=False, zero_bias=False, singular=False):
    """Random parameters; `steps` = (num_dynamics_entries, num_emission_entries) for per-step."""

    def per(count, fn):
        return fn() if count is None else np.stack([fn() for _ in range(count)])

    dyn_steps, em_steps = (None, None) if steps is None else steps
    R = (lambda: np.diag(rng.uniform(0.2, 1.5, size=p))) if diag_R else (lambda: spd(rng, p, 0.5))
    params = {
        "initial_mean": rng.normal(size=n),
        "initial_covariance": spd(rng, n, 1.0, rank=max(n - 1, 1) if singular else None),
        "dynamics_weights": per(dyn_steps, lambda: stable(rng, n)),
        "dynamics_bias": per(dyn_steps, lambda: (0.0 if zero_bias else 0.5) * rng.normal(size=n)),
        "dynamics_input_weights": per(dyn_steps, lambda: rng.normal(size=(n, m))),
        "dynamics_covariance": per(dyn_steps, lambda: spd(rng, n, 0.3, rank=1 if singular else None)),
        "emission_weights": per(em_steps, lambda: rng.normal(size=(p, n))),
        "emission_bias": per(em_steps, lambda: (0.0 if zero_bias else 1.0) * rng.normal(size=p)),
        "emission_input_weights": per(em_steps, lambda: rng.normal(size=(p, m))),
        "emission_covariance": per(em_steps, R),
    }
    return params


def _sequence(rng, params, T, K, m, missing):
    u = 2.0 * rng.normal(size=(T, m)) if m else None
    fu = 2.0 * rng.normal(size=(K, m)) if m else None
    _, y = simulate(rng, params, T, u)
    y[missing(rng, T, y.shape[1])] = np.nan
    return Sequence(y, u, fu)


def _no_missing(rng, T, p):
    return np.zeros((T, p), bool)


def _random_missing(rng, T, p):
    # Patterns that repeat and alternate, so any caching keyed on the pattern is exercised.
    patterns = [np.zeros(p, bool), rng.random(p) < 0.4, rng.random(p) < 0.6]
    patterns[1][0] = True
    patterns[2][-1] = True
    order = rng.integers(0, 3, size=T)
    return np.array([patterns[i] for i in order])


def _missing_steps(rng, T, p):
    miss = np.zeros((T, p), bool)
    miss[0] = True  # first step wholly missing
    miss[T // 2] = True  # a middle step
    miss[T - 1] = True  # last step wholly missing
    miss[1, 0] = True  # and one component
    return miss


def _build(
    name,
    n,
    p,
    m,
    *,
    seed,
    T=7,
    K=3,
    steps=None,
    diag_R=False,
    missing=_no_missing,
    lengths=None,
    forecast=True,
    has_bias=True,
    singular=False,
):
    rng = np.random.default_rng(seed)
    if steps == "horizon":
        steps = (T + K - 1, T + K)
    elif steps == "exact":
        steps = (T - 1, T)
    params = make_params(rng, n, p, m, steps=steps, diag_R=diag_R, zero_bias=not has_bias, singular=singular)
    init_kwargs = dict(params)
    if not has_bias:
        del init_kwargs["dynamics_bias"], init_kwargs["emission_bias"]
    seq = _sequence(rng, params, T, K, m, missing)
    if lengths is None:
        lengths = [T, T - 3, T - 1] if T > 3 else []
    batch = [_sequence(rng, params, L, K, m, missing) for L in lengths]
    return Variant(
        name,
        n,
        p,
        m,
        params,
        init_kwargs,
        seq,
        batch,
        K,
        forecast,
        has_dynamics_bias=has_bias,
        has_emissions_bias=has_bias,
    )


def _variants():
    v = [
        _build("time_invariant", 2, 3, 0, seed=101),
        _build("time_varying", 3, 2, 2, seed=102, steps="horizon"),
        _build("time_varying_exact_length", 2, 3, 1, seed=103, steps="exact", forecast=False),
        _build("inputs_and_biases", 3, 3, 2, seed=104),
        _build("diagonal_R", 3, 4, 0, seed=105, diag_R=True),
        _build("full_R_emission_dim_above_state_dim", 2, 6, 1, seed=106),
        _build("emission_dim_below_state_dim", 4, 2, 1, seed=107),
        _build("missing_components", 3, 4, 1, seed=108, T=9, missing=_random_missing),
        _build(
            "missing_components_diagonal_R_time_varying",
            2,
            4,
            1,
            seed=109,
            T=8,
            steps="horizon",
            diag_R=True,
            missing=_random_missing,
        ),
        _build("wholly_missing_steps", 2, 3, 1, seed=110, T=8, missing=_missing_steps),
        _build("singular_initial_and_dynamics_cov", 3, 2, 1, seed=111, singular=True),
        _build("no_biases", 2, 3, 1, seed=112, has_bias=False),
        _build("single_step", 2, 2, 1, seed=113, T=1),
        _build("long_missing", 2, 2, 1, seed=114, T=40, missing=_random_missing, lengths=[40, 25, 33]),
    ]
    return {x.name: x for x in v}


VARIANTS = _variants()


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "variant" in names and "form" in names:
        cases = [(v, f) for v in VARIANTS.values() for f in FORMS if f == "single" or v.batch]
        metafunc.parametrize("variant,form", cases, ids=[f"{v.name}-{f}" for v, f in cases])
    elif "variant" in names:
        metafunc.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
    elif "forecast_variant" in names and "form" in names:
        cases = [(v, f) for v in VARIANTS.values() if v.forecast for f in FORMS if f == "single" or v.batch]
        metafunc.parametrize("forecast_variant,form", cases, ids=[f"{v.name}-{f}" for v, f in cases])


def ar1_plus_noise():
    """The coverage studies' model: an AR(1) state (coefficient 0.8, noise variance
    0.5) seen with noise of variance 0.3, its initial state known; returns (model,
    truth, props with the three free, their true values in parameter_table's order)."""
    import lgssm

    model = lgssm.LinearGaussianSSM(1, 1, has_dynamics_bias=False, has_emissions_bias=False)
    truth, props = model.initialize(
        initial_mean=np.zeros(1),
        initial_covariance=np.eye(1),
        dynamics_weights=0.8 * np.eye(1),
        dynamics_covariance=np.array([[0.5]]),
        emission_weights=np.eye(1),
        emission_covariance=np.array([[0.3]]),
    )
    for p in (props.initial.mean, props.initial.cov, props.emissions.weights):
        p.trainable = False
    return model, truth, props, np.array([0.8, 0.5, 0.3])
