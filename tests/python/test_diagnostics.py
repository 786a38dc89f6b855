"""Residuals, tests and information criteria (lgssm.diagnostics) against statsmodels and a dense reference.

statsmodels runs the same models with ``initialize_known`` (the same initial mean and
covariance, so no diffuse steps) on the same data: the Nile local level, a local
linear trend + quarterly seasonal model (singular Q), an ARMA(2,1) in Harvey's form
(singular Q, an exactly observed emission) and a one-factor dynamic factor model
with missing entries. The disturbance smoother and the lag-k autocovariances are
also checked against the dense joint Gaussian (tests/python/dense_reference.py).
"""

import numpy as np
import pytest

import lgssm
from lgssm import diagnostics as dg

from conftest import assert_close
from dense_reference import condition, joint_prior
from peer_models import as_kwargs

sm = pytest.importorskip("statsmodels", exc_type=ImportError, reason="statsmodels (extra `peers`) cannot be imported")
from statsmodels.tsa.statespace.mlemodel import MLEModel  # noqa: E402
from statsmodels.tsa.statespace.structural import UnobservedComponents  # noqa: E402

RTOL_RESID = 1e-8
RTOL_TEST = 1e-6


def frozen_props(params, free=("dynamics.cov", "emissions.cov")):
    """Properties with only the parameters ``free`` trainable (a structural model's variances)."""
    props = lgssm.params.default_props(params)
    for group, g in lgssm.params.param_groups(props):
        for name, prop in vars(g).items():
            prop.trainable = f"{group}.{name}" in free
    return props


def lgssm_model(F, Q, H, R, m0, P0, b=None, d=None):
    n, p = F.shape[0], H.shape[0]
    model = lgssm.LinearGaussianSSM(n, p)
    params, _ = model.initialize(
        initial_mean=m0,
        initial_covariance=P0,
        dynamics_weights=F,
        dynamics_bias=np.zeros(n) if b is None else b,
        dynamics_covariance=Q,
        emission_weights=H,
        emission_bias=np.zeros(p) if d is None else d,
        emission_covariance=R,
    )
    return model, params


def smoothed(params, emissions):
    """statsmodels' smoother results (MLEModel with lgssm's matrices, initialize_known)."""
    n = params.initial.mean.shape[0]
    mod = MLEModel(emissions, k_states=n)
    d, e = params.dynamics, params.emissions
    mod["design"], mod["obs_cov"], mod["obs_intercept"] = e.weights, e.cov, e.bias
    mod["transition"], mod["state_cov"], mod["selection"], mod["state_intercept"] = d.weights, d.cov, np.eye(n), d.bias
    mod.initialize_known(params.initial.mean, params.initial.cov)
    mod.ssm.tolerance = 0.0
    return mod.smooth([])


def nile():
    from statsmodels.datasets import nile as data

    y = data.load_pandas().data["volume"].to_numpy(dtype=float)[:, None]
    model, params = lgssm_model(
        np.eye(1), np.array([[1469.1]]), np.eye(1), np.array([[15099.0]]), np.array([1120.0]), np.array([[1e4]])
    )
    return model, params, y


def trend_seasonal():
    """Local linear trend + quarterly dummy seasonal: states (level, slope, s_t, s_{t-1}, s_{t-2})."""
    F = np.zeros((5, 5))
    F[0, :2], F[1, 1] = 1.0, 1.0
    F[2, 2:] = -1.0
    F[3, 2], F[4, 3] = 1.0, 1.0
    Q = np.diag([0.5, 0.01, 0.2, 0.0, 0.0])
    H = np.array([[1.0, 0.0, 1.0, 0.0, 0.0]])
    model, params = lgssm_model(F, Q, H, np.array([[1.0]]), np.array([10.0, 0.1, 1.0, -0.5, 0.3]), np.eye(5))
    _, y = model.sample(params, 3, 80)
    return model, params, y


