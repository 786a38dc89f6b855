"""Standard errors (lgssm.diagnostics.information, FitResult.cov_params / bse / summary).

The exact score against lgssm's Fisher-identity gradients (``log_prob_gradient`` and
the natural gradient), the exact Hessian against Richardson-extrapolated central
differences of the score over a battery of models (inputs, biases, constraints,
diagonal and full covariances, frozen parameters, missing data, several sequences),
and the OIM, OPG and Hessian standard errors against statsmodels on the Nile local
level, an ARMA(2,1) and a dynamic factor model, all with known initial distributions.
"""

import numpy as np
import pytest

import lgssm
from lgssm import _core
from lgssm import diagnostics as dg
from lgssm.constraints import diagonal, pattern
from lgssm.params import default_props, param_groups, props_to_core
from test_constraints import constrained_case

from conftest import VARIANTS, ar1_plus_noise, assert_close

RTOL_SM = 1e-6  # statsmodels differentiates numerically (complex step); 4 significant digits asked, ~1e-8 seen


def frozen_props(params, free):
    props = default_props(params)
    for group, g in param_groups(props):
        for name, prop in vars(g).items():
            prop.trainable = f"{group}.{name}" in free
    return props


def variant_case(name, structure=None, frozen=()):
    v = VARIANTS[name]
    model = lgssm.LinearGaussianSSM(v.state_dim, v.emission_dim, input_dim=v.input_dim)
    params, props = model.initialize(0, **v.init_kwargs)
    for group, g in param_groups(props):
        for field, prop in vars(g).items():
            if f"{group}.{field}" in frozen:
                prop.trainable = False
    if structure:
        props.emissions.cov.structure = structure
    seqs = [v.seq, *v.batch]
    return model, params, props, [s.emissions for s in seqs], [s.inputs for s in seqs] if v.input_dim else None


def cases():
    model, params, props, y, u = constrained_case()
    params = lgssm.params.from_core(_core.project_constraints(model.core_params(params), props_to_core(props)), params)
    from test_cov_constraints import trend_ar_case

    ar = trend_ar_case()
    deterministic = (ar[0], ar[1], ar[2], ar[3][:60], None)  # Q = diag(level, 0, ar): a fixed zero variance
    m, truth, p = ar[0], ar[1], ar[2]
    noisy = lgssm.params.from_core(m.core_params(truth), truth)
    noisy.dynamics.cov = np.diag([0.05, 0.01, 0.3])
    p_noisy = default_props(noisy)
    for group, g in param_groups(p):
        for field, prop in vars(g).items():
            setattr(getattr(p_noisy, group), field, prop)
    p_noisy.dynamics.cov = lgssm.params.ParameterProperties(constraint=diagonal(["level", "slope", "ar"]))
    return {
        "cov_constraints": (m, noisy, p_noisy, ar[3][:60], None),
        "cov_constraints_deterministic": deterministic,
        "inputs_and_biases": variant_case("inputs_and_biases"),
        "diagonal_R_frozen": variant_case("diagonal_R", "diagonal", frozen=("initial.mean", "emissions.weights")),
        "missing_components": variant_case("missing_components"),
        "wholly_missing_steps": variant_case("wholly_missing_steps", frozen=("initial.cov",)),
        "constraints": (model, params, props, y[:40], u[:40]),
    }


CASES = cases()


def with_theta(model, params, props, theta):
    core = _core.with_free_parameters(np.asarray(theta, dtype=float), model.core_params(params), props_to_core(props))
    return lgssm.params.from_core(core, params)


