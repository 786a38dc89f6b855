"""lgssm.structural: models assembled from components against statsmodels' UnobservedComponents,
DynamicFactor and SARIMAX at the same parameters and initialization (the exact diffuse or stationary
log likelihood to 1e-10) on the data statsmodels ships (Nile, CO2, macrodata); the parameter names;
Durbin & Koopman's Nile estimates under the readable names; component contributions summing to the
smoothed emission mean; the refusals of bad arguments."""

import numpy as np
import pytest

import lgssm
from lgssm import structural as st
from lgssm.diagnostics import parameter_table

from conftest import assert_close

sm = pytest.importorskip(
    "statsmodels.api", exc_type=ImportError, reason="statsmodels (extra `peers`) cannot be imported"
)
from statsmodels.tsa.statespace.initialization import Initialization  # noqa: E402
from statsmodels.tsa.statespace.structural import UnobservedComponents  # noqa: E402

NILE = sm.datasets.nile.load_pandas().data["volume"].to_numpy(dtype=float)
CO2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean()["1964-05":].to_numpy(dtype=float)
MACRO = sm.datasets.macrodata.load_pandas().data
INFL = MACRO["infl"].to_numpy(dtype=float)
GDP = 100 * np.log(MACRO["realgdp"].to_numpy(dtype=float))


def _missing(y, idx):
    y = y.copy()
    y[idx] = np.nan
    return y


def _sm_loglik(mod, values: dict) -> float:
    """statsmodels' log likelihood at parameters given by its own names, without its steady-state
    switch (by default its filter freezes P once it changes by less than 1e-19, which on the CO2
    trend moves the log likelihood by 4e-9 relative; test_matches_dense_diffuse_limit checks
    lgssm's there against a dense joint-Gaussian computation)."""
    assert set(values) == set(mod.param_names), mod.param_names
    mod.ssm.tolerance = 0.0
    return mod.loglike(np.array([values[n] for n in mod.param_names]))


def _loglik(model, y, inputs=None) -> float:
    params, _ = model.initialize()
    return model.marginal_log_prob(params, y[:, None], inputs)


# (name, data, lgssm components and observation variance, UnobservedComponents arguments, its parameters)
UC_CASES = [
    ("nile-level", NILE, lambda: st.LocalLevel(1469.1).build(15099.0), dict(level="llevel"),
     {"sigma2.irregular": 15099.0, "sigma2.level": 1469.1}),
    ("co2-trend", CO2, lambda: st.LocalLinearTrend(0.05, 1e-4).build(0.03), dict(level="lltrend"),
     {"sigma2.irregular": 0.03, "sigma2.level": 0.05, "sigma2.trend": 1e-4}),
    ("co2-trend-dummy-seasonal", CO2,
     lambda: (st.LocalLinearTrend(0.05, 1e-4) + st.Seasonal(12, variance=1e-3)).build(0.03),
     dict(level="lltrend", seasonal=12),
     {"sigma2.irregular": 0.03, "sigma2.level": 0.05, "sigma2.trend": 1e-4, "sigma2.seasonal": 1e-3}),
    ("co2-trend-trig-seasonal", CO2,
     lambda: (st.LocalLinearTrend(0.05, 1e-4) + st.Seasonal(12, harmonics=3, variance=1e-3)).build(0.03),
     dict(level="lltrend", freq_seasonal=[{"period": 12, "harmonics": 3}]),
     {"sigma2.irregular": 0.03, "sigma2.level": 0.05, "sigma2.trend": 1e-4, "sigma2.freq_seasonal_12(3)": 1e-3}),
    ("co2-trend-full-trig-seasonal", CO2,  # harmonic 6 at frequency pi: one state here, two in statsmodels
     lambda: (st.LocalLinearTrend(0.05, 1e-4) + st.Seasonal(12, harmonics=6, variance=1e-3)).build(0.03),
     dict(level="lltrend", freq_seasonal=[{"period": 12, "harmonics": 6}]),
     {"sigma2.irregular": 0.03, "sigma2.level": 0.05, "sigma2.trend": 1e-4, "sigma2.freq_seasonal_12(6)": 1e-3}),
    ("co2-missing-trend-dummy-seasonal", _missing(CO2, [0, 5, 6, 7, 100, 451]),
     lambda: (st.LocalLinearTrend(0.05, 1e-4) + st.Seasonal(12, variance=1e-3)).build(0.03),
     dict(level="lltrend", seasonal=12),
     {"sigma2.irregular": 0.03, "sigma2.level": 0.05, "sigma2.trend": 1e-4, "sigma2.seasonal": 1e-3}),
    ("gdp-level-cycle", GDP,
     lambda: (st.LocalLevel(0.5) + st.Cycle(2 * np.pi / 0.25, 0.8, 0.6, initialization="diffuse")).build(0.1),
     dict(level="llevel", cycle=True, stochastic_cycle=True, damped_cycle=True),
     {"sigma2.irregular": 0.1, "sigma2.level": 0.5, "sigma2.cycle": 0.6, "frequency.cycle": 0.25,
      "damping.cycle": 0.8}),
    ("infl-level-ar2", INFL, lambda: (st.LocalLevel(0.3) + st.AR([0.5, 0.2], variance=4.0)).build(1.5),
     dict(level="llevel", autoregressive=2),
     {"sigma2.irregular": 1.5, "sigma2.level": 0.3, "sigma2.ar": 4.0, "ar.L1": 0.5, "ar.L2": 0.2}),
]  # fmt: skip


