"""Continuous-time models: closed forms, the inverse map, recovery by EM and by
exact-gradient L-BFGS, with uniform and irregular observation times."""
import numpy as np
import pytest

import lgssm
from lgssm import _core
from lgssm.continuous import discretize, undiscretize
from lgssm.utils import monotonically_increasing

F_TRUE = np.array([[0.0, 1.0], [-4.0, -0.4]])  # a damped oscillator
Q_TRUE = np.array([[0.05, 0.01], [0.01, 0.3]])


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("theta,sigma,s", [(0.1, 0.3, 0.5), (0.7, 1.0, 0.05), (3.0, 2.0, 2.0)])
def test_ornstein_uhlenbeck_closed_form(theta, sigma, s):
    a, cov = discretize([[-theta]], [[sigma ** 2]], s)
    np.testing.assert_allclose(a, [[np.exp(-theta * s)]], rtol=1e-13)
    np.testing.assert_allclose(cov, [[sigma ** 2 * (1 - np.exp(-2 * theta * s)) / (2 * theta)]], rtol=1e-12)


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
    np.testing.assert_allclose(m.smoother(params, y, times=times).smoothed_means,
                               discrete.smoother(dparams, y).smoothed_means, rtol=1e-12)
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
    core, cprops = m._core_params(start), m._core_props(props)
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
    truth, props = m.initialize(0, drift=F_TRUE, diffusion_covariance=Q_TRUE, emission_weights=h,
                                emission_bias=rng.normal(size=(T, p)),
                                emission_covariance=np.stack([np.diag(rng.uniform(0.05, 0.2, p)) for _ in range(T)]),
                                emission_input_weights=np.zeros((T, p, 0)))
    ys = np.stack([m.sample(truth, k, num_timesteps=T, dt=0.1)[1] for k in range(500)])
    return m, truth, props, ys


def test_uniform_em_recovers_drift_and_diffusion(oscillator_per_step):
    m, truth, props, ys = oscillator_per_step
    T, p = ys.shape[1], ys.shape[2]
    # H_k are the known sensor model (they fix the latent basis); u_k, R_k, F, Q_c are learned.
    start, _ = m.initialize(1, emission_weights=truth.emissions.weights, emission_bias=np.zeros((T, p)),
                            emission_covariance=np.stack([0.1 * np.eye(p)] * T),
                            emission_input_weights=np.zeros((T, p, 0)))
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
    truth, props = m.initialize(0, drift=F_TRUE, diffusion_covariance=Q_TRUE, emission_weights=h,
                                emission_bias=rng.normal(size=3), emission_covariance=0.02 * np.eye(3))
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
    start, _ = m.initialize(1, emission_weights=start.emissions.weights, drift=[[-0.3, 0.7], [-3.0, -1.0]],
                            diffusion_covariance=np.diag([0.1, 0.6]),
                            emission_bias=np.nanmean(np.concatenate(ys), axis=0))
    assert rel(start.dynamics.drift, F_TRUE) > 0.25 and rel(start.dynamics.diffusion_cov, Q_TRUE) > 0.9
    fitted, lls = m.fit_em(start, props, ys, times=times, num_iters=25, verbose=False)
    assert monotonically_increasing(lls, atol=1e-8, rtol=1e-8)
    assert rel(fitted.dynamics.drift, F_TRUE) < 0.05
    assert rel(fitted.dynamics.diffusion_cov, Q_TRUE) < 0.05
