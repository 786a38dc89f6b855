"""Continuous-time models: closed forms, the inverse map, recovery by EM and by
exact-gradient L-BFGS, with uniform and irregular observation times; stiff
drifts against a 50-digit reference; hostile input."""

import pathlib
import re

import mpmath
import numpy as np
import pytest

import lgssm
from lgssm import _core
from lgssm.continuous import discretize, undiscretize
from lgssm.utils import monotonically_increasing

F_TRUE = np.array([[0.0, 1.0], [-4.0, -0.4]])  # a damped oscillator
Q_TRUE = np.array([[0.05, 0.01], [0.01, 0.3]])


def rel(a, b):
    """Norm-wise relative error of a against b (absolute when b is 0)."""
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a)


@pytest.mark.parametrize("theta,sigma,s", [(0.1, 0.3, 0.5), (0.7, 1.0, 0.05), (3.0, 2.0, 2.0)])
def test_ornstein_uhlenbeck_closed_form(theta, sigma, s):
    a, cov = discretize([[-theta]], [[sigma**2]], s)
    np.testing.assert_allclose(a, [[np.exp(-theta * s)]], rtol=1e-13)
    np.testing.assert_allclose(cov, [[sigma**2 * (1 - np.exp(-2 * theta * s)) / (2 * theta)]], rtol=1e-12)


def test_damped_rotation_closed_form():
    a_, w, q, s = 0.3, 2.0, 0.5, 0.7
    a, cov = discretize([[-a_, -w], [w, -a_]], q * np.eye(2), s)
    rot = np.array([[np.cos(w * s), -np.sin(w * s)], [np.sin(w * s), np.cos(w * s)]])
    np.testing.assert_allclose(a, np.exp(-a_ * s) * rot, atol=1e-13)
    np.testing.assert_allclose(cov, q * (1 - np.exp(-2 * a_ * s)) / (2 * a_) * np.eye(2), atol=1e-13)


def test_round_trip():
    a, cov = discretize(F_TRUE, Q_TRUE, 0.1)
    f, q = undiscretize(a, cov, 0.1)
    np.testing.assert_allclose(f, F_TRUE, atol=1e-10)
    np.testing.assert_allclose(q, Q_TRUE, atol=1e-10)


def test_no_real_logarithm_is_an_error():
    with pytest.raises(ValueError, match=r"^weights: expected .*negative real axis.*got eigenvalue"):
        undiscretize(-0.5 * np.eye(2), np.eye(2), 1.0)


def test_indefinite_diffusion_is_projected_with_a_warning():
    f = np.array([[-0.5, 0.3], [-0.2, -0.4]])
    a, cov = discretize(f, np.diag([1.0, 0.0]), 0.5)
    w, v = np.linalg.eigh(cov)
    cov = cov - 0.5 * w[0] * np.outer(v[:, 0], v[:, 0])
    with pytest.warns(RuntimeWarning, match="nearest positive semidefinite.*Frobenius change"):
        _, q = undiscretize(a, cov, 0.5)
    assert np.linalg.eigvalsh(q).min() >= -1e-12


