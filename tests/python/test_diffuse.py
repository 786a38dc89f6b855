"""Exact diffuse initialization (docs/initialization.md): the diffuse log likelihood,
filtered and smoothed moments against statsmodels' exact diffuse filter and smoother
(UnobservedComponents(use_exact_diffuse=True)) on the Nile local level, a local linear
trend and a trend + seasonal model, each with missing data; the limit kappa -> infinity
of a known initialization N(m, P_* + kappa A A^T), computed densely in mpmath at
kappa = 1e30; Durbin & Koopman's published Nile estimates; monotone EM; the refusals.
About 3 s."""

import numpy as np
import pytest

import lgssm

from conftest import assert_close
from mp_reference import MpReference

sm = pytest.importorskip(
    "statsmodels.api", exc_type=ImportError, reason="statsmodels (extra `peers`) cannot be imported"
)
from statsmodels.tsa.statespace.structural import UnobservedComponents  # noqa: E402

NILE = sm.datasets.nile.load_pandas().data["volume"].to_numpy(dtype=float)
KAPPA = 1e30


def _trend_data(seasonal: bool) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = np.cumsum(np.cumsum(0.3 * rng.standard_normal(60))) + rng.standard_normal(60)
    return x + np.tile([3.0, -1.0, -2.0, 0.0], 15) if seasonal else x


def _missing(y, idx):
    y = y.copy()
    y[idx] = np.nan
    return y


# (name, data, UnobservedComponents arguments, parameters)
CASES = [
    ("nile", NILE, dict(level="llevel"), [15099.0, 1469.1]),
    ("nile-missing", _missing(NILE, [0, 1, 20, 21, 50]), dict(level="llevel"), [15099.0, 1469.1]),
    ("trend", _trend_data(False), dict(level="lltrend"), [1.0, 0.5, 0.1]),
    ("trend-missing", _missing(_trend_data(False), [0, 2, 3, 30]), dict(level="lltrend"), [1.0, 0.5, 0.1]),
    ("seasonal", _trend_data(True), dict(level="lltrend", seasonal=4), [1.0, 0.5, 0.1, 0.2]),
    (
        "seasonal-missing",
        _missing(_trend_data(True), [1, 4, 5, 40]),
        dict(level="lltrend", seasonal=4),
        [1.0, 0.5, 0.1, 0.2],
    ),
]


def _case_model(y, uc_args, values):
    """statsmodels' smoothing results and lgssm's model and parameters of the same system."""
    mod = UnobservedComponents(y, use_exact_diffuse=True, **uc_args)
    res = mod.smooth(values)
    s = mod.ssm
    n = s.k_states
    sel = s["selection"]
    kwargs = dict(
        initial_mean=np.zeros(n),
        initial_covariance=np.zeros((n, n)),
        dynamics_weights=s["transition"],
        dynamics_covariance=sel @ s["state_cov"] @ sel.T,
        emission_weights=s["design"],
        emission_covariance=s["obs_cov"],
    )
    model = lgssm.LinearGaussianSSM(n, 1, initialization="diffuse")
    params, _ = model.initialize(**kwargs)
    return res, model, params, kwargs


@pytest.mark.parametrize("name, y, uc_args, values", CASES, ids=[c[0] for c in CASES])
def test_matches_statsmodels_exact_diffuse(name, y, uc_args, values):
    res, model, params, _ = _case_model(y, uc_args, values)
    post = model.smoother(params, y[:, None])
    assert post.num_diffuse_timesteps == res.nobs_diffuse
    assert post.marginal_loglik == pytest.approx(res.llf, rel=1e-10)
    assert model.marginal_log_prob(params, y[:, None]) == pytest.approx(res.llf, rel=1e-10)
    assert_close(post.filtered_means, res.filtered_state.T, "post.filtered_means", rtol=1e-8)
    assert_close(post.smoothed_means, res.smoothed_state.T, "post.smoothed_means", rtol=1e-8)
    assert_close(
        post.smoothed_covariances, res.smoothed_state_cov.transpose(2, 0, 1), "post.smoothed_covariances", rtol=1e-8
    )
    d = res.nobs_diffuse  # after the diffuse period the filtered covariances are proper
    filtered = res.filtered_state_cov.transpose(2, 0, 1)[d:]
    assert_close(post.filtered_covariances[d:], filtered, "filtered_covariances", rtol=1e-8)


