"""Standard errors of continuous-time models (lgssm.diagnostics.information with times).

The exact score against central differences of log p(y); the exact Hessian against
Richardson-extrapolated central differences of the score, with irregular times,
missing data, several sequences, full and diagonal diffusion, frozen parameters, a
stiff drift;
and, for an Ornstein-Uhlenbeck process observed with noise at a uniform step, the
chain rule through the closed-form transition (a = e^{F h}, s = q (e^{2 F h} - 1) / (2 F),
its derivatives in 50-digit mpmath) applied to the discrete-time information.
"""

import copy
import re

import mpmath
import numpy as np
import pytest

import lgssm
from lgssm import diagnostics as dg

from conftest import assert_close, central_differences


def with_theta(params, names, theta):
    """A copy of ``params`` with the free values ``theta`` put back by their labels (both triangles of a covariance)."""
    out = copy.deepcopy(params)
    for name, value in zip(names, theta):
        group, field, i, j = re.fullmatch(r"(\w+)\.(\w+)\[(\d+)(?:,(\d+))?\]", name).groups()
        a = getattr(getattr(out, group), field)
        if j is None:
            a[int(i)] = value
        else:
            a[int(i), int(j)] = value
            if field.endswith("cov"):
                a[int(j), int(i)] = value
    return out


def irregular_case():
    """Two sequences at irregular times, some components and a whole step missing, everything free."""
    rng = np.random.default_rng(7)
    model = lgssm.ContinuousTimeSSM(2, 2)
    params, props = model.initialize(
        0,
        initial_mean=np.array([0.3, -0.2]),
        initial_covariance=np.array([[1.0, 0.2], [0.2, 0.5]]),
        drift=np.array([[-0.5, 0.8], [-0.6, -0.3]]),
        diffusion_covariance=np.array([[0.4, 0.1], [0.1, 0.2]]),
        emission_weights=np.array([[1.0, 0.3], [-0.2, 0.7]]),
        emission_bias=np.array([0.1, -0.1]),
        emission_covariance=np.array([[0.3, 0.05], [0.05, 0.2]]),
    )
    times = [np.cumsum(rng.uniform(0.05, 0.6, size=n)) for n in (30, 22)]
    ys = [model.sample(params, 3 + i, times=t)[1] for i, t in enumerate(times)]
    ys[0][4, 1] = ys[0][9, :] = ys[1][5, 0] = np.nan
    return model, params, props, ys, times


def uniform_case():
    """One sequence at a uniform step, diagonal diffusion, frozen emission weights and initial mean."""
    model = lgssm.ContinuousTimeSSM(2, 1)
    params, props = model.initialize(
        1,
        drift=np.array([[0.0, 1.0], [-0.8, -0.4]]),
        diffusion_covariance=np.diag([0.05, 0.3]),
        emission_weights=np.array([[1.0, 0.0]]),
        emission_covariance=np.array([[0.2]]),
    )
    props.dynamics.diffusion_cov.structure = "diagonal"
    props.emissions.weights.trainable = props.initial.mean.trainable = False
    return model, params, props, model.sample(params, 5, dt=0.5, num_timesteps=60)[1], None


def stiff_case():
    """A non-normal stiff drift (eigenvalues -200 and -1) over gaps of mean 2 (about 10 doublings, the first
    on A - I, the last on A); only the dynamics free."""
    rng = np.random.default_rng(13)
    model = lgssm.ContinuousTimeSSM(2, 2)
    v = np.array([[1.0, 0.5], [0.3, 1.0]])
    params, props = model.initialize(
        2, drift=v @ np.diag([-200.0, -1.0]) @ np.linalg.inv(v), diffusion_covariance=np.array([[1.0, 0.3], [0.3, 0.5]])
    )
    for g in (props.initial, props.emissions):
        for p in vars(g).values():
            p.trainable = False
    times = np.cumsum(rng.exponential(2.0, size=25))
    return model, params, props, model.sample(params, 6, times=times)[1], times


CASES = {"irregular_missing": irregular_case(), "uniform_diagonal_frozen": uniform_case(), "stiff": stiff_case()}


def info_of(case, params=None, hessian=True):
    model, p, props, y, times = case
    step = {"times": times} if times is not None else {"dt": 0.5}
    return dg.information(model, p if params is None else params, props, y, hessian=hessian, **step)


def log_prob(case, params):
    model, _, _, y, times = case
    step = {"times": times} if times is not None else {"dt": 0.5}
    return float(np.sum(model.marginal_log_prob(params, y, **step)))