@pytest.mark.parametrize("name", [n for n in CASES if n != "cov_constraints_deterministic"])  # PD covariances
def test_score_is_fishers_identity(name):
    """score_k = <natural gradient, d params / d theta_k> (the affine map's columns)."""
    model, params, props, y, u = CASES[name]
    info = dg.information(model, params, props, y, u, hessian=False)
    core, b = model._batch(params, y, u, covariances=0)
    stats = _core.sufficient_stats(core, b.emissions, b.inputs, False, 1)
    grad = lgssm.params.from_core(_core.log_prob_natural_gradient(core, stats, None), params)
    theta = info.estimates
    base = with_theta(model, params, props, theta)
    expected = np.empty(theta.size)
    for k in range(theta.size):
        e = theta.copy()
        e[k] += 1.0
        moved = with_theta(model, params, props, e)
        total = 0.0
        for (_, g), (_, m), (_, p0) in zip(param_groups(grad), param_groups(moved), param_groups(base)):
            for f in vars(g):
                total += float(
                    np.sum(np.asarray(getattr(g, f)) * (np.asarray(getattr(m, f)) - np.asarray(getattr(p0, f))))
                )
        expected[k] = total
    assert_close(info.score, expected, f"{name} score", rtol=1e-8)
    assert_close(info.marginal_loglik, float(np.sum(model.marginal_log_prob(params, y, u))), "loglik", rtol=1e-12)
    assert len(info.names) == theta.size == dg.num_parameters(model, params, props)


def test_score_equals_log_prob_gradient_without_covariances():
    """With the covariances frozen, theta is the unconstrained vector itself (betas and entries)."""
    model, params, props, y, u = CASES["constraints"]
    props = frozen_props(
        params,
        (
            "initial.mean",
            "dynamics.weights",
            "dynamics.bias",
            "dynamics.input_weights",
            "emissions.weights",
            "emissions.bias",
        ),
    )
    c = constrained_case()[2]
    props.emissions.weights.constraint = c.emissions.weights.constraint
    props.dynamics.weights.constraint = c.dynamics.weights.constraint
    props.initial.mean.constraint = c.initial.mean.constraint
    info = dg.information(model, params, props, y, u, hessian=False)
    core, b = model._batch(params, y, u, covariances=0)
    stats = _core.sufficient_stats(core, b.emissions, b.inputs, False, 1)
    cprops = props_to_core(props)
    assert_close(info.estimates, _core.to_unconstrained(core, cprops), "theta = x", rtol=1e-14)
    assert_close(info.score, _core.log_prob_gradient(core, cprops, stats, None), "score", rtol=1e-8)
    assert "dynamics.weights.f0" in info.names and "initial.mean.m" in info.names


@pytest.mark.parametrize("name", list(CASES))
def test_hessian_is_the_derivative_of_the_score(name):
    model, params, props, y, u = CASES[name]
    info = dg.information(model, params, props, y, u)

    def score(theta):
        return dg.information(model, with_theta(model, params, props, theta), props, y, u, hessian=False).score

    fd = dg._richardson_jacobian(score, info.estimates, 1e-3)
    assert_close(info.hessian, fd, f"{name} Hessian", rtol=1e-6)
    assert_close(info.hessian, info.hessian.T, "symmetric", rtol=1e-14)


def test_cov_types_and_their_relations():
    """An identified model (F, Q, R free, H = I) near its truth: every information is definite."""
    model = lgssm.LinearGaussianSSM(2, 2)
    truth, _ = model.initialize(
        0,
        initial_mean=np.zeros(2),
        initial_covariance=np.eye(2),
        dynamics_weights=np.array([[0.8, 0.1], [-0.2, 0.5]]),
        dynamics_bias=np.zeros(2),
        dynamics_covariance=np.array([[0.5, 0.1], [0.1, 0.3]]),
        emission_weights=np.eye(2),
        emission_bias=np.zeros(2),
        emission_covariance=np.diag([0.2, 0.4]),
    )
    _, y = model.sample(truth, 5, 400)
    props = frozen_props(truth, ("dynamics.weights", "dynamics.cov", "emissions.cov"))
    info = dg.information(model, truth, props, y)
    eye = np.eye(len(info.names))
    assert_close(info.cov_params("hessian") @ -info.hessian, eye, "(-H)^-1 (-H)", rtol=1e-8, atol=1e-8)
    assert_close(info.cov_params("opg") @ info.opg, eye, "OPG^-1 OPG", rtol=1e-8, atol=1e-8)
    h_inv, oim_inv = info.cov_params("hessian"), info.cov_params("oim")
    assert_close(info.cov_params("robust"), h_inv @ info.opg @ h_inv, "robust", rtol=1e-8)
    assert_close(info.cov_params("robust_oim"), oim_inv @ info.opg @ oim_inv, "robust_oim", rtol=1e-8)
    with pytest.raises(ValueError, match="cov_type"):
        info.cov_params("sandwich")
    with pytest.raises(ValueError, match="needs the Hessian"):
        dg.information(model, truth, props, y, hessian=False).cov_params("robust")