def _dense_limit(kwargs, a, y):
    """log p(y) + (q/2) log kappa and the smoothed moments under N(m, P_* + kappa A A^T) at
    kappa = 1e30, in mpmath (the error of the limit is O(1 / kappa))."""
    dense = dict(kwargs, initial_covariance=np.asarray(kwargs["initial_covariance"]) + KAPPA * a @ a.T)
    n = a.shape[0]
    p = np.shape(dense["emission_weights"])[0]
    dense.setdefault("dynamics_bias", np.zeros(n))
    dense.setdefault("dynamics_input_weights", np.zeros((n, 0)))
    dense.setdefault("emission_bias", np.zeros(p))
    dense.setdefault("emission_input_weights", np.zeros((p, 0)))
    ref = MpReference(dense, y, dps=90)
    return ref, ref.marginal_loglik + 0.5 * np.linalg.matrix_rank(a) * np.log(KAPPA)


DENSE_T2 = np.array([[1.0, 1.0], [0.0, 1.0]])
DENSE_R = np.array([[1.0, 0.4, 0.1], [0.4, 2.0, 0.3], [0.1, 0.3, 0.5]])


def _bivariate_case():
    """A local linear trend seen through three correlated emissions, partly missing."""
    rng = np.random.default_rng(3)
    y = rng.standard_normal((12, 3)).cumsum(0)
    y[0, 1] = np.nan
    y[2] = np.nan
    y[5, [0, 2]] = np.nan
    kwargs = dict(
        initial_mean=np.array([0.5, -0.2]),
        initial_covariance=np.zeros((2, 2)),
        dynamics_weights=DENSE_T2,
        dynamics_covariance=np.diag([0.3, 0.1]),
        emission_weights=np.array([[1.0, 0.0], [1.0, 0.5], [0.2, 1.0]]),
        emission_covariance=DENSE_R,
    )
    return kwargs, y


def _partial_case():
    """Trend + AR(1): the trend's two states diffuse, the stationary AR state known."""
    rng = np.random.default_rng(5)
    y = rng.standard_normal((10, 2)).cumsum(0)
    y[1, 0] = np.nan
    f = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.6]])
    q = np.diag([0.2, 0.05, 1.0])
    cov0 = np.zeros((3, 3))
    cov0[2, 2] = lgssm.stationary_initialization(f[2:, 2:], q[2:, 2:])[0, 0]
    kwargs = dict(
        initial_mean=np.zeros(3),
        initial_covariance=cov0,
        dynamics_weights=f,
        dynamics_covariance=q,
        emission_weights=np.array([[1.0, 0.0, 1.0], [0.5, 0.0, -1.0]]),
        emission_covariance=np.diag([0.4, 0.3]),
    )
    return kwargs, y, np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])


@pytest.mark.parametrize("case", ["seasonal-missing", "bivariate-correlated-R", "partial"])
def test_limit_of_known_initialization(case):
    if case == "seasonal-missing":
        _, y, uc_args, values = CASES[-1]
        _, _, _, kwargs = _case_model(y[:16], uc_args, values)
        y = y[:16, None]
        a = np.eye(len(kwargs["initial_mean"]))
    elif case == "bivariate-correlated-R":
        kwargs, y = _bivariate_case()
        a = np.eye(2)
    else:
        kwargs, y, a = _partial_case()
    n, p = np.shape(kwargs["emission_weights"])[1], y.shape[1]
    model = lgssm.LinearGaussianSSM(n, p, initialization=a)
    params, _ = model.initialize(**kwargs)
    post = model.smoother(params, y)
    ref, loglik = _dense_limit(kwargs, a, y)
    assert post.marginal_loglik == pytest.approx(loglik, rel=1e-10)
    assert_close(post.smoothed_means, ref.smoothed_means, "smoothed_means", rtol=1e-9)
    assert_close(post.smoothed_covariances, ref.smoothed_covariances, "post.smoothed_covariances", rtol=1e-9)
    assert_close(
        post.smoothed_cross_covariances, ref.smoothed_cross_covariances, "post.smoothed_cross_covariances", rtol=1e-9
    )