def arma21():
    """ARMA(2,1) in Harvey's form: z_t = [y_t, phi2 y_{t-1} + theta eps_t], y_t = z_t[0] exactly."""
    phi1, phi2, theta, s2 = 0.5, -0.3, 0.4, 1.3
    F = np.array([[phi1, 1.0], [phi2, 0.0]])
    g = np.array([1.0, theta])
    Q = s2 * np.outer(g, g)
    # The stationary covariance of the state as the known initial one.
    P0 = np.linalg.solve(np.eye(4) - np.kron(F, F), Q.ravel()).reshape(2, 2)
    model, params = lgssm_model(F, Q, np.array([[1.0, 0.0]]), np.zeros((1, 1)), np.zeros(2), 0.5 * (P0 + P0.T))
    _, y = model.sample(params, 11, 120)
    return model, params, y


def dynamic_factor(missing=True):
    """One AR(1) factor loading on three series, diagonal R; ~15% entries and two rows missing."""
    rng = np.random.default_rng(4)
    model, params = lgssm_model(
        np.array([[0.8]]),
        np.array([[0.5]]),
        np.array([[1.0], [0.6], [-0.4]]),
        np.diag([0.3, 0.5, 0.2]),
        np.zeros(1),
        np.array([[1.0 / 0.36 * 0.5]]),
        d=np.array([0.1, -0.2, 0.3]),
    )
    _, y = model.sample(params, 5, 90)
    if missing:
        y[rng.random(y.shape) < 0.15] = np.nan
        y[[7, 40]] = np.nan
    return model, params, y


CASES = {"nile": nile, "trend_seasonal": trend_seasonal, "arma21": arma21, "dynamic_factor": dynamic_factor}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    model, params, y = CASES[request.param]()
    return request.param, model, params, y, smoothed(params, y)


def observed(a, y):
    """``a`` (num_timesteps, emission_dim) with NaN where y is missing."""
    return np.where(np.isnan(y), np.nan, a)


def test_innovations_vs_statsmodels(case):
    name, model, params, y, res = case
    inn = dg.innovations(model, params, y)
    fr = res.filter_results
    assert_close(inn.marginal_loglik, res.llf, f"{name} loglik", rtol=1e-10)
    assert_close(np.sum(inn.step_logliks), res.llf, f"{name} sum of step logliks", rtol=1e-10)
    assert_close(inn.innovations, observed(fr.forecasts_error.T, y), f"{name} v_t", rtol=RTOL_RESID)
    expected = fr.standardized_forecasts_error.T
    assert_close(inn.standardized_innovations, observed(expected, y), f"{name} standardized", rtol=RTOL_RESID)
    # Component-wise: v_t,i / sqrt(F_t,ii) (the observed block of F_t as statsmodels gives it).
    f_diag = np.einsum("iit->ti", fr.forecasts_error_cov)
    scaled = observed(fr.forecasts_error.T / np.sqrt(f_diag), y)
    if name != "dynamic_factor":  # with missing rows statsmodels' F_t is over the observed subset only
        assert_close(inn.scaled_innovations, scaled, f"{name} scaled", rtol=RTOL_RESID)
    full = ~np.isnan(y).any(axis=1)
    assert_close(
        inn.innovation_covariances[full], np.moveaxis(fr.forecasts_error_cov, -1, 0)[full], f"{name} F_t", rtol=1e-9
    )


def test_tests_vs_statsmodels(case):
    name, model, params, y, res = case
    resid = dg.innovations(model, params, y).standardized_innovations
    # statsmodels 0.15 stores 0 (not NaN) as the standardized residual of a missing entry, and
    # its tests then count those zeros as residuals; given the same zeros, the definitions agree.
    resid = np.where(np.isnan(resid), 0.0, resid)
    lags = 8
    lb = dg.test_serial_correlation(resid, lags=lags)
    expected_lb = res.test_serial_correlation("ljungbox", lags=lags)
    assert_close(lb, expected_lb, f"{name} Ljung-Box", rtol=RTOL_TEST)
    assert_close(dg.test_normality(resid), res.test_normality("jarquebera"), f"{name} Jarque-Bera", rtol=RTOL_TEST)
    for alternative in ("two-sided", "increasing", "decreasing"):
        for use_f in (True, False):
            assert_close(
                dg.test_heteroskedasticity(resid, alternative=alternative, use_f=use_f),
                res.test_heteroskedasticity("breakvar", alternative=alternative, use_f=use_f),
                f"{name} heteroskedasticity {alternative} {use_f}",
                rtol=RTOL_TEST,
            )