@pytest.mark.parametrize("name", list(CASES))
def test_score_is_the_derivative_of_log_prob(name):
    case = CASES[name]
    info = info_of(case, hessian=False)
    assert info.names == [label for label, _ in dg.parameter_table(case[1], case[2])]
    assert "dynamics.drift[1,0]" in info.names and "dynamics.diffusion_cov[1,1]" in info.names
    assert_close(info.marginal_loglik, log_prob(case, case[1]), "loglik", rtol=1e-12)
    fd = central_differences(lambda th: log_prob(case, with_theta(case[1], info.names, th)), info.estimates, 1e-6)
    assert_close(info.score, fd, f"{name} score", rtol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_hessian_is_the_derivative_of_the_score(name):
    case = CASES[name]
    info = info_of(case)

    def score(theta):
        return info_of(case, with_theta(case[1], info.names, theta), hessian=False).score

    fd = dg._richardson_jacobian(score, info.estimates, 1e-3)
    assert_close(info.hessian, fd, f"{name} Hessian", rtol=1e-6)
    assert_close(info.hessian, info.hessian.T, "symmetric", rtol=1e-14)


def test_ornstein_uhlenbeck_by_the_chain_rule():
    """theta_ct = (m, S, F, q, h, d, r) and theta_d = (m, S, a, s, h, d, r) share their order,
    so score_ct = J^T score_d and H_ct = J^T H_d J + sum_i score_d,i d^2 theta_d,i (J = d theta_d / d theta_ct)."""
    h, f, q = 0.7, -0.9, 0.5
    model = lgssm.ContinuousTimeSSM(1, 1)
    params, props = model.initialize(
        0, initial_covariance=[[2.0]], drift=[[f]], diffusion_covariance=[[q]], emission_weights=[[1.3]]
    )
    y = model.sample(params, 11, dt=h, num_timesteps=80)[1]
    info = dg.information(model, params, props, y, dt=h)

    mpmath.mp.dps = 50
    a = lambda F, Q: mpmath.exp(F * h)  # noqa: E731
    s = lambda F, Q: Q * (mpmath.exp(2 * F * h) - 1) / (2 * F)  # noqa: E731
    d = {(fn, i, j): float(mpmath.diff(fn, (f, q), (i, j))) for fn in (a, s) for i in range(3) for j in range(3)}

    discrete = lgssm.LinearGaussianSSM(1, 1, has_dynamics_bias=False)
    dparams = model.discrete_params(params, h * np.arange(len(y)))
    dprops = lgssm.params.default_props(dparams)
    dprops.dynamics.bias.trainable = dprops.dynamics.input_weights.trainable = False
    ref = dg.information(discrete, dparams, dprops, y)
    assert [n.replace("weights", "drift").replace(".cov", ".diffusion_cov") for n in ref.names[2:4]] == info.names[2:4]
    assert_close(np.array(ref.estimates[2:4]), np.array([d[(a, 0, 0)], d[(s, 0, 0)]]), "a, s", rtol=1e-13)

    jac = np.eye(info.estimates.size)
    jac[2:4, 2:4] = [[d[(a, 1, 0)], 0.0], [d[(s, 1, 0)], d[(s, 0, 1)]]]
    curvature = np.zeros_like(jac)
    curvature[2:4, 2:4] = ref.score[2] * np.array([[d[(a, 2, 0)], 0.0], [0.0, 0.0]]) + ref.score[3] * np.array(
        [[d[(s, 2, 0)], d[(s, 1, 1)]], [d[(s, 1, 1)], 0.0]]
    )
    assert_close(info.score, jac.T @ ref.score, "score", rtol=1e-10)
    assert_close(info.hessian, jac.T @ ref.hessian @ jac + curvature, "Hessian", rtol=1e-9)
    assert_close(info.opg, jac.T @ ref.opg @ jac, "OPG", rtol=1e-10)
    assert_close(info.oim, jac.T @ ref.oim @ jac, "Harvey's information", rtol=1e-10)


def test_times_are_checked():
    model, params, props, y, times = CASES["irregular_missing"]
    with pytest.raises(ValueError, match="times, dt: expected exactly one"):
        dg.information(model, params, props, y)
    discrete = lgssm.LinearGaussianSSM(2, 2)
    dparams, dprops = discrete.initialize(0)
    with pytest.raises(ValueError, match="times, dt: expected None for a LinearGaussianSSM"):
        dg.information(discrete, dparams, dprops, y[0], dt=1.0)


def test_fit_result_of_a_continuous_time_model():
    """FitResult with times: the information's standard errors, the discrete-time residuals, the bootstrap."""
    model, params, props, y, times = CASES["irregular_missing"]
    props = copy.deepcopy(props)
    props.initial.mean.trainable = props.initial.cov.trainable = props.emissions.weights.trainable = False
    fit = dg.FitResult(model, params, props, y, times=times, cov_type="oim")  # the truth, not a maximum
    info = info_of((model, params, props, y, times))
    assert fit.param_names == info.names and fit.num_params == len(info.names) == 12
    assert_close(fit.bse, np.sqrt(np.diag(info.cov_params("oim"))), "bse", rtol=1e-12)
    assert_close(fit.loglik, log_prob(CASES["irregular_missing"], params), "loglik", rtol=1e-12)
    inn = fit.innovations()
    assert isinstance(inn, list) and len(inn) == 2 and len(fit.disturbances()) == 2
    assert inn[1].standardized_innovations.shape == y[1].shape
    assert "dynamics.drift[1,0]" in fit.summary()
    for method in ("parametric", "innovations"):
        boot = fit.bootstrap(num_replicates=3, method=method, num_iters=5, key=1)
        assert boot.replicates.shape == (3, 12) and boot.names == fit.param_names
    with pytest.raises(ValueError, match="times, dt: expected exactly one"):
        dg.FitResult(model, params, props, y)