def _nile_model(eps=10000.0, eta=1000.0):
    """The local level (random walk plus noise) with a diffuse level, at the given variances."""
    model = lgssm.LinearGaussianSSM(1, 1, initialization="diffuse", has_dynamics_bias=False, has_emissions_bias=False)
    params, props = model.initialize(
        initial_mean=np.zeros(1),
        initial_covariance=np.zeros((1, 1)),
        dynamics_weights=np.eye(1),
        dynamics_covariance=[[eta]],
        emission_weights=np.eye(1),
        emission_covariance=[[eps]],
    )
    props.dynamics.weights.trainable = props.emissions.weights.trainable = False
    return model, params, props


def test_nile_mle_reproduces_durbin_koopman():
    """DK 2012, Sec. 2.10.3 / 7.2: sigma2_eps = 15099, sigma2_eta = 1469.1 (the maximum is at
    1469.18, which they give truncated), by L-BFGS and by EM."""
    model, params, props = _nile_model()
    y = NILE[:, None]
    fitted, _ = model.fit_lbfgs(params, props, y, verbose=False)
    em, history = model.fit_em(params, props, y, num_iters=1500, verbose=False)
    dk_model, dk_params, _ = _nile_model(15099.0, 1469.1)
    published = dk_model.marginal_log_prob(dk_params, y)
    for p in (fitted, em):
        eps, eta = p.emissions.cov[0, 0], p.dynamics.cov[0, 0]
        assert round(eps) == 15099
        assert np.floor(eta * 10) / 10 == pytest.approx(1469.1)
        assert model.marginal_log_prob(p, y) >= published
    assert np.diff(history).min() > -1e-8 * np.abs(history).max()


def test_em_monotone_trend_seasonal():
    _, y, uc_args, values = CASES[-1]
    _, model, params, _ = _case_model(y, uc_args, values)
    props = model._default_props(params)
    for field in ("weights", "bias"):
        getattr(props.dynamics, field).trainable = False
    props.emissions.bias.trainable = False
    _, history = model.fit_em(params, props, y[:, None], num_iters=30, verbose=False)
    assert np.diff(history).min() > -1e-8 * np.abs(history).max()
    assert history[-1] > history[0]


def test_known_initialization_unchanged():
    model = lgssm.LinearGaussianSSM(2, 1)
    explicit = lgssm.LinearGaussianSSM(2, 1, initialization="known")
    params, _ = model.initialize(key=1)
    y = np.random.default_rng(0).standard_normal((20, 1))
    assert model.marginal_log_prob(params, y) == explicit.marginal_log_prob(params, y)
    assert model.filter(params, y).num_diffuse_timesteps == 0


def test_refusals():
    model, params, props = _nile_model()
    with pytest.raises(ValueError, match="initial.diffuse"):
        model.sample(params, 0, 10)
    props.initial.mean.trainable = True
    with pytest.raises(ValueError, match="initial.mean.*diffuse"):
        model.fit_em(params, props, NILE[:, None], num_iters=2, verbose=False)
    with pytest.raises(ValueError, match="not identify the diffuse"):
        model.smoother(params, np.full((3, 1), np.nan))
    with pytest.raises(ValueError, match="initialization"):
        lgssm.LinearGaussianSSM(1, 1, initialization="exact")
    with pytest.raises(ValueError, match="initialization"):
        lgssm.LinearGaussianSSM(2, 1, initialization=np.ones((3, 1)))


def test_forecast_and_posterior_predictive():
    model, params, _ = _nile_model(15099.0, 1469.1)
    y = NILE[:, None]
    mod = UnobservedComponents(NILE, "llevel", use_exact_diffuse=True)
    res = mod.smooth([15099.0, 1469.1])
    _, _, emission_means, emission_covariances = model.forecast(params, y, 5)
    sm_fc = res.get_forecast(5)
    assert_close(emission_means[:, 0], sm_fc.predicted_mean, "emission_means", rtol=1e-10)
    assert_close(emission_covariances[:, 0, 0], sm_fc.var_pred_mean, "emission_covariances", rtol=1e-10)
    means, _ = model.posterior_predictive(params, y)
    assert_close(means[:, 0], res.smoothed_state[0], "means", rtol=1e-10)


def test_stationary_initialization():
    f = np.array([[0.5, 0.3], [-0.2, 0.8]])
    q = np.array([[1.0, 0.2], [0.2, 0.5]])
    p = lgssm.stationary_initialization(f, q)
    assert_close(p, f @ p @ f.T + q, "P", rtol=1e-12)
    with pytest.raises(ValueError, match="dynamics.weights.*stable"):
        lgssm.stationary_initialization(np.array([[1.0]]), np.eye(1))