def test_times_or_dt_exactly_one():
    m = lgssm.ContinuousTimeSSM(2, 3)
    params, _ = m.initialize(0)
    y = np.zeros((5, 3))
    with pytest.raises(ValueError, match="times, dt: expected exactly one"):
        m.marginal_log_prob(params, y)
    with pytest.raises(ValueError, match="times, dt: expected exactly one"):
        m.marginal_log_prob(params, y, times=np.arange(5.0), dt=1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        m.marginal_log_prob(params, y, times=[0.0, 1.0, 1.0, 2.0, 3.0])


def test_inference_is_that_of_the_equivalent_discrete_model():
    m = lgssm.ContinuousTimeSSM(2, 3)
    params, _ = m.initialize(0, drift=F_TRUE, diffusion_covariance=Q_TRUE)
    times = np.array([0.0, 0.1, 0.35, 0.4, 1.0, 1.05])
    _, y = m.sample(params, 1, times=times)
    y[2, 1] = np.nan
    discrete = lgssm.LinearGaussianSSM(2, 3)
    dparams = m.discrete_params(params, times)
    np.testing.assert_allclose(
        m.smoother(params, y, times=times).smoothed_means, discrete.smoother(dparams, y).smoothed_means, rtol=1e-12
    )
    # Forecasting to future times = the discrete forecast over the extended time grid.
    future = np.array([1.2, 1.7])
    fm = m.forecast(params, y, forecast_times=future, times=times)
    dm = discrete.forecast(m.discrete_params(params, np.r_[times, future]), y, 2)
    for a, b in zip(fm, dm):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_gradient_matches_finite_differences_irregular_times():
    rng = np.random.default_rng(3)
    m = lgssm.ContinuousTimeSSM(2, 3)
    truth, props = m.initialize(0, drift=F_TRUE, diffusion_covariance=Q_TRUE)
    times = [np.cumsum(np.r_[0, rng.exponential(0.1, 7)]) for _ in range(3)]
    ys = [m.sample(truth, k, times=t)[1] for k, t in enumerate(times)]
    start, _ = m.initialize(1)
    core, cprops = m.core_params(start), m.core_props(props)
    x = _core.continuous_to_unconstrained(core, cprops)
    inputs = [np.zeros((len(y), 0)) for y in ys]

    def f(v):
        p = _core.continuous_from_unconstrained(v, core, cprops)
        return _core.continuous_log_prob_and_gradient(p, cprops, ys, inputs, times)[0]

    _, grad = _core.continuous_log_prob_and_gradient(core, cprops, ys, inputs, times)
    h = 1e-5
    fd = np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    assert np.max(np.abs(grad - fd) / np.maximum(1.0, np.abs(fd))) < 1e-6


@pytest.fixture(scope="module")
def oscillator_per_step():
    """500 sequences x 50 uniform steps (dt 0.1), 3-D emissions with per-step H_k, u_k, R_k."""
    rng = np.random.default_rng(0)
    n, p, T = 2, 3, 50
    m = lgssm.ContinuousTimeSSM(n, p)
    h = rng.normal(size=(T, p, n))
    truth, props = m.initialize(
        0,
        drift=F_TRUE,
        diffusion_covariance=Q_TRUE,
        emission_weights=h,
        emission_bias=rng.normal(size=(T, p)),
        emission_covariance=np.stack([np.diag(rng.uniform(0.05, 0.2, p)) for _ in range(T)]),
        emission_input_weights=np.zeros((T, p, 0)),
    )
    ys = np.stack([m.sample(truth, k, num_timesteps=T, dt=0.1)[1] for k in range(500)])
    return m, truth, props, ys


def test_uniform_em_recovers_drift_and_diffusion(oscillator_per_step):
    m, truth, props, ys = oscillator_per_step
    T, p = ys.shape[1], ys.shape[2]
    # H_k are the known sensor model (they fix the latent basis); u_k, R_k, F, Q_c are learned.
    start, _ = m.initialize(
        1,
        emission_weights=truth.emissions.weights,
        emission_bias=np.zeros((T, p)),
        emission_covariance=np.stack([0.1 * np.eye(p)] * T),
        emission_input_weights=np.zeros((T, p, 0)),
    )
    props.emissions.weights.trainable = False
    fitted, lls = m.fit_em(start, props, ys, dt=0.1, num_iters=100, verbose=False)
    assert monotonically_increasing(lls, atol=1e-8, rtol=1e-8)
    assert rel(fitted.dynamics.drift, F_TRUE) < 0.05
    assert rel(fitted.dynamics.diffusion_cov, Q_TRUE) < 0.05
    assert np.array_equal(fitted.emissions.weights, truth.emissions.weights)


@pytest.fixture(scope="module")
def oscillator_irregular():
    """200 sequences x 50 steps with exponential gaps (mean 0.1), emission noise 0.02 I."""
    rng = np.random.default_rng(0)
    m = lgssm.ContinuousTimeSSM(2, 3)
    h = rng.normal(size=(3, 2))
    truth, props = m.initialize(
        0,
        drift=F_TRUE,
        diffusion_covariance=Q_TRUE,
        emission_weights=h,
        emission_bias=rng.normal(size=3),
        emission_covariance=0.02 * np.eye(3),
    )
    times = [np.cumsum(np.r_[0, rng.exponential(0.1, 49)]) for _ in range(200)]
    ys = [m.sample(truth, k, times=t)[1] for k, t in enumerate(times)]
    props.emissions.weights.trainable = False
    start, _ = m.initialize(1, emission_weights=h)
    return m, props, ys, times, start


def test_irregular_lbfgs_recovers_drift_and_diffusion(oscillator_irregular):
    m, props, ys, times, start = oscillator_irregular
    fitted, lls = m.fit_lbfgs(start, props, ys, times=times, max_iters=300, verbose=False)
    assert np.all(np.isfinite(lls)) and lls[-1] > lls[0]
    assert rel(fitted.dynamics.drift, F_TRUE) < 0.05
    assert rel(fitted.dynamics.diffusion_cov, Q_TRUE) < 0.05


def test_irregular_generalized_em_recovers_drift_and_diffusion(oscillator_irregular):
    m, props, ys, times, start = oscillator_irregular
    # F 30% and Q_c 100% off, the emission bias at the data mean (from a zero
    # bias EM needs far more iterations: see docs/continuous-time.md).
    start, _ = m.initialize(
        1,
        emission_weights=start.emissions.weights,
        drift=[[-0.3, 0.7], [-3.0, -1.0]],
        diffusion_covariance=np.diag([0.1, 0.6]),
        emission_bias=np.nanmean(np.concatenate(ys), axis=0),
    )
    assert rel(start.dynamics.drift, F_TRUE) > 0.25 and rel(start.dynamics.diffusion_cov, Q_TRUE) > 0.9
    fitted, lls = m.fit_em(start, props, ys, times=times, num_iters=25, verbose=False)
    assert monotonically_increasing(lls, atol=1e-8, rtol=1e-8)
    assert rel(fitted.dynamics.drift, F_TRUE) < 0.05
    assert rel(fitted.dynamics.diffusion_cov, Q_TRUE) < 0.05


# -- stiff drifts ----------------------------------------------------------------


def reference_discretization(f, q, h):
    """(A, Sigma) to 50 digits: mpmath.expm of the Van Loan block at the step
    h / 2^j with |F|_1 h / 2^j <= 32 (the precision raised by the digits that
    Sigma = X12 X11^T cancels there), then j exact doublings of the pair."""
    n = len(f)
    j = max(0, int(np.ceil(np.log2(max(np.abs(f).sum(0).max() * h, 1e-300) / 32))))
    with mpmath.workdps(50 + 30):
        step = mpmath.mpf(h) / mpmath.mpf(2) ** j
        block = mpmath.zeros(2 * n)
        for r in range(n):
            for c in range(n):
                block[r, c] = mpmath.mpf(f[r][c]) * step
                block[r, n + c] = mpmath.mpf(q[r][c]) * step
                block[n + r, n + c] = -mpmath.mpf(f[c][r]) * step
        x = mpmath.expm(block)
        a, sigma = x[:n, :n], x[:n, n:] * x[:n, :n].T
        for _ in range(j):
            a, sigma = a * a, a * sigma * a.T + sigma
        return (np.array(a.tolist(), dtype=float), np.array(sigma.tolist(), dtype=float))


def stiff_grid():
    """2x2 drifts with eigenvalue magnitudes 1e-3 .. 1e4: diagonal, rotated
    (normal), non-normal (V D V^-1) and oscillating; steps 1e-9 .. 1e3."""
    v = np.array([[1.0, 0.5], [0.3, 1.0]])
    rot = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    for fast in (1e-3, 1.0, 1e2, 1e4):
        slow = 1e-3 if fast > 1e-3 else 2e-3
        d = np.diag([-fast, -slow])
        yield f"diagonal {fast:g}", d
        yield f"normal {fast:g}", rot @ d @ rot.T
        yield f"non-normal {fast:g}", v @ d @ np.linalg.inv(v)
    for w in (1e-3, 1.0, 1e2):
        yield f"oscillating {w:g}", np.array([[-1e-3, -w], [w, -1e-3]])
        yield f"stiff oscillator {w:g}", np.array([[0.0, 1.0], [-w * w, -1e4]])


STEPS = (1e-9, 1e-6, 1e-3, 1.0, 1e3)
Q_GRID = np.array([[1.0, 0.3], [0.3, 0.5]])


@pytest.mark.parametrize("name,f", list(stiff_grid()), ids=[n for n, _ in stiff_grid()])
def test_stiff_drifts_match_a_high_precision_reference(name, f):
    for h in STEPS:
        a, sigma = discretize(f, Q_GRID, h)
        a_ref, sigma_ref = reference_discretization(f.tolist(), Q_GRID.tolist(), h)
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(sigma))
        assert np.array_equal(sigma, sigma.T) and np.linalg.eigvalsh(sigma).min() >= 0
        # 1e-10 everywhere. Where |F|_1 h is large (up to 1.1e7 here: eigenvalues -1e4
        # and -1e-3 at h = 1e3) float64 rounding in the doublings alone moves the result
        # by about 2^-53 |F|_1 h (it gave 2.9e-10 and 4.9e-11); there lgssm computes in
        # long double.
        assert rel(a, a_ref) <= 1e-10, (name, h, rel(a, a_ref))
        assert rel(sigma, sigma_ref) <= 1e-10, (name, h, rel(sigma, sigma_ref))