def test_unidentified_parameter_is_named():
    """y = h z with z's scale free: (h, Q, P0) -> (h / c, c^2 Q, c^2 P0) leaves p(y) unchanged."""
    model = lgssm.LinearGaussianSSM(1, 1)
    params, _ = model.initialize(
        0,
        initial_mean=np.zeros(1),
        initial_covariance=np.eye(1),
        dynamics_weights=0.7 * np.eye(1),
        dynamics_bias=np.zeros(1),
        dynamics_covariance=0.5 * np.eye(1),
        emission_weights=np.eye(1),
        emission_bias=np.zeros(1),
        emission_covariance=0.3 * np.eye(1),
    )
    _, y = model.sample(params, 1, 60)
    props = frozen_props(params, ("initial.cov", "dynamics.cov", "emissions.weights", "emissions.cov"))
    fit = dg.FitResult(model, params, props, y, cov_type="opg")
    with pytest.raises(ValueError, match="which the data do not determine"):
        fit.information().cov_params("oim")
    text = fit.summary()
    assert "Standard errors not available" in text or "Covariance type: opg" in text


# ---------------------------------------------------------------------------
# statsmodels


sm = pytest.importorskip("statsmodels", exc_type=ImportError, reason="statsmodels (extra `peers`) cannot be imported")
from statsmodels.tsa.statespace.mlemodel import MLEModel  # noqa: E402


def statsmodels_bse(mod, params):
    """statsmodels' OIM, OPG and (complex-step Hessian) standard errors at ``params``."""
    out = {}
    for cov_type, ours in (("oim", "oim"), ("opg", "opg"), ("approx", "hessian"), ("robust_oim", "robust_oim")):
        res = mod.smooth(params, cov_type=cov_type)
        out[ours] = np.asarray(res.bse)
    return out


def check_against_statsmodels(fit, expected, order, what, types=("oim", "opg", "hessian", "robust_oim")):
    for cov_type in types:
        ours = np.sqrt(np.diag(fit.cov_params(cov_type)))
        assert_close(ours, expected[cov_type][order], f"{what} {cov_type} bse", rtol=RTOL_SM)


def test_nile_local_level_vs_statsmodels():
    from statsmodels.datasets import nile as data
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    y = data.load_pandas().data["volume"].to_numpy(dtype=float)
    mod = UnobservedComponents(y, "llevel")
    mod.ssm.initialize_known(np.array([1120.0]), np.array([[1e4]]))
    mod.ssm.loglikelihood_burn = 0
    res = mod.fit(disp=False)  # params: sigma2.irregular, sigma2.level
    s2_eps, s2_eta = res.params
    model = lgssm.LinearGaussianSSM(1, 1)
    params, _ = model.initialize(
        0,
        initial_mean=np.array([1120.0]),
        initial_covariance=np.array([[1e4]]),
        dynamics_weights=np.eye(1),
        dynamics_bias=np.zeros(1),
        dynamics_covariance=np.array([[s2_eta]]),
        emission_weights=np.eye(1),
        emission_bias=np.zeros(1),
        emission_covariance=np.array([[s2_eps]]),
    )
    props = frozen_props(params, ("dynamics.cov", "emissions.cov"))
    fit = dg.FitResult(model, params, props, y[:, None])
    assert fit.param_names == ["dynamics.cov[0,0]", "emissions.cov[0,0]"]
    assert_close(fit.loglik, res.llf, "loglik", rtol=1e-10)
    expected = statsmodels_bse(mod, res.params)
    check_against_statsmodels(fit, expected, [1, 0], "Nile")
    # the summary shows them
    text = fit.summary()
    assert f"{fit.bse[0]:.6g}" in text and "Covariance type: hessian" in text
    assert_close(fit.conf_int()[:, 1] - fit.estimates, 1.959963984540054 * fit.bse, "interval", rtol=1e-12)
    # the delta method: the signal-to-noise ratio q = s2_eta / s2_eps, its gradient in closed form
    q, cov_q = fit.delta_method(lambda th: th[0] / th[1])
    jac = np.array([1.0 / s2_eps, -s2_eta / s2_eps**2])
    assert_close(q, [s2_eta / s2_eps], "q", rtol=1e-14)
    assert_close(cov_q, np.array([[jac @ fit.cov_params() @ jac]]), "Var q", rtol=1e-8)


