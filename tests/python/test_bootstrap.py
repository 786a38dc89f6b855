"""Bootstrap intervals (lgssm.bootstrap, FitResult.bootstrap) and the innovations form
that the innovations bootstrap runs (_core.emissions_from_innovations).

The innovations form is exact: the standardized innovations of the emissions it
makes are the ones it was given, and the data's own give the data back. The
bootstrap is checked for reproducibility (the same key gives the same replicates on
1 or 2 threads and on a Dask cluster), for the pattern-preserving resampling, and
against the Monte Carlo spread of the MLE over data sets drawn from the true model.
"""

import numpy as np
import pytest

import lgssm
from lgssm import _core
from lgssm import diagnostics as dg

from conftest import ar1_plus_noise, assert_close


def correlated_model():
    """State 2, emission 3 with correlated R, inputs and biases."""
    model = lgssm.LinearGaussianSSM(2, 3, input_dim=1)
    params, props = model.initialize(
        1,
        dynamics_weights=np.array([[0.9, 0.2], [-0.1, 0.7]]),
        dynamics_bias=np.array([0.1, -0.2]),
        dynamics_input_weights=np.array([[0.5], [0.0]]),
        dynamics_covariance=np.array([[0.3, 0.1], [0.1, 0.2]]),
        emission_bias=np.array([1.0, 0.0, -1.0]),
        emission_input_weights=np.array([[0.0], [0.3], [0.0]]),
        emission_covariance=np.array([[0.5, 0.2, 0.0], [0.2, 0.4, 0.1], [0.0, 0.1, 0.3]]),
    )
    return model, params, props


def data_with_gaps(model, params, steps=60, seed=3):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(steps, 1))
    _, y = model.sample(params, seed, steps, u)
    y[rng.random(y.shape) < 0.15] = np.nan
    y[10] = np.nan
    return y, u


def test_innovations_form_gives_the_data_back():
    model, params, _ = correlated_model()
    y, u = data_with_gaps(model, params)
    core = model.core_params(params)
    w = _core.innovations(core, [y], [u])[0]["standardized_innovations"]
    back = _core.emissions_from_innovations(core, [y], [u], [w])[0]
    assert np.array_equal(np.isnan(back), np.isnan(y))
    assert_close(back[~np.isnan(y)], y[~np.isnan(y)], "emissions", rtol=1e-10)


def test_innovations_form_has_the_given_innovations():
    model, params, _ = correlated_model()
    y, u = data_with_gaps(model, params)
    core = model.core_params(params)
    w = np.where(np.isnan(y), np.nan, np.random.default_rng(5).normal(size=y.shape))
    made = _core.emissions_from_innovations(core, [y], [u], [w])[0]
    again = _core.innovations(core, [made], [u])[0]["standardized_innovations"]
    assert_close(again[~np.isnan(y)], w[~np.isnan(y)], "standardized innovations", rtol=1e-10)


def test_innovations_form_rejects_bad_innovations():
    model, params, _ = correlated_model()
    y, u = data_with_gaps(model, params)
    core = model.core_params(params)
    with pytest.raises(ValueError, match="standardized: expected shape"):
        _core.emissions_from_innovations(core, [y], [u], [np.zeros((5, 3))])
    w = np.zeros_like(y)
    w[0, 0] = np.nan
    y[0, 0] = 1.0
    with pytest.raises(ValueError, match="standardized: expected finite values at the observed components of step 0"):
        _core.emissions_from_innovations(core, [y], [u], [w])
    with pytest.raises(ValueError, match="standardized: expected one array per sequence"):
        _core.emissions_from_innovations(core, [y], [u], [])


def test_resampling_keeps_each_steps_pattern():
    from lgssm.bootstrap import _resampled

    rng = np.random.default_rng(0)
    w = [rng.normal(size=(40, 3)), rng.normal(size=(25, 3))]
    w[0][rng.random((40, 3)) < 0.3] = np.nan
    w[1][5:9] = np.nan
    out = _resampled(w, 2, np.random.default_rng(1))
    for a, b in zip(w, out):
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert np.array_equal(a[:2], b[:2], equal_nan=True)  # the burn-in steps keep theirs
    pool = {tuple(r) for a in w for r in np.nan_to_num(a[2:], nan=np.inf)}
    assert all(tuple(r) in pool for b in out for r in np.nan_to_num(b[2:], nan=np.inf))
    assert not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(w, out))


def local_level(sigma_eta=1.0, sigma_eps=2.0):
    model = lgssm.LinearGaussianSSM(1, 1)
    params, props = model.initialize(
        initial_mean=np.zeros(1),
        initial_covariance=np.eye(1) * 10.0,
        dynamics_weights=np.eye(1),
        dynamics_covariance=np.eye(1) * sigma_eta,
        emission_weights=np.eye(1),
        emission_covariance=np.eye(1) * sigma_eps,
    )
    for group, g in lgssm.params.param_groups(props):
        for name, prop in vars(g).items():
            prop.trainable = name == "cov" and group != "initial"
    return model, params, props