@pytest.mark.parametrize("f", [-1e-3, -0.1, -1.0, -10.0, -720.0, -1e3, -1e4])
def test_stiff_scalar_ornstein_uhlenbeck_closed_form(f):
    for h in STEPS:
        a, cov = discretize([[f]], [[2.0]], h)
        np.testing.assert_allclose(a, [[np.exp(f * h)]], rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(cov, [[2.0 * np.expm1(2 * f * h) / (2 * f)]], rtol=1e-10)


def test_reproducers_of_the_stiff_failures():
    _, cov = discretize([[-1000.0]], [[1.0]], 1.0)  # was NaN
    np.testing.assert_allclose(cov, [[(1 - np.exp(-2000)) / 2000]], rtol=1e-14)
    assert np.all(np.isfinite(discretize([[-720.0]], [[1.0]], 1.0)[1]))  # was inf
    v = np.array([[1, 0.5], [0.3, 1]])
    f = v @ np.diag([-1e3, -1e-3]) @ np.linalg.inv(v)
    _, cov = discretize(f, np.eye(2), 0.1)  # was norm 1e24, eigenvalue -7e22
    _, ref = reference_discretization(f.tolist(), np.eye(2).tolist(), 0.1)
    assert rel(cov, ref) < 1e-12 and np.linalg.eigvalsh(cov).min() > 0


def test_gaps_of_1e300_reach_the_stationary_covariance():
    m = lgssm.ContinuousTimeSSM(2, 3)
    params, _ = m.initialize(0, drift=-0.1 * np.eye(2), diffusion_covariance=Q_TRUE)
    times = np.array([0.0, 1e300, 2e300])
    d = m.discrete_params(params, times)  # was "dynamics.weights: expected finite values"
    assert np.array_equal(d.dynamics.weights, np.zeros((2, 2)))
    np.testing.assert_allclose(d.dynamics.cov, Q_TRUE / 0.2, rtol=1e-13)
    _, y = m.sample(params, 1, times=times)
    assert np.isfinite(m.marginal_log_prob(params, y, times=times))


def test_stiff_model_filters_and_fits():
    """A stiff model (eigenvalues -1e3 and -0.5) is sampled, filtered and fitted."""
    m = lgssm.ContinuousTimeSSM(2, 2)
    v = np.array([[1, 0.5], [0.3, 1]])
    f = v @ np.diag([-1e3, -0.5]) @ np.linalg.inv(v)
    params, props = m.initialize(0, drift=f, diffusion_covariance=np.eye(2))
    times = np.cumsum(np.random.default_rng(0).exponential(0.5, 40))
    _, y = m.sample(params, 1, times=times)
    assert np.isfinite(m.marginal_log_prob(params, y, times=times))
    fitted, lls = m.fit_lbfgs(params, props, y, times=times, max_iters=5, verbose=False)
    assert np.all(np.isfinite(lls)) and lls[-1] >= lls[0]


def test_unstable_overflow_names_the_argument():
    with pytest.raises(ValueError, match=r"^drift: expected a drift whose transition .* finite"):
        discretize(np.eye(2), np.eye(2), 1e3)
    m = lgssm.ContinuousTimeSSM(2, 3)
    params, _ = m.initialize(0, drift=np.eye(2))
    with pytest.raises(ValueError, match=r"^times: expected gaps over which .* finite"):
        m.marginal_log_prob(params, np.zeros((2, 3)), times=[0.0, 1e3])


# -- hostile input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "drift,diffusion,pattern",
    [
        (-np.eye(2), np.eye(3), r"^diffusion_covariance: expected shape \(2, 2\)"),  # was a double free
        (-np.eye(3), np.eye(2), r"^diffusion_covariance: expected shape \(3, 3\)"),  # was accepted
        (np.ones((2, 3)), np.eye(2), r"^drift: expected a square matrix"),
        (-np.eye(2), -np.eye(2), r"^diffusion_covariance: expected a symmetric positive semidefinite"),
        (-np.eye(2), [[1.0, 0.5], [0.0, 1.0]], r"^diffusion_covariance: expected a symmetric"),
        (-np.eye(2), np.eye(2) * 1j, r"^diffusion_covariance: expected an array of real numbers"),
        ([[-1, 0], [0]], np.eye(2), r"^drift: expected an array of real numbers"),
        (np.zeros(2), np.eye(2), r"^drift: expected a 2-D array"),
        ([[np.nan, 0], [0, -1]], np.eye(2), r"^drift: expected finite values"),
    ],
)
def test_discretize_rejects_bad_arguments_by_name(drift, diffusion, pattern):
    with pytest.raises(ValueError, match=pattern):
        discretize(drift, diffusion, 1.0)