def test_burn_matches_loglikelihood_burn():
    """``burn`` leaves out leading residuals as statsmodels' loglikelihood_burn does."""
    model, params, y = trend_seasonal()
    res = smoothed(params, y)
    res.filter_results.loglikelihood_burn = res.loglikelihood_burn = 6
    resid = dg.innovations(model, params, y).standardized_innovations
    assert_close(dg.test_serial_correlation(resid, burn=6), res.test_serial_correlation("ljungbox"), "LB burn")
    assert_close(dg.test_normality(resid, burn=6), res.test_normality("jarquebera"), "JB burn")
    assert_close(dg.test_heteroskedasticity(resid, burn=6), res.test_heteroskedasticity("breakvar"), "H burn")


def test_disturbances_vs_statsmodels(case):
    name, model, params, y, res = case
    dist = dg.disturbances(model, params, y)
    n = params.initial.mean.shape[0]
    obs = ~np.isnan(y)
    eps_sm = res.smoothed_measurement_disturbance.T
    assert_close(dist.emission_disturbances[obs], eps_sm[obs], f"{name} eps_hat", rtol=1e-8)
    cov_sm = np.moveaxis(res.smoothed_measurement_disturbance_cov, -1, 0)
    full = obs.all(axis=1)
    assert_close(
        dist.emission_disturbance_covariances[full], cov_sm[full], f"{name} Cov[eps | y]", rtol=1e-8, atol=1e-8
    )
    # statsmodels' state disturbance has one entry per step (the last one beyond the data: zero).
    assert_close(dist.dynamics_disturbances, res.smoothed_state_disturbance.T[:-1], f"{name} eta_hat", rtol=1e-8)
    q_cov = np.moveaxis(res.smoothed_state_disturbance_cov, -1, 0)[:-1]
    scale = np.max(np.abs(params.dynamics.cov))
    assert_close(dist.dynamics_disturbance_covariances, q_cov, f"{name} Cov[eta | y]", rtol=1e-8, atol=1e-10 * scale)
    assert dist.dynamics_disturbances.shape == (len(y) - 1, n)


def dense_disturbances(params, y, lag):
    """E and Cov of eps_t, eta_t given y, Var of their estimators, and Cov[z_{t+lag}, z_t | y], densely."""
    kw = as_kwargs(params)
    T, p = y.shape
    n = params.initial.mean.shape[0]
    mean, cov = joint_prior(kw, T)
    idx = np.flatnonzero(~np.isnan(y.ravel())) + T * n
    pm, pc, _ = condition(mean, cov, idx, y.ravel()[~np.isnan(y.ravel())])
    H, F = params.emissions.weights, params.dynamics.weights
    d, b = params.emissions.bias, params.dynamics.bias
    eps, eps_cov, eta, eta_cov, z_cov = [], [], [], [], []
    for t in range(T):
        A = np.zeros((p, len(mean)))
        A[:, T * n + t * p : T * n + (t + 1) * p] = np.eye(p)
        A[:, t * n : (t + 1) * n] = -H
        eps.append(A @ pm - d)
        eps_cov.append(A @ pc @ A.T)
        if t + 1 < T:
            B = np.zeros((n, len(mean)))
            B[:, (t + 1) * n : (t + 2) * n] = np.eye(n)
            B[:, t * n : (t + 1) * n] = -F
            eta.append(B @ pm - b)
            eta_cov.append(B @ pc @ B.T)
        if t + lag < T:
            z_cov.append(pc[(t + lag) * n : (t + lag + 1) * n, t * n : (t + 1) * n])
    return np.array(eps), np.array(eps_cov), np.array(eta), np.array(eta_cov), np.array(z_cov)