@pytest.mark.parametrize("name, y, build, uc_args, values", UC_CASES, ids=[c[0] for c in UC_CASES])
def test_loglik_matches_unobserved_components(name, y, build, uc_args, values):
    mod = UnobservedComponents(y, use_exact_diffuse=True, **uc_args)
    assert _loglik(build(), y) == pytest.approx(_sm_loglik(mod, values), rel=1e-10)


def _dense_diffuse_loglik(params, y):
    """lim_{kappa -> inf} log N(y; 0, V + kappa X X^T) + (q/2) log kappa for z_0 ~ N(0, kappa I), in closed
    form: -(T log 2 pi + log|V| + log|X^T V^-1 X| + y^T V^-1 y - b^T (X^T V^-1 X)^-1 b) / 2, b = X^T V^-1 y,
    with X_t = H F^t and V = Cov(y) from the noises alone (dense NumPy, observed steps only)."""
    f, q, h, r = (np.asarray(a) for a in (params.dynamics.weights, params.dynamics.cov,
                                           params.emissions.weights, params.emissions.cov))  # fmt: skip
    t_max, n = y.size, f.shape[0]
    g = np.empty((t_max, n))  # row k: H F^k
    g[0] = h[0]
    for k in range(1, t_max):
        g[k] = g[k - 1] @ f
    v = np.zeros((t_max, t_max))
    p = np.zeros((n, n))  # Cov of the state's noise part at step s
    for s in range(t_max):
        if s > 0:
            p = f @ p @ f.T + q
        v[s:, s] = g[: t_max - s] @ (p @ h[0])
        v[s, s:] = v[s:, s]
        v[s, s] += r[0, 0]
    keep = ~np.isnan(y)
    chol = np.linalg.cholesky(v[np.ix_(keep, keep)])
    x, w = np.linalg.solve(chol, g[keep]), np.linalg.solve(chol, y[keep])
    a, b = x.T @ x, x.T @ w
    quad = w @ w - b @ np.linalg.solve(a, b)
    logdet = 2 * np.log(np.diag(chol)).sum() + np.linalg.slogdet(a)[1]
    return -0.5 * (keep.sum() * np.log(2 * np.pi) + logdet + quad)


@pytest.mark.parametrize("case", ["co2-trend", "co2-missing-trend-dummy-seasonal"])
def test_matches_dense_diffuse_limit(case):
    """Where statsmodels' default steady-state switch costs it digits: an exact reference."""
    _, y, build, _, _ = next(c for c in UC_CASES if c[0] == case)
    model = build()
    params, _ = model.initialize()
    assert model.marginal_log_prob(params, y[:, None]) == pytest.approx(_dense_diffuse_loglik(params, y), rel=1e-10)