def fitted_local_level(seed=0, steps=150):
    model, params, props = local_level()
    _, y = model.sample(params, seed, steps)
    fitted, _ = model.fit_lbfgs(params, props, y, verbose=False)
    return dg.FitResult(model, fitted, props, y)


@pytest.mark.parametrize("method", ["parametric", "innovations"])
def test_bootstrap_is_reproducible_across_workers(method):
    result = fitted_local_level()
    one = result.bootstrap(12, method=method, key=7, num_workers=1)
    two = result.bootstrap(12, method=method, key=7, num_workers=2)
    assert one.names == ["dynamics.cov[0,0]", "emissions.cov[0,0]"]
    assert np.array_equal(one.replicates, two.replicates)
    assert one.replicates.shape == (12, 2) and one.num_failed == 0
    other = result.bootstrap(12, method=method, key=8, num_workers=2)
    assert not np.array_equal(one.replicates, other.replicates)
    lo_hi = one.intervals(0.9)
    assert np.all(lo_hi[:, 0] <= lo_hi[:, 1])
    assert "bootstrap, 12 replicates" in str(one)


def test_bootstrap_on_a_dask_cluster_equals_threads():
    distributed = pytest.importorskip("dask.distributed", exc_type=ImportError)
    result = fitted_local_level()
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        on_dask = result.bootstrap(6, key=3, client=client)
    assert np.array_equal(on_dask.replicates, result.bootstrap(6, key=3).replicates)


@pytest.mark.parametrize("method", ["parametric", "innovations"])
def test_bootstrap_spread_matches_the_sampling_spread_of_the_mle(method):
    """Bootstrap standard errors estimate the spread of the MLE over data sets from
    the true model. The Monte Carlo standard deviation of each variance's MLE over 200
    data sets (fixed seeds) is compared with the mean bootstrap standard error over 10
    other data sets (100 replicates each). Measured: ratios 1.01 and 1.02
    (parametric), 1.00 and 0.95 (innovations). The bound of 0.25 is about three
    times the combined error of the two estimates (the bootstrap standard error
    varies by about 25% between data sets, and the Monte Carlo one by 5%)."""
    model, true, props = local_level()
    estimates = []
    for seed in range(100, 300):
        _, y = model.sample(true, seed, 150)
        fitted, _ = model.fit_lbfgs(true, props, y, verbose=False)
        estimates.append([float(fitted.dynamics.cov[0, 0]), float(fitted.emissions.cov[0, 0])])
    mc_sd = np.std(estimates, axis=0, ddof=1)
    boot = [fitted_local_level(seed).bootstrap(100, method=method, key=seed).standard_errors for seed in range(10)]
    ratio = np.mean(boot, axis=0) / mc_sd
    assert np.all(np.abs(ratio - 1.0) < 0.25), ratio


def test_bootstrap_rejects_bad_arguments():
    result = fitted_local_level()
    with pytest.raises(ValueError, match="method: expected one of"):
        result.bootstrap(5, method="wild")
    with pytest.raises(ValueError, match="num_replicates: expected an integer >= 2"):
        result.bootstrap(1)
    with pytest.raises(ValueError, match="num_workers: expected an integer >= 1"):
        result.bootstrap(5, num_workers=0)
    with pytest.raises(ValueError, match="fit: expected 'em' or 'lbfgs'"):
        result.bootstrap(3, fit="newton")
    with pytest.raises(ValueError, match="level: expected a number in"):
        result.bootstrap(3).intervals(1.5)


def test_innovations_form_refuses_a_diffuse_initial_state():
    model = lgssm.LinearGaussianSSM(1, 1, initialization="diffuse")
    params, _ = model.initialize(0)
    y = np.ones((5, 1))
    core = model.core_params(params)
    with pytest.raises(ValueError, match="initial.diffuse: expected no diffuse part"):
        _core.emissions_from_innovations(core, [y], [np.zeros((5, 0))], [np.zeros((5, 1))])


def test_bootstrap_intervals_cover_the_truth():
    """Over 200 simulated data sets (fixed seeds) of an AR(1) plus noise, T = 400 (the
    model of test_information's Wald coverage), the 95% parametric-bootstrap percentile
    intervals (200 refits each) cover each true parameter 95% +- 3.5% of the time.
    Measured: 0.945, 0.945 and 0.92 (AR coefficient, its noise variance, the
    observation variance); the innovations bootstrap gave 0.955, 0.935 and 0.93."""
    model, truth, props, theta = ar1_plus_noise()
    hits = np.zeros(3)
    for i in range(200):
        _, y = model.sample(truth, 1000 + i, 400)
        fitted, _ = model.fit_lbfgs(truth, props, y, verbose=False, max_iters=200)
        ci = dg.FitResult(model, fitted, props, y).bootstrap(200, key=i).intervals(0.95)
        hits += (ci[:, 0] <= theta) & (theta <= ci[:, 1])
    rate = hits / 200
    print("coverage of the 95% bootstrap percentile intervals:", rate)
    assert np.all(np.abs(rate - 0.95) <= 0.035), rate