@pytest.mark.parametrize("name", ["trend_seasonal", "dynamic_factor", "correlated_missing"])
def test_disturbances_and_autocovariances_vs_dense(name):
    if name == "correlated_missing":  # full R: missing components' disturbances follow the observed ones
        model, params, y = dynamic_factor()
        params.emissions.cov = np.array([[0.3, 0.1, -0.05], [0.1, 0.5, 0.2], [-0.05, 0.2, 0.4]])
        y = y[:12]
    else:
        model, params, y = CASES[name]()
        y = y[:12]
    dist = dg.disturbances(model, params, y)
    for lag in (0, 1, 3):
        eps, eps_cov, eta, eta_cov, z_cov = dense_disturbances(params, y, lag)
        assert_close(dg.smoothed_autocovariances(model, params, y, lag), z_cov, f"{name} autocov lag {lag}", rtol=1e-8)
    assert_close(dist.emission_disturbances, eps, f"{name} eps_hat", rtol=1e-8)
    assert_close(dist.emission_disturbance_covariances, eps_cov, f"{name} Cov[eps | y]", rtol=1e-8)
    assert_close(dist.dynamics_disturbances, eta, f"{name} eta_hat", rtol=1e-8)
    assert_close(dist.dynamics_disturbance_covariances, eta_cov, f"{name} Cov[eta | y]", rtol=1e-8)
    # Auxiliary residuals: the estimator's variance is Var(eps) - Cov[eps | y] (de Jong & Penzer).
    R = params.emissions.cov
    var_hat = np.diagonal(R - eps_cov, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(var_hat > 1e-12, eps / np.sqrt(np.abs(var_hat)), np.nan)
    assert_close(dist.emission_auxiliary_residuals, expected, f"{name} emission auxiliary", rtol=1e-6)
    var_eta = np.diagonal(params.dynamics.cov - eta_cov, axis1=1, axis2=2)
    # (NaN where the estimator has no variance: no noise, or no data informs it, as the slope's last one)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(var_eta > 1e-10 * np.max(params.dynamics.cov), eta / np.sqrt(np.abs(var_eta)), np.nan)
    assert_close(dist.dynamics_auxiliary_residuals, expected, f"{name} dynamics auxiliary", rtol=1e-6)


def test_information_criteria_vs_statsmodels():
    """Nile local level fitted by statsmodels (known initialization): same log likelihood, 2 parameters."""
    _, params, y = nile()
    mod = UnobservedComponents(y[:, 0], "llevel")
    mod.ssm.initialize_known(params.initial.mean, params.initial.cov)
    mod.ssm.loglikelihood_burn = 0  # UnobservedComponents burns its diffuse steps by default; none here
    res = mod.smooth([15099.0, 1469.1])
    model = lgssm.LinearGaussianSSM(1, 1)
    fit = dg.FitResult(model, params, frozen_props(params), y)
    assert fit.num_params == res.df_model == 2
    assert fit.nobs == res.nobs_effective
    assert_close(fit.loglik, res.llf, "loglik", rtol=1e-10)
    for key in ("aic", "aicc", "bic", "hqic"):
        assert_close(getattr(fit, key), getattr(res, key), key, rtol=1e-8)


def test_num_parameters():
    model = lgssm.LinearGaussianSSM(3, 2, input_dim=1)
    params, props = model.initialize(0)
    n, p, m = 3, 2, 1
    full = n + n * (n + 1) // 2 + (n * n + n + n * m + n * (n + 1) // 2) + (p * n + p + p * m + p * (p + 1) // 2)
    assert dg.num_parameters(model, params, props) == full
    props.dynamics.cov.structure, props.emissions.cov.structure = "diagonal", "scalar"
    props.initial.mean.trainable = props.initial.cov.trainable = False
    params.emissions.cov = 0.1 * np.eye(p)
    expected = (n * n + n + n * m + n) + (p * n + p + p * m + 1)
    assert dg.num_parameters(model, params, props) == expected


def test_heldout_log_prob_is_the_filter_tail():
    model, params, y = nile()
    inn = dg.innovations(model, params, y)
    h = dg.heldout_log_prob(model, params, y, 20)
    assert_close(h, float(np.sum(inn.step_logliks[80:])), "held-out")
    # log p(y_{80:}) given y_{:80} = log p(y) - log p(y_{:80}), up to rounding.
    diff = model.marginal_log_prob(params, y) - model.marginal_log_prob(params, y[:80])
    assert_close(h, float(diff), "held-out vs difference", rtol=1e-9)
    with pytest.raises(ValueError, match="num_heldout"):
        dg.heldout_log_prob(model, params, y, 0)


def test_compare_and_cross_validate():
    rng = np.random.default_rng(0)
    truth = lgssm.LinearGaussianSSM(2, 3)
    params, _ = truth.initialize(1, dynamics_weights=np.array([[0.9, 0.1], [-0.1, 0.8]]))
    ys = [truth.sample(params, int(s), 40)[1] for s in rng.integers(0, 1000, 4)]
    table = dg.compare([lgssm.LinearGaussianSSM(k, 3) for k in (1, 2)], ys, num_iters=5)
    assert [r["state_dim"] for r in table.rows] == [1, 2]
    for r, res in zip(table.rows, table.results):
        assert r["num_params"] == res.num_params and r["nobs"] == 160
        assert_close(r["aic"], -2 * r["loglik"] + 2 * r["num_params"], "aic")
    assert "state_dim" in str(table) and "<table>" in table._repr_html_()
    assert table.best("aic") in table.results
    one = dg.compare([lgssm.LinearGaussianSSM(1, 3)], ys[0], num_iters=3, num_heldout=10)
    assert np.isfinite(one.rows[0]["heldout_loglik"]) and one.rows[0]["nobs"] == 30
    m, start = truth, truth.initialize(2)
    cv = dg.cross_validate(m, start[0], start[1], ys, num_folds=2, num_iters=3)
    assert len(cv["fold_logliks"]) == 2 and sorted(sum(cv["folds"], [])) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="candidates"):
        dg.compare([], ys)


