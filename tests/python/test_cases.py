"""The measured failures of ../shared/cases (issue 12), kept as tests: each reproducer's model,
checked against an independent reference (the mpmath dense joint Gaussian, closed forms,
statsmodels when installed)."""

import numpy as np
import pytest

from lgssm import LinearGaussianSSM

from mp_reference import MpReference


def q0_model():
    """shared/cases/q0_smoother.py: deterministic dynamics (Q = 0), 18 steps."""
    F = np.array([[0.87, 0.17], [0.2, -0.07]])
    H = np.array([[0.1, 0.3]])
    model = LinearGaussianSSM(2, 1)
    params, _ = model.initialize(
        0, dynamics_weights=F, dynamics_covariance=np.zeros((2, 2)), emission_weights=H, emission_covariance=[[0.1]]
    )
    _, y = model.sample(params, key=34, num_timesteps=18)
    kwargs = dict(
        initial_mean=np.zeros(2),
        initial_covariance=np.eye(2),
        dynamics_weights=F,
        dynamics_bias=np.zeros(2),
        dynamics_input_weights=np.zeros((2, 0)),
        dynamics_covariance=np.zeros((2, 2)),
        emission_weights=H,
        emission_bias=np.zeros(1),
        emission_input_weights=np.zeros((1, 0)),
        emission_covariance=np.array([[0.1]]),
    )
    return model, params, y, kwargs


def test_q0_smoother_matches_the_high_precision_reference():
    model, params, y, kwargs = q0_model()
    post = model.smoother(params, y)
    ref = MpReference(kwargs, y, None)
    # Was: smoothed_covariances[0] = [[-2.9e6, 1.7e7], [1.7e7, -9.7e7]].
    np.testing.assert_allclose(post.smoothed_covariances, ref.smoothed_covariances, rtol=0, atol=1e-12)
    np.testing.assert_allclose(post.smoothed_cross_covariances, ref.smoothed_cross_covariances, rtol=0, atol=1e-12)
    np.testing.assert_allclose(post.smoothed_means, ref.smoothed_means, rtol=0, atol=1e-12)
    assert np.linalg.eigvalsh(post.smoothed_covariances).min() > -1e-15


def test_q0_smoother_matches_statsmodels():
    mlemodel = pytest.importorskip("statsmodels.tsa.statespace.mlemodel")
    model, params, y, kwargs = q0_model()
    post = model.smoother(params, y)
    mod = mlemodel.MLEModel(y, k_states=2)
    mod["design"], mod["obs_cov"], mod["selection"] = kwargs["emission_weights"], [[0.1]], np.eye(2)
    mod["transition"], mod["state_cov"] = kwargs["dynamics_weights"], np.zeros((2, 2))
    mod.initialize_known(np.zeros(2), np.eye(2))
    mod.ssm.tolerance = 0
    ref = mod.smooth([])
    np.testing.assert_allclose(post.smoothed_covariances, ref.smoothed_state_cov.transpose(2, 0, 1), atol=1e-10)
    np.testing.assert_allclose(post.smoothed_means, ref.smoothed_state.T, atol=1e-10)


def one_state_model(P0, R, H):
    p = len(R)
    model = LinearGaussianSSM(1, p)
    params, _ = model.initialize(
        0,
        initial_mean=[0.0],
        initial_covariance=[[P0]],
        dynamics_weights=[[1.0]],
        dynamics_covariance=[[1.0]],
        emission_weights=np.reshape(H, (p, 1)),
        emission_bias=np.zeros(p),
        emission_covariance=np.diag(R),
    )
    return model, params


def closed_form_loglik(P0, R, H, y):
    """log N(y; 0, H P0 H^T + R) for one step."""
    S = P0 * np.outer(H, H) + np.diag(R)
    import mpmath

    mpmath.mp.dps = 50
    Sm = mpmath.matrix(S.tolist())
    ym = mpmath.matrix(list(y))
    quad = (ym.T * mpmath.lu_solve(Sm, ym))[0]
    return float(-(len(y) * mpmath.log(2 * mpmath.pi) + mpmath.log(mpmath.det(Sm)) + quad) / 2)


@pytest.mark.parametrize(
    "P0, R, H, y",
    [
        (100.0, [1e-12, 1e-2], [1.0, 1.0], [300.0, 300.1]),  # was -449.09, exact -452.34
        (1.0, [1e-14], [1.0], [1.0]),  # was off by 2e-3 relative
    ],
    ids=["small_and_large_R", "tiny_R"],
)
def test_small_r_log_likelihood_does_not_cancel(P0, R, H, y):
    model, params = one_state_model(P0, R, H)
    exact = closed_form_loglik(P0, R, H, y)
    ll = model.marginal_log_prob(params, np.array([y]))
    assert ll == pytest.approx(exact, rel=1e-12)


