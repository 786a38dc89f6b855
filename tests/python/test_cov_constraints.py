"""Covariance constraints (lgssm.constraints on a covariance): the M-step's
covariance against its defining property (zero beta-gradient of the expected
complete-data log likelihood), EM's monotonicity and its optimum against L-BFGS
over beta, the beta-space gradient (log standard deviations for variances)
against finite differences, the full/diagonal/scalar structures as special cases
(1e-12), deterministic components (fixed zero variances) kept exactly, the
builders, the JSON round trip and the errors."""

import numpy as np
import pytest

import lgssm
from lgssm import LinearGaussianSSM, _core
from lgssm.constraints import block_diagonal, diagonal, equalvarcov, linear, pattern, unconstrained
from lgssm.params import from_core, props_to_core

from conftest import assert_close, central_differences


def trend_ar_case(r_constraint=None):
    """State 3 (a level, a deterministic slope, an AR(1) component), emission 2,
    T = 300. Q = diag(level, 0, ar): the slope has no noise; the AR coefficient is
    the one free entry of F; H is fixed; R is an equal-variance-and-covariance pair."""
    model = LinearGaussianSSM(3, 2, has_dynamics_bias=False, has_emissions_bias=False)
    f = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.7]])
    h = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    truth, props = model.initialize(
        0,
        initial_mean=np.array([0.0, 0.1, 0.0]),
        initial_covariance=np.diag([1.0, 0.1, 1.0]),
        dynamics_weights=f,
        dynamics_covariance=np.diag([0.05, 0.0, 0.3]),
        emission_weights=h,
        emission_covariance=np.array([[0.5, 0.2], [0.2, 0.5]]),
    )
    _, y = model.sample(truth, 11, 300)
    props.initial.mean.trainable = props.initial.cov.trainable = False
    props.emissions.weights.trainable = False
    props.dynamics.weights.constraint = pattern([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, "phi"]])
    props.dynamics.cov.constraint = diagonal(["level", 0.0, "ar"])
    props.emissions.cov.constraint = equalvarcov(2) if r_constraint is None else r_constraint
    start, _ = model.initialize(
        0,
        initial_mean=truth.initial.mean,
        initial_covariance=truth.initial.cov,
        dynamics_weights=np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.3]]),
        dynamics_covariance=np.diag([0.2, 0.0, 0.1]),
        emission_weights=h,
        emission_covariance=np.eye(2),
    )
    return model, start, props, y


def on_constraint(value, c, name):
    v = np.asarray(value).reshape(-1, order="F")
    beta = np.linalg.lstsq(c.design, v - c.fixed, rcond=None)[0]
    assert_close(c.fixed + c.design @ beta, v, name, rtol=1e-12, atol=1e-14)


def test_builders():
    assert_close(diagonal(["a", 0.0, "a"]).matrix([2.0]), np.diag([2.0, 0.0, 2.0]), "diagonal")
    assert diagonal(2).names == ("var[0]", "var[1]")
    assert_close(equalvarcov(3).matrix([2.0, 0.5]), 1.5 * np.eye(3) + 0.5, "equalvarcov")
    full = unconstrained(2, "q")
    assert full.names == ("q[0,0]", "q[1,0]", "q[1,1]")
    assert_close(full.matrix([1.0, 0.3, 2.0]), np.array([[1.0, 0.3], [0.3, 2.0]]), "unconstrained")
    c = block_diagonal(diagonal(["level"]), np.zeros((1, 1)), full)
    expected = np.zeros((4, 4))
    expected[0, 0] = 5.0
    expected[2:, 2:] = [[1.0, 0.3], [0.3, 2.0]]
    assert_close(c.matrix([5.0, 1.0, 0.3, 2.0]), expected, "block_diagonal")
    with pytest.raises(ValueError, match=r"blocks\[0\]: expected a square matrix"):
        block_diagonal(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="covariance: expected a name other than the variance's"):
        equalvarcov(2, "v", "v")