def test_summary_and_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    model, params, y = nile()
    fit = dg.FitResult(model, params, frozen_props(params), y)
    text = fit.summary()
    for needle in ("dynamics.cov[0,0]", "emissions.cov[0,0]", "AIC", "BIC", "HQIC", "Ljung-Box", "Jarque-Bera"):
        assert needle in text
    assert "std err" in text and "Covariance type: hessian" in text
    assert f"{fit.bse[1]:.6g}" in text and f"{fit.conf_int()[1, 1]:.6g}" in text
    assert "<table>" in fit._repr_html_()
    fig = fit.plot_diagnostics(path=tmp_path / "diag.png")
    assert len(fig.axes) == 4 and (tmp_path / "diag.png").stat().st_size > 0
    tests = fit.tests()
    res = smoothed(params, y)
    assert_close(tests["jarque_bera"][0]["statistic"], float(res.test_normality("jarquebera")[0, 0]), "JB")


def test_bad_arguments():
    model, params, y = nile()
    resid = dg.innovations(model, params, y).standardized_innovations
    with pytest.raises(ValueError, match="burn"):
        dg.test_normality(resid, burn=100)
    with pytest.raises(ValueError, match="alternative"):
        dg.test_heteroskedasticity(resid, alternative="up")
    with pytest.raises(ValueError, match="lag"):
        dg.smoothed_autocovariances(model, params, y, 100)
    with pytest.raises(ValueError, match="nobs"):
        dg.information_criteria(0.0, 0, 1)