def test_stationary_cycle_matches_statsmodels_stationary_initialization():
    """The default cycle (stationary covariance at the given values, the level diffuse) against
    UnobservedComponents with that initialization set on its cycle block."""
    mod = UnobservedComponents(
        GDP, level="llevel", cycle=True, stochastic_cycle=True, damped_cycle=True, use_exact_diffuse=True
    )
    init = Initialization(mod.k_states)
    init.set((0, 1), "diffuse")
    init.set((1, 3), "stationary")
    mod.ssm.initialization = init
    values = {"sigma2.irregular": 0.1, "sigma2.level": 0.5, "sigma2.cycle": 0.6, "frequency.cycle": 0.25,
              "damping.cycle": 0.8}  # fmt: skip
    model = (st.LocalLevel(0.5) + st.Cycle(2 * np.pi / 0.25, 0.8, 0.6)).build(0.1)
    params, _ = model.initialize()
    assert_close(params.initial.cov[1:, 1:], 0.6 / (1 - 0.8**2) * np.eye(2), "stationary cycle covariance")
    assert _loglik(model, GDP) == pytest.approx(_sm_loglik(mod, values), rel=1e-10)


def test_with_stationary_initialization_is_the_model_built_there():
    """A model built at phi = 0.2 whose parameters are moved to phi = 0.6, variance 2: recomputing the
    stationary block gives the model built at phi = 0.6 (closed form 2 / (1 - 0.36)), and statsmodels'
    log likelihood there."""
    model = (st.LocalLevel(0.3) + st.AR([0.2], variance=1.0)).build(1.5)
    params, _ = model.initialize()
    params.dynamics.weights[1, 1], params.dynamics.cov[1, 1] = 0.6, 2.0
    moved = model.with_stationary_initialization(params)
    assert_close(moved.initial.cov, np.diag([0.0, 2.0 / (1 - 0.36)]), "initial.cov", rtol=1e-12)
    assert params.initial.cov[1, 1] == pytest.approx(1.0 / (1 - 0.04), rel=1e-12)  # the input is unchanged
    mod = UnobservedComponents(INFL, level="llevel", autoregressive=1, use_exact_diffuse=True)
    expected = _sm_loglik(mod, {"sigma2.irregular": 1.5, "sigma2.level": 0.3, "sigma2.ar": 2.0, "ar.L1": 0.6})
    assert model.marginal_log_prob(moved, INFL[:, None]) == pytest.approx(expected, rel=1e-10)
    assert model.marginal_log_prob(params, INFL[:, None]) != pytest.approx(expected, rel=1e-6)


def test_random_walk_regression_states_match_statsmodels():
    """Constant coefficients as diffuse states (statsmodels' mle_regression=False) and fixed
    coefficients as free parameters (mle_regression=True) on the inflation rate with two regressors."""
    x = np.column_stack([MACRO["unemp"].to_numpy(dtype=float), MACRO["tbilrate"].to_numpy(dtype=float)])
    states = UnobservedComponents(INFL, level="llevel", exog=x, mle_regression=False, use_exact_diffuse=True)
    model = (st.LocalLevel(0.3) + st.TimeVaryingRegression(x, stochastic=False)).build(1.5)
    ours = _loglik(model, INFL)
    assert ours == pytest.approx(_sm_loglik(states, {"sigma2.irregular": 1.5, "sigma2.level": 0.3}), rel=1e-10)

    # Fitted (per-step H frozen, the variances time-invariant): statsmodels' maximum, by L-BFGS and by EM.
    params, props = model.initialize()
    fitted, _ = model.fit_lbfgs(params, props, INFL[:, None], verbose=False, gradient_tolerance=1e-12)
    res = states.fit(method="lbfgs", maxiter=5000, disp=False, pgtol=1e-12, factr=1)
    assert model.marginal_log_prob(fitted, INFL[:, None]) == pytest.approx(res.llf, rel=1e-6)
    em, lls = model.fit_em(params, props, INFL[:, None], num_iters=500, verbose=False)
    assert np.all(np.diff(lls) >= -1e-8 * np.abs(lls[1:]))
    assert model.marginal_log_prob(em, INFL[:, None]) == pytest.approx(res.llf, rel=1e-6)

    coefs = UnobservedComponents(INFL, level="llevel", exog=x, use_exact_diffuse=True)
    model = (st.LocalLevel(0.3) + st.Regression(2, coef=[0.4, -0.2])).build(1.5)
    values = {"sigma2.irregular": 1.5, "sigma2.level": 0.3, "beta.x1": 0.4, "beta.x2": -0.2}
    assert _loglik(model, INFL, x) == pytest.approx(_sm_loglik(coefs, values), rel=1e-10)