class Arma21(MLEModel):
    """ARMA(2,1) as x_t = phi1 x_{t-1} + phi2 x_{t-2} + e_t (unit variance), y_t = c1 x_t + c2 x_{t-1}
    (sigma = c1, theta = c2 / c1): affine in (phi1, phi2, c1, c2), with a known initial distribution."""

    def __init__(self, y, p0):
        super().__init__(y, k_states=2)
        self["selection"] = np.eye(2)
        self["state_cov"] = np.diag([1.0, 0.0])
        self["obs_cov"] = np.zeros((1, 1))
        self["transition"] = np.array([[0.0, 0.0], [1.0, 0.0]])
        self.initialize_known(np.zeros(2), p0)

    @property
    def param_names(self):
        return ["phi1", "phi2", "c1", "c2"]

    @property
    def start_params(self):
        return np.array([0.3, 0.0, 1.0, 0.2])

    def update(self, params, **kwargs):
        params = super().update(params, **kwargs)
        self["transition", 0, :] = params[:2]
        self["design", 0, :] = params[2:]


def test_arma21_vs_statsmodels():
    phi1, phi2, c1, c2 = 0.5, -0.3, 1.3, 0.52
    f = np.array([[phi1, phi2], [1.0, 0.0]])
    p0 = np.linalg.solve(np.eye(4) - np.kron(f, f), np.diag([1.0, 0.0]).ravel()).reshape(2, 2)
    p0 = 0.5 * (p0 + p0.T)
    model = lgssm.LinearGaussianSSM(2, 1)
    truth, _ = model.initialize(
        0,
        initial_mean=np.zeros(2),
        initial_covariance=p0,
        dynamics_weights=f,
        dynamics_bias=np.zeros(2),
        dynamics_covariance=np.diag([1.0, 0.0]),
        emission_weights=np.array([[c1, c2]]),
        emission_bias=np.zeros(1),
        emission_covariance=np.zeros((1, 1)),
    )
    _, y = model.sample(truth, 21, 200)
    mod = Arma21(y[:, 0], p0)
    res = mod.fit(start_params=[phi1, phi2, c1, c2], disp=False)
    params = truth
    params.dynamics.weights = np.array([[res.params[0], res.params[1]], [1.0, 0.0]])
    params.emissions.weights = np.array([res.params[2:]])
    props = frozen_props(params, ("dynamics.weights", "emissions.weights"))
    props.dynamics.weights.constraint = pattern([["phi1", "phi2"], [1.0, 0.0]])
    fit = dg.FitResult(model, params, props, y)
    assert fit.param_names == [
        "dynamics.weights.phi1",
        "dynamics.weights.phi2",
        "emissions.weights[0,0]",
        "emissions.weights[0,1]",
    ]
    assert_close(fit.loglik, res.llf, "loglik", rtol=1e-10)
    check_against_statsmodels(fit, statsmodels_bse(mod, res.params), [0, 1, 2, 3], "ARMA(2,1)")