def test_cli_diagnose_and_fit_report(tmp_path, capsys):
    import json
    import os

    from lgssm import cli

    model, params, y = dynamic_factor()
    np.save(tmp_path / "y.npy", y)

    def run(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = run(
        "fit",
        tmp_path / "y.npy",
        "--state-dim",
        1,
        "--iters",
        5,
        "-q",
        "--out",
        tmp_path / "m.json",
        "--report",
        tmp_path / "fit.txt",
    )
    assert code == 0, err
    assert "lgssm fit summary" in (tmp_path / "fit.txt").read_text()
    code, out, err = run(
        "diagnose",
        tmp_path / "m.json",
        tmp_path / "y.npy",
        "--out",
        tmp_path / "d.json",
        "--figure",
        tmp_path / "d.png",
        "--variable",
        2,
    )
    assert code == 0, err
    report = json.loads((tmp_path / "d.json").read_text())
    fitted_model, fitted, props = lgssm.io.load_model(tmp_path / "m.json")
    expected = dg.FitResult(fitted_model, fitted, props, y)
    assert_close(report["bic"], expected.bic, "report bic")
    assert [r["name"] for r in report["parameters"]] == expected.param_names
    with pytest.raises(ValueError, match="not a maximum"):  # a few EM iterations, initial.cov free
        expected.cov_params()
    assert all(r["std_err"] is None for r in report["parameters"])
    assert len(report["tests"]["jarque_bera"]) == 3 and "Jarque-Bera" in out
    assert (tmp_path / "d.png").stat().st_size > 0
    before = set(os.listdir(tmp_path))
    for argv, message in [
        (["--burn", 90], "--burn: expected fewer than the 90 steps"),
        (["--variable", 3], "--variable: expected an integer in [0, 2]"),
        (["--figure", tmp_path / "f.bmp"], "--figure: unknown format"),
        (["--out", tmp_path / "r.csv"], "--out: unknown format"),
    ]:
        code, out, err = run("diagnose", tmp_path / "m.json", tmp_path / "y.npy", *argv)
        assert code == 2 and err.startswith("lgssm diagnose: error: " + message), err
        assert "Traceback" not in err and err.count("\n") == 1
    assert set(os.listdir(tmp_path)) == before


def test_layouts_batch_and_list():
    """A padded batch and a list give each sequence's own results."""
    model, params, y = dynamic_factor()
    ys = [y[:30], y[30:55]]
    one = [dg.innovations(model, params, s) for s in ys]
    listed = dg.innovations(model, params, ys)
    padded = np.full((2, 30, 3), np.nan)
    padded[0], padded[1, :25] = ys[0], ys[1]
    batch = dg.innovations(model, params, padded)
    for i, s in enumerate(ys):
        assert_close(listed[i].standardized_innovations, one[i].standardized_innovations, f"list {i}")
        assert_close(batch.standardized_innovations[i, : len(s)], one[i].standardized_innovations, f"batch {i}")
    assert_close(batch.marginal_loglik, np.array([o.marginal_loglik for o in one]), "batch loglik")
    dist = dg.disturbances(model, params, padded)
    assert dist.dynamics_disturbances.shape == (2, 29, 1) and np.isnan(dist.dynamics_disturbances[1, 24:]).all()
    ac = dg.smoothed_autocovariances(model, params, ys, 2)
    assert [a.shape for a in ac] == [(28, 1, 1), (23, 1, 1)]
    fit = dg.FitResult(model, params, frozen_props(params), ys, burn=2)
    assert fit.nobs == 51
    assert_close(fit.test_normality(sequence=1), dg.test_normality(one[1].standardized_innovations, burn=2), "seq 1")


def dynamic_factor_statsmodels(missing=True):
    """The dynamic factor model as statsmodels' DynamicFactor (one AR(1) factor of unit variance,
    three series, diagonal R, the same known initial distribution) and as lgssm: (statsmodels
    model, its parameters, lgssm model, params, props, data). lgssm's free parameters: the AR
    weight, the loadings, the variances; statsmodels': loadings, variances, AR weight."""
    from statsmodels.tsa.statespace.dynamic_factor import DynamicFactor

    _, params, y = dynamic_factor(missing)
    params.emissions.bias = np.zeros(3)
    params.dynamics.cov = np.eye(1)
    params.initial.cov = np.array([[1.0 / (1.0 - 0.8**2)]])
    mod = DynamicFactor(y, k_factors=1, factor_order=1)
    mod.ssm.initialize_known(params.initial.mean, params.initial.cov)
    mod.ssm.loglikelihood_burn = 0
    sm_params = np.r_[params.emissions.weights[:, 0], np.diag(params.emissions.cov), 0.8]
    props = frozen_props(params, free=("emissions.weights", "emissions.cov", "dynamics.weights"))
    props.emissions.cov.structure = "diagonal"
    return mod, sm_params, lgssm.LinearGaussianSSM(1, 3), params, props, y


def test_information_criteria_dynamic_factor_vs_statsmodels():
    """7 parameters, as lgssm counts loadings, a diagonal emission covariance and the AR weight."""
    mod, sm_params, model, params, props, y = dynamic_factor_statsmodels()
    res = mod.smooth(sm_params)
    fit = dg.FitResult(model, params, props, y)
    assert fit.num_params == res.df_model == 7
    assert_close(fit.loglik, res.llf, "loglik", rtol=1e-10)
    for key in ("aic", "aicc", "bic", "hqic"):
        assert_close(getattr(fit, key), getattr(res, key), key, rtol=1e-8)