@pytest.mark.parametrize("dt", [0.0, -1.0, np.inf, "1", True])
def test_discretize_rejects_a_bad_dt(dt):
    with pytest.raises(ValueError, match=r"^dt: expected"):
        discretize(-np.eye(2), np.eye(2), dt)


def test_undiscretize_rejects_a_bad_cov():
    with pytest.raises(ValueError, match=r"^cov: expected a symmetric positive semidefinite"):
        undiscretize(0.5 * np.eye(2), -np.eye(2), 1.0)
    with pytest.raises(ValueError, match=r"^cov: expected shape \(2, 2\)"):
        undiscretize(0.5 * np.eye(2), np.eye(3), 1.0)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(diffusion_covariance=-np.eye(2)), r"^diffusion_covariance: expected a symmetric positive semidefinite"),
        (dict(diffusion_covariance=[[1.0, 0.2], [0.0, 1.0]]), r"^diffusion_covariance: expected a symmetric"),
        (dict(diffusion_covariance=np.eye(3)), r"^diffusion_covariance: expected shape \(2, 2\)"),
        (dict(drift=np.eye(3)), r"^drift: expected shape \(2, 2\)"),
        (dict(drift="fast"), r"^drift: expected an array of real numbers"),
    ],
)
def test_initialize_names_the_keyword(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        lgssm.ContinuousTimeSSM(2, 3).initialize(0, **kwargs)


@pytest.fixture(scope="module")
def small_fit():
    m = lgssm.ContinuousTimeSSM(2, 3)
    params, props = m.initialize(0, drift=F_TRUE, diffusion_covariance=Q_TRUE)
    times = np.cumsum(np.random.default_rng(1).exponential(0.1, 8))
    _, y = m.sample(params, 1, times=times)
    return m, params, props, y, times


@pytest.mark.parametrize(
    "method,option,value,pattern",
    [
        (
            "fit_lbfgs",
            "max_iters",
            -1,
            r"^max_iters: expected an integer in \[0, 2147483646\], got -1$",
        ),  # ran with no cap
        ("fit_lbfgs", "max_iters", 2.5, r"^max_iters: expected an integer in \[0, 2147483646\], got"),
        ("fit_lbfgs", "max_iters", "10", r"^max_iters: expected an integer in \[0, 2147483646\], got"),
        ("fit_lbfgs", "max_iters", True, r"^max_iters: expected an integer in \[0, 2147483646\], got"),
        ("fit_lbfgs", "gradient_tolerance", -1.0, r"^gradient_tolerance: expected a finite number >= 0, got -1.0$"),
        ("fit_lbfgs", "function_tolerance", "0", r"^function_tolerance: expected a finite number >= 0"),
        ("fit_em", "num_iters", -1, r"^num_iters: expected an integer >= 0, got -1$"),
        ("fit_em", "num_iters", 2.5, r"^num_iters: expected an integer >= 0, got"),
        ("fit_em", "tolerance", -1e-3, r"^tolerance: expected a finite number >= 0, got -0.001$"),
        ("fit_em", "m_step_iters", 0, r"^m_step_iters: expected an integer >= 1, got 0$"),
        ("fit_em", "m_step_iters", 1.5, r"^m_step_iters: expected an integer >= 1, got"),
        ("fit_em", "accelerate", "no", r"^accelerate: expected True or False"),
    ],
)
def test_fit_options_are_validated_by_name(small_fit, method, option, value, pattern):
    m, params, props, y, times = small_fit
    with pytest.raises(ValueError, match=pattern):
        getattr(m, method)(params, props, y, times=times, verbose=False, **{option: value})


@pytest.mark.parametrize("length", [4, 6])
def test_times_of_another_length_than_the_data_are_an_error(length):
    m = lgssm.ContinuousTimeSSM(2, 3)
    params, props = m.initialize(0)
    y = np.zeros((5, 3))
    times = 0.5 * np.arange(length)  # evenly spaced: one transition fits any length
    for call in (
        lambda: m.marginal_log_prob(params, y, times=times),
        lambda: m.smoother(params, y, times=times),
        lambda: m.fit_em(params, props, y, times=times, num_iters=1, verbose=False),
    ):
        with pytest.raises(ValueError, match=rf"^times: expected shape \(5,\).*got \({length},\)"):
            call()
    with pytest.raises(ValueError, match=r"^times\[1\]: expected shape \(5,\)"):
        m.marginal_log_prob(params, [y, y], times=[0.5 * np.arange(5), times])
    with pytest.raises(ValueError, match=r"^times: expected num_timesteps = 5 times, got"):
        m.sample(params, 0, times=times, num_timesteps=5)


def test_readme_continuous_time_block_runs_alone():
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "ContinuousTimeSSM" in b]
    exec(compile(block, "README.md", "exec"), {})