@pytest.mark.parametrize("missing", [False, True])
def test_dynamic_factor_vs_statsmodels(missing):
    from test_diagnostics import dynamic_factor_statsmodels

    mod, start, model, params, props, y = dynamic_factor_statsmodels(missing)
    res = mod.fit(start_params=start, disp=False)
    sp = np.asarray(res.params)
    params.emissions.weights = sp[:3, None]
    params.emissions.cov = np.diag(sp[3:6])
    params.dynamics.weights = np.array([[sp[6]]])
    fit = dg.FitResult(model, params, props, y)
    assert_close(fit.loglik, res.llf, "loglik", rtol=1e-10)
    order = [6, 0, 1, 2, 3, 4, 5]  # lgssm's order: the AR weight, the loadings, the variances
    # statsmodels' oim sums over the full forecast error of a partly missing step; compare it without missing data
    types = ("opg", "hessian") if missing else ("oim", "opg", "hessian", "robust_oim")
    check_against_statsmodels(
        fit, statsmodels_bse(mod, res.params), order, f"dynamic factor (missing {missing})", types
    )


def test_wald_intervals_cover_the_truth():
    """Over 200 simulated data sets (fixed seeds) of an AR(1) plus noise, T = 400, fitted by L-BFGS,
    the 95% Wald intervals of every cov_type cover each true parameter 95% +- 3.5% of the time
    (0.94-0.95 seen for hessian, oim and opg)."""
    model, truth, props, theta = ar1_plus_noise()
    num = 200
    hits = {c: np.zeros(3) for c in ("hessian", "oim", "opg")}
    for i in range(num):
        _, y = model.sample(truth, 1000 + i, 400)
        fitted, _ = model.fit_lbfgs(truth, props, y, verbose=False, max_iters=200)
        fit = dg.FitResult(model, fitted, props, y)
        for cov_type in hits:
            fit.cov_type = cov_type
            ci = fit.conf_int()
            hits[cov_type] += (ci[:, 0] <= theta) & (theta <= ci[:, 1])
    rates = {c: h / num for c, h in hits.items()}
    print("coverage of the 95% Wald intervals:", rates)
    for cov_type, rate in rates.items():
        assert np.all(np.abs(rate - 0.95) <= 0.035), (cov_type, rate)


def test_diffuse_initialization_is_refused():
    model = lgssm.LinearGaussianSSM(1, 1, initialization="diffuse")
    params, props = model.initialize(0)
    y = np.linspace(0.0, 1.0, 10)[:, None]
    with pytest.raises(ValueError, match="diffuse"):
        dg.information(model, params, props, y)


def test_trend_seasonal_vs_statsmodels():
    """A local linear trend + quarterly dummy seasonal (five states, two without noise: Q = diag(level,
    slope, seasonal, 0, 0) by a covariance constraint), known initial law in both, at statsmodels' MLE."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    from test_diagnostics import trend_seasonal

    model, truth, _ = trend_seasonal()
    y = model.sample(truth, 8, 200)[1]
    mod = UnobservedComponents(y[:, 0], "lltrend", seasonal=4)
    mod.ssm.initialize_known(truth.initial.mean, truth.initial.cov)
    mod.ssm.loglikelihood_burn = 0
    mod.ssm.tolerance = 0.0
    res = mod.fit(disp=False, maxiter=1000)  # sigma2.irregular, .level, .trend, .seasonal
    assert np.all(res.params > 1e-4), res.params  # an interior maximum: standard errors are defined
    s2_eps, s2_level, s2_slope, s2_seasonal = res.params
    params = lgssm.params.from_core(model.core_params(truth), truth)
    params.dynamics.cov = np.diag([s2_level, s2_slope, s2_seasonal, 0.0, 0.0])
    params.emissions.cov = np.array([[s2_eps]])
    props = frozen_props(params, ("dynamics.cov", "emissions.cov"))
    props.dynamics.cov.constraint = pattern(
        [["level", 0, 0, 0, 0], [0, "slope", 0, 0, 0], [0, 0, "seasonal", 0, 0], [0] * 5, [0] * 5]
    )
    fit = dg.FitResult(model, params, props, y)
    assert fit.param_names == [
        "dynamics.cov.level",
        "dynamics.cov.slope",
        "dynamics.cov.seasonal",
        "emissions.cov[0,0]",
    ]
    assert_close(fit.loglik, res.llf, "loglik", rtol=1e-10)
    check_against_statsmodels(fit, statsmodels_bse(mod, res.params), [1, 2, 3, 0], "trend + seasonal")