def test_m_step_covariance_zeroes_the_beta_gradient():
    """With the weights held, the M-step's covariances maximize E[log p(z, y)] over
    their free values: the beta-gradient there vanishes (the projection is the MLE
    on a Jordan algebra of symmetric matrices, props.hpp)."""
    model, start, props, y = trend_ar_case()
    props.dynamics.weights.trainable = False
    props.dynamics.weights.constraint = None
    core_props = props_to_core(props)
    p0 = _core.project_constraints(model.core_params(start), core_props)
    stats = _core.sufficient_stats(p0, [y], [np.zeros((len(y), 0))], False)
    p1 = _core.m_step(p0, core_props, stats, None)
    fitted = from_core(p1, start)
    on_constraint(fitted.dynamics.cov, props.dynamics.cov.constraint, "dynamics.cov")
    on_constraint(fitted.emissions.cov, props.emissions.cov.constraint, "emissions.cov")
    assert fitted.dynamics.cov[1, 1] == 0.0 and fitted.dynamics.cov[0, 1] == 0.0
    g = np.asarray(_core.log_prob_gradient(p1, core_props, stats, None))
    g0 = np.asarray(_core.log_prob_gradient(p0, core_props, stats, None))
    assert g.size == 4  # level, ar, variance, covariance
    assert np.abs(g).max() < 1e-8 * np.abs(g0).max(), (g, g0)


@pytest.mark.parametrize("r", ["equalvarcov", "shared diagonal", "full"])
def test_em_is_monotone_keeps_the_zeros_and_reaches_the_lbfgs_optimum(r):
    r_constraint = {"equalvarcov": None, "shared diagonal": diagonal(["r", "r"]), "full": unconstrained(2)}[r]
    model, start, props, y = trend_ar_case(r_constraint)
    _, lls = model.fit_em(start, props, y, num_iters=150, tolerance=0.0, verbose=False)
    lls = np.asarray(lls)
    assert np.all(np.diff(lls) >= -1e-8 * np.abs(lls[1:])), np.diff(lls).min()
    em, _ = model.fit_em(start, props, y, num_iters=2000, accelerate=True, verbose=False)
    for fitted in (em,):
        on_constraint(fitted.dynamics.cov, props.dynamics.cov.constraint, "dynamics.cov")
        on_constraint(fitted.emissions.cov, props.emissions.cov.constraint, "emissions.cov")
        assert np.all(fitted.dynamics.cov[1] == 0.0) and np.all(fitted.dynamics.weights[1] == [0.0, 1.0, 0.0])
    lb, _ = model.fit_lbfgs(start, props, y, max_iters=2000, verbose=False)
    on_constraint(lb.dynamics.cov, props.dynamics.cov.constraint, "dynamics.cov")
    on_constraint(lb.emissions.cov, props.emissions.cov.constraint, "emissions.cov")
    ll_em, ll_lb = model.marginal_log_prob(em, y), model.marginal_log_prob(lb, y)
    assert abs(ll_lb - ll_em) < 1e-6 * abs(ll_em), (ll_em, ll_lb)
    assert ll_em > lls[-1] - 1e-8 * abs(lls[-1])


def test_beta_gradient_matches_finite_differences():
    """The gradient over the unconstrained values (AR coefficient; log standard
    deviations of the free variances; the equal-variance-and-covariance pair
    linearly) against central differences of the exact log likelihood."""
    model, start, props, y = trend_ar_case()
    core_props = props_to_core(props)
    base = _core.project_constraints(model.core_params(start), core_props)
    x = np.asarray(_core.to_unconstrained(base, core_props))
    assert x.size == 5

    def ll(v):
        return model.marginal_log_prob(from_core(_core.from_unconstrained(v, base, core_props), start), y)

    stats = _core.sufficient_stats(base, [y], [np.zeros((len(y), 0))], False)
    g = np.asarray(_core.log_prob_gradient(base, core_props, stats, None))
    fd = central_differences(ll, x)
    assert_close(g, fd, "gradient", rtol=1e-6, atol=1e-6 * np.abs(fd).max())