def test_arma_matches_sarimax():
    """ARMA(2, 1) with the MA coefficient in the emission row (no observation noise) against SARIMAX's
    (Harvey's) form, both with the stationary initialization."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = INFL - INFL.mean()
    mod = SARIMAX(y, order=(2, 0, 1))
    model = st.ARMA([0.6, 0.2], [0.3], variance=7.0).build(None)
    expected = _sm_loglik(mod, {"ar.L1": 0.6, "ar.L2": 0.2, "ma.L1": 0.3, "sigma2": 7.0})
    assert _loglik(model, y) == pytest.approx(expected, rel=1e-10)


def test_dynamic_factor_matches_statsmodels():
    """A VAR(1) of two factors on four standardized macro growth rates, lower-triangular loadings
    (statsmodels' upper one set to 0), both with the stationary initialization."""
    from statsmodels.tsa.statespace.dynamic_factor import DynamicFactor

    y = _macro_growth()
    mod = DynamicFactor(y, k_factors=2, factor_order=1)
    lam = np.array([[0.8, 0.0], [0.7, 0.3], [0.9, -0.4], [0.2, 0.5]])
    a = np.array([[0.5, 0.1], [-0.2, 0.3]])
    r = np.array([0.3, 0.4, 0.5, 0.6])
    model = st.DynamicFactor(4, 2, "var1", loadings=lam, transition=a).build(r)
    values = dict(zip(mod.param_names, np.r_[lam.reshape(-1), r, a.reshape(-1)]))
    params, _ = model.initialize()
    assert model.marginal_log_prob(params, y) == pytest.approx(_sm_loglik(mod, values), rel=1e-10)


def test_parameter_names():
    model = (st.LocalLinearTrend() + st.Seasonal(12, harmonics=2) + st.Cycle(20.0) + st.AR(2)).build()
    params, props = model.initialize()
    labels = [label for label, _ in parameter_table(params, props)]
    assert labels == [
        "dynamics.weights.cycle.rho_cos",
        "dynamics.weights.cycle.rho_sin",
        "dynamics.weights.ar.coef[1]",
        "dynamics.weights.ar.coef[2]",
        "dynamics.cov.trend.level.variance",
        "dynamics.cov.trend.slope.variance",
        "dynamics.cov.seasonal.variance",
        "dynamics.cov.cycle.variance",
        "dynamics.cov.ar.variance",
        "emissions.cov.observation.variance",
    ]
    values = model.values(params)
    assert list(values) == [label.split(".", 2)[2] for label in labels] + [
        "cycle.damping",
        "cycle.frequency",
        "cycle.period",
    ]
    assert values["cycle.damping"] == pytest.approx(0.9, rel=1e-14)
    assert values["cycle.period"] == pytest.approx(20.0, rel=1e-14)
    dfm = st.DynamicFactor(3, 2).build()
    params, props = dfm.initialize()
    assert [label for label, _ in parameter_table(params, props)] == [
        "dynamics.weights.factor.ar[0]",
        "dynamics.weights.factor.ar[1]",
        "emissions.weights.factor.loading[0,0]",
        "emissions.weights.factor.loading[1,0]",
        "emissions.weights.factor.loading[1,1]",
        "emissions.weights.factor.loading[2,0]",
        "emissions.weights.factor.loading[2,1]",
        "emissions.cov.observation.variance[0]",
        "emissions.cov.observation.variance[1]",
        "emissions.cov.observation.variance[2]",
    ]


@pytest.mark.parametrize("method", ["fit_lbfgs", "fit_em"])
def test_nile_fit_reproduces_durbin_koopman_by_name(method):
    """DK 2012, Sec. 2.10.3 / 7.2: sigma2_eps = 15099, sigma2_eta = 1469.1, exact diffuse level."""
    model = st.LocalLevel(1000.0).build(10000.0)
    params, props = model.initialize()
    kwargs = dict(num_iters=2000, tolerance=1e-12) if method == "fit_em" else {}
    fitted, _ = getattr(model, method)(params, props, NILE[:, None], verbose=False, **kwargs)
    values = model.values(fitted)
    assert values == pytest.approx({"level.variance": 1469.1, "observation.variance": 15099.0}, rel=1e-3)
    summary = lgssm.FitResult(model, fitted, props, NILE[:, None]).summary()
    assert "dynamics.cov.level.variance" in summary and "emissions.cov.observation.variance" in summary


def _macro_growth():
    cols = ["realgdp", "realcons", "realinv", "realgovt"]
    y = 100 * np.diff(np.log(MACRO[cols].to_numpy(dtype=float)), axis=0)
    return (y - y.mean(0)) / y.std(0)


MLE_CASES = [
    ("nile-level", NILE, lambda: st.LocalLevel(1000.0).build(10000.0), dict(level="llevel"),
     {"sigma2.irregular": "observation.variance", "sigma2.level": "level.variance"}),
    ("co2-trend-trig-seasonal", CO2,
     lambda: (st.LocalLinearTrend(0.01, 1e-4) + st.Seasonal(12, harmonics=6, variance=1e-4)).build(0.01),
     dict(level="lltrend", freq_seasonal=[{"period": 12, "harmonics": 6}]),
     {"sigma2.irregular": "observation.variance", "sigma2.level": "trend.level.variance",
      "sigma2.trend": "trend.slope.variance", "sigma2.freq_seasonal_12(6)": "seasonal.variance"}),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name, y, build, uc_args, names", MLE_CASES, ids=[c[0] for c in MLE_CASES])
def test_mle_matches_statsmodels(name, y, build, uc_args, names):
    """Both fitted by L-BFGS with tight tolerances: the maxima agree to 1e-6 (relative), lgssm's is not
    below statsmodels', and statsmodels' own log likelihood at lgssm's estimates is lgssm's (1e-10).
    On the Nile the estimates agree to 1e-6 too (on CO2 the slope's variance is too flat to compare)."""
    mod = UnobservedComponents(y, use_exact_diffuse=True, **uc_args)
    mod.ssm.tolerance = 0.0
    res = mod.fit(method="lbfgs", maxiter=5000, disp=False, pgtol=1e-12, factr=1)
    model = build()
    params, props = model.initialize()
    fitted, lls = model.fit_lbfgs(params, props, y[:, None], verbose=False, gradient_tolerance=1e-12)
    ours = model.marginal_log_prob(fitted, y[:, None])
    assert ours == pytest.approx(res.llf, rel=1e-6)
    assert ours >= res.llf - 1e-10 * abs(res.llf)
    values = model.values(fitted)
    assert _sm_loglik(mod, {k: values[v] for k, v in names.items()}) == pytest.approx(ours, rel=1e-10)
    if name == "nile-level":
        assert [values[names[k]] for k in mod.param_names] == pytest.approx(list(res.params), rel=1e-6)


@pytest.mark.parametrize("case", ["level-cycle-ar", "dynamic-factor"])
def test_em_is_monotone(case):
    """Constrained EM (the cycle's linear transition, the AR row, lower-triangular loadings)."""
    if case == "level-cycle-ar":
        y = GDP[:120, None]
        model = (st.LocalLevel(0.5) + st.Cycle(24.0, 0.8, 0.5) + st.AR(1, variance=0.2)).build(0.1)
    else:
        y = _macro_growth()
        model = st.DynamicFactor(4, 2, "var1").build(0.5)
    params, props = model.initialize()
    fitted, lls = model.fit_em(params, props, y, num_iters=30, verbose=False)
    assert np.all(np.diff(lls) >= -1e-8 * np.abs(lls[1:]))
    # the fixed entries stay exactly as they are: the AR's and the cycle's zeros, the upper loading
    fixed = ~model.constraints["dynamics.weights"].design.any(axis=1).reshape(model.state_dim, -1, order="F")
    assert np.array_equal(fitted.dynamics.weights[fixed], params.dynamics.weights[fixed])
    assert np.array_equal(fitted.emissions.weights == 0, params.emissions.weights == 0)


def test_components_sum_to_smoothed_emission_mean():
    y = CO2.copy()
    y[[3, 40, 41, 200]] = np.nan
    x = np.random.default_rng(0).standard_normal((y.size, 1))
    model = (
        st.LocalLinearTrend(0.05, 1e-4) + st.Seasonal(12, variance=1e-3) + st.AR(1, variance=0.01)
        + st.Regression(1, coef=0.3)
    ).build(0.03)  # fmt: skip
    params, _ = model.initialize()
    parts = model.components(params, y, x)
    assert list(parts) == ["trend", "seasonal", "ar", "regression"]
    mean, _ = model.posterior_predictive(params, y[:, None], x)
    assert_close(sum(m for m, _ in parts.values()), mean, "sum of the components", rtol=1e-10)
    post = model.smoother(params, y[:, None], x)
    level_var = post.smoothed_covariances[:, 0, 0]
    assert_close(parts["trend"][1][:, 0], level_var, "the trend's variance", rtol=1e-12)
    assert_close(parts["regression"][0], 0.3 * x, "the regression's contribution", rtol=1e-14)


def test_components_of_a_dynamic_factor_model():
    y = _macro_growth()
    y[[3, 50], [1, 2]] = np.nan
    model = st.DynamicFactor(4, 2, "var1").build([0.5, 0.4, 0.3, 0.2])
    params, _ = model.initialize()
    ((mean, var),) = model.components(params, y).values()
    expected, stds = model.posterior_predictive(params, y)
    assert_close(mean, expected, "the factors' contribution", rtol=1e-10)
    assert_close(var + np.diag(params.emissions.cov), stds**2, "its variance plus R", rtol=1e-10)


def test_components_with_random_walk_coefficients_and_forecast_regressors():
    """Regressors given past the data (for a forecast): the components use the data's steps."""
    x = np.column_stack([MACRO["unemp"].to_numpy(dtype=float), np.ones(INFL.size)])
    x = np.vstack([x, x[-4:]])  # four forecast steps
    model = (st.AR(1, variance=2.0) + st.TimeVaryingRegression(x, variance=[0.01, 0.1])).build(1.0)
    params, _ = model.initialize()
    parts = model.components(params, INFL)
    mean, _ = model.posterior_predictive(params, INFL[:, None])
    assert_close(parts["ar"][0] + parts["tvreg"][0], mean, "sum of the components", rtol=1e-10)
    _, _, forecast, _ = model.forecast(params, INFL[:, None], 4)
    assert forecast.shape == (4, 1)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: st.Seasonal(12, harmonics=-1), "harmonics"),
        (lambda: st.Seasonal(12, harmonics=7), "harmonics"),
        (lambda: st.Seasonal(1), "period"),
        (lambda: st.Seasonal(1.5, harmonics=1), "period"),
        (lambda: st.Cycle(1.5), "period"),
        (lambda: st.Cycle(10.0, damping=1.0), "damping"),
        (lambda: st.LocalLevel(-1.0), "variance"),
        (lambda: st.AR(0), "ar"),
        (lambda: st.AR(1, initialization="known"), "initialization"),
        (lambda: st.TimeVaryingRegression(np.ones((5, 2)), variance=[1.0]), "variance"),
        (lambda: st.Regression(2, labels=["x", "x"]), "labels"),
        (lambda: st.AR([1.2]), "ar"),
        (lambda: st.ARMA(1, ma=-1), "ma"),
        (lambda: st.Regression(0), "num_inputs"),
        (lambda: st.DynamicFactor(3, 4), "num_factors"),
        (lambda: st.DynamicFactor(2, 2, loadings=np.ones((2, 2))), "loadings"),
        (lambda: st.LocalLevel(name="a.b"), "name"),
        (lambda: (st.LocalLevel() + st.LocalLevel()).build(), "components"),
        (lambda: (st.LocalLevel() + st.DynamicFactor(2, 1)).build(), "components"),
        (lambda: st.LocalLevel().build(observation_variance=0.0), "observation_variance"),
    ],
)
def test_bad_arguments_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=rf"^{argument}: expected"):
        make()


def test_exported():
    assert lgssm.structural is st
    assert "structural" in lgssm.__all__


def test_lbfgs_steps_over_a_variance_driven_to_zero():
    """From statsmodels' start values, a level + diffuse cycle on GDP growth: a trial step of L-BFGS
    underflows the observation variance to exactly 0, where the data have no density; that point is
    outside the domain (the line search backs off) rather than an error that ends the fit."""
    y = np.diff(GDP)
    mod = UnobservedComponents(y, level="llevel", cycle=True, stochastic_cycle=True, damped_cycle=True)
    start = dict(zip(mod.param_names, mod.start_params))
    cycle = st.Cycle(2 * np.pi / start["frequency.cycle"], start["damping.cycle"], start["sigma2.cycle"],
                     initialization="diffuse")  # fmt: skip
    model = (st.LocalLevel(start["sigma2.level"]) + cycle).build(start["sigma2.irregular"])
    params, props = model.initialize()
    fitted, lls = model.fit_lbfgs(params, props, y[:, None], verbose=False)
    assert np.all(np.isfinite(lls)) and lls[-1] > lls[0]
    assert model.marginal_log_prob(fitted, y[:, None]) == pytest.approx(lls[-1], rel=1e-12)