def test_overflowing_data_give_minus_infinity_not_nan():
    model, params = one_state_model(1.0, [1.0], [1.0])
    with pytest.warns(RuntimeWarning, match="rescale the emissions"):
        ll = model.marginal_log_prob(params, np.array([[1e160]]))
    assert ll == -np.inf
    assert np.isfinite(model.smoother(params, np.array([[1e160]])).smoothed_means).all()


def test_posterior_predictive_covariances_are_exactly_symmetric():
    rng = np.random.default_rng(5)
    model = LinearGaussianSSM(3, 4)
    params, _ = model.initialize(1)
    _, y = model.sample(params, key=2, num_timesteps=50)
    y[rng.random(y.shape) < 0.2] = np.nan
    _, covs = model.posterior_predictive(params, y, full_covariance=True)
    assert np.array_equal(covs, covs.transpose(0, 2, 1))


def test_smoother_log_likelihood_equals_marginal_log_prob():
    model, params, y, _ = q0_model()
    assert model.smoother(params, y).marginal_loglik == model.marginal_log_prob(params, y)


def test_exactly_observed_component_posterior_samples_satisfy_it():
    """An exactly observed component (zero row/column of R) pins H_0 z_t = y_0 in every draw."""
    model = LinearGaussianSSM(2, 2)
    H = np.array([[1.0, 0.5], [0.0, 1.0]])
    params, _ = model.initialize(
        0, emission_weights=H, emission_covariance=np.diag([0.0, 0.3]), dynamics_covariance=0.1 * np.eye(2)
    )
    _, y = model.sample(params, key=4, num_timesteps=30)
    draws = model.posterior_sample(key=7, params=params, emissions=y, num_samples=20)
    bias = np.asarray(params.emissions.bias)
    np.testing.assert_allclose(draws @ H[0] + bias[0], np.broadcast_to(y[:, 0], draws.shape[:2]), atol=1e-9)


def tiny_r_model():
    """State 2, emission 3, R = 1e-14 diag(1, 2, 3) against emissions of size ~10: the state
    is pinned by the data to ~1e-7 and each residual y - H E[z] is ~1e-7 of the emissions."""
    rng = np.random.default_rng(12)
    n, p, T = 2, 3, 10
    kwargs = dict(
        initial_mean=np.array([10.0, -5.0]),
        initial_covariance=np.eye(n),
        dynamics_weights=np.array([[0.9, 0.1], [-0.2, 0.8]]),
        dynamics_bias=np.zeros(n),
        dynamics_input_weights=np.zeros((n, 0)),
        dynamics_covariance=0.1 * np.eye(n),
        emission_weights=rng.standard_normal((p, n)),
        emission_bias=np.array([1.0, 0.0, -1.0]),
        emission_input_weights=np.zeros((p, 0)),
        emission_covariance=1e-14 * np.diag([1.0, 2.0, 3.0]),
    )
    model = LinearGaussianSSM(n, p)
    params, props = model.initialize(0, **{k: v for k, v in kwargs.items() if "input" not in k})
    _, y = model.sample(params, key=3, num_timesteps=T)
    return model, params, props, y, kwargs


def test_tiny_r_m_step_matches_the_high_precision_reference():
    """The R-step of EM under tiny R is the mean of E[(y - H z - d)(y - H z - d)^T | y], a
    quantity ~1e-14 of the emissions' second moments: statistics kept as raw moments
    (yy - W yx^T - yx W^T + W xx W^T) lose all its digits; residual statistics keep them."""
    model, params, props, y, kwargs = tiny_r_model()
    for name in (
        "initial.mean",
        "initial.cov",
        "dynamics.weights",
        "dynamics.bias",
        "dynamics.cov",
        "emissions.weights",
        "emissions.bias",
    ):
        group, field = name.split(".")
        getattr(getattr(props, group), field).trainable = False
    ref = MpReference(kwargs, y, None)
    fitted = model.m_step(params, props, model.sufficient_stats(params, y))
    np.testing.assert_allclose(
        fitted.emissions.cov,
        ref.emission_scatter / len(y),
        rtol=1e-6,
        atol=1e-6 * np.abs(ref.emission_scatter / len(y)).max(),
    )