STRUCTURES = {
    "full": (lambda c: c, unconstrained),
    "diagonal": (lambda c: np.diag(np.diag(c)), diagonal),
    "scalar": (lambda c: np.eye(len(c)) * np.mean(np.diag(c)), lambda n: diagonal(["v"] * n)),
}


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_structures_are_special_cases(structure):
    """Today's full, diagonal and scalar structures and the constraints that say the
    same give the same EM fit (1e-12) and, fitting the covariances and biases by
    L-BFGS, the same optimum (1e-6 in log likelihood: log-Cholesky or log standard
    deviations against the constraint's exponential map or log standard deviations)."""
    shape, constraint = STRUCTURES[structure]
    model = LinearGaussianSSM(3, 4)
    h = np.random.default_rng(2).normal(size=(4, 3))
    q = np.array([[0.5, 0.1, 0.0], [0.1, 0.4, 0.05], [0.0, 0.05, 0.3]])
    r = 0.3 * np.eye(4) + 0.1
    truth, _ = model.initialize(
        3, dynamics_weights=0.8 * np.eye(3), dynamics_covariance=q, emission_weights=h, emission_covariance=r
    )
    _, y = model.sample(truth, 5, 400)
    start, props = model.initialize(
        4,
        dynamics_weights=0.7 * np.eye(3),
        dynamics_covariance=shape(q + 0.2),
        emission_weights=h + 0.1,
        emission_covariance=shape(r + 0.5 * np.eye(4)),
    )
    _, same = model.initialize(4)
    for group in (props.dynamics, props.emissions):
        group.cov.structure = structure
    for group, n in ((same.dynamics, 3), (same.emissions, 4)):
        group.cov.constraint = constraint(n)
    a, lls_a = model.fit_em(start, props, y, num_iters=30, verbose=False)
    b, lls_b = model.fit_em(start, same, y, num_iters=30, verbose=False)
    assert_close(np.asarray(lls_b), np.asarray(lls_a), "EM log likelihoods", rtol=1e-12)
    for name in ("weights", "cov"):
        for ga, gb in ((a.dynamics, b.dynamics), (a.emissions, b.emissions)):
            assert_close(np.asarray(getattr(gb, name)), np.asarray(getattr(ga, name)), name, rtol=1e-12, atol=1e-13)
    for p in (props, same):  # only the covariances and biases, an identified fit
        p.dynamics.weights.trainable = p.emissions.weights.trainable = False
        p.initial.mean.trainable = p.initial.cov.trainable = False
    la, _ = model.fit_lbfgs(start, props, y, max_iters=3000, verbose=False)
    lb, _ = model.fit_lbfgs(start, same, y, max_iters=3000, verbose=False)
    ll_a, ll_b = model.marginal_log_prob(la, y), model.marginal_log_prob(lb, y)
    assert abs(ll_a - ll_b) < 1e-6 * abs(ll_a), (ll_a, ll_b)


def test_deterministic_rows_refuse_free_weights_in_gradient_fits():
    model, start, props, y = trend_ar_case()
    props.dynamics.weights.constraint = pattern([[1.0, 1.0, 0.0], [0.0, "s", 0.0], [0.0, 0.0, "phi"]])
    for fit in (model.fit_em, model.fit_lbfgs):
        with pytest.raises(ValueError, match=r"free entries only in rows with noise.*row 1, whose variance is"):
            fit(start, props, y, verbose=False)


def test_parameter_table_and_count_use_the_names():
    model, start, props, y = trend_ar_case()
    fitted, _ = model.fit_em(start, props, y, num_iters=5, verbose=False)
    rows = dict(lgssm.diagnostics.parameter_table(fitted, props))
    assert list(rows) == [
        "dynamics.weights.phi",
        "dynamics.cov.level",
        "dynamics.cov.ar",
        "emissions.cov.variance",
        "emissions.cov.covariance",
    ]
    assert rows["dynamics.cov.ar"] == fitted.dynamics.cov[2, 2]
    assert rows["emissions.cov.covariance"] == pytest.approx(fitted.emissions.cov[0, 1], rel=1e-14)
    assert lgssm.diagnostics.num_parameters(model, fitted, props) == 5


def test_json_round_trip(tmp_path):
    model, start, props, _ = trend_ar_case()
    path = tmp_path / "m.json"
    lgssm.io.save_model(path, model, start, props)
    _, _, back = lgssm.io.load_model(path)
    assert back.dynamics.cov.constraint == props.dynamics.cov.constraint
    assert back.emissions.cov.constraint == props.emissions.cov.constraint


def test_gibbs_refuses_covariance_constraints():
    model, start, props, y = trend_ar_case()
    conj = lgssm.LinearGaussianConjugateSSM(3, 2, has_dynamics_bias=False, has_emissions_bias=False)
    with pytest.raises(ValueError, match="no element-wise constraints"):
        conj.fit_blocked_gibbs(0, start, 2, y, props=props, verbose=False)


def test_non_jordan_and_fixed_block_errors():
    model, start, props, y = trend_ar_case()
    # diag(a, 0, 2a): not closed under squaring, so the projection is not the MLE there.
    props.dynamics.cov.constraint = linear(np.zeros((3, 3)), np.eye(9)[:, [0, 8]] @ np.array([[1.0], [2.0]]))
    with pytest.raises(ValueError, match=r"constraint.design: expected free values whose span is closed"):
        model.fit_em(start, props, y, num_iters=2, verbose=False)
    props.dynamics.cov.constraint = block_diagonal(diagonal(["a"]), -np.eye(1), diagonal(["b"]))
    with pytest.raises(ValueError, match=r"constraint.fixed \(its block of fixed components\)"):
        model.fit_em(start, props, y, num_iters=2, verbose=False)
