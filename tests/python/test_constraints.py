"""Element-wise constraints vec(M) = fixed + design @ beta (lgssm.constraints):
the constrained M-step against its defining property (zero gradient of the
expected complete-data log likelihood in beta), EM's monotonicity and its
optimum against L-BFGS over beta, the beta-space gradient against finite
differences, the identity constraint against today's EM, the JSON round trip
and the errors."""

import numpy as np
import pytest

import lgssm
from lgssm import LinearGaussianSSM, _core
from lgssm.constraints import linear, pattern
from lgssm.params import from_core, props_to_core

from conftest import assert_close, central_differences
from peer_models import inputs_case


def constrained_case():
    """State 2, emission 4, input 1, T = 300: loadings lower-triangular with a
    tied pair, a diagonal dynamics matrix, an emission bias with two equal
    entries, a fixed input weight and an initial mean on a line."""
    rng = np.random.default_rng(7)
    model = LinearGaussianSSM(2, 4, input_dim=1)
    h = np.array([[1.0, 0.0], [0.5, 1.0], [0.5, -0.7], [0.3, 0.4]])
    truth, props = model.initialize(
        0,
        initial_mean=np.array([1.0, 2.0]),
        initial_covariance=np.eye(2),
        dynamics_weights=np.diag([0.9, 0.6]),
        dynamics_bias=np.array([0.1, -0.1]),
        dynamics_input_weights=np.array([[0.5], [0.0]]),
        dynamics_covariance=np.array([[0.3, 0.05], [0.05, 0.2]]),
        emission_weights=h,
        emission_bias=np.array([0.2, 0.2, -0.3, 0.0]),
        emission_input_weights=np.zeros((4, 1)),
        emission_covariance=np.diag([0.2, 0.3, 0.25, 0.4]),
    )
    u = rng.normal(size=(300, 1))
    _, y = model.sample(truth, 3, 300, u)
    props.emissions.weights.constraint = pattern([["h0", 0.0], ["h1", "h2"], ["h1", "h3"], ["h4", "h5"]])
    props.dynamics.weights.constraint = pattern([["f0", 0.0], [0.0, "f1"]])
    props.emissions.bias.constraint = pattern(["d0", "d0", "d1", "d2"])
    props.dynamics.input_weights.constraint = pattern([["b0"], [0.0]])
    props.initial.mean.constraint = linear([0.0, 1.0], [[1.0], [1.0]], names=["m"])
    start, _ = model.initialize(1, emission_input_weights=np.zeros((4, 1)))
    return model, start, props, y, u


def satisfies(params, props):
    """Every constrained parameter equals fixed + design beta for some beta."""
    for group in ("initial", "dynamics", "emissions"):
        for f in ("mean", "weights", "bias", "input_weights"):
            prop = getattr(getattr(props, group), f, None)
            if prop is None or prop.constraint is None:
                continue
            c = prop.constraint
            v = np.asarray(getattr(getattr(params, group), f)).reshape(-1, order="F")
            beta = np.linalg.lstsq(c.design, v - c.fixed, rcond=None)[0]
            assert_close(c.fixed + c.design @ beta, v, f"{group}.{f}", rtol=1e-12, atol=1e-12)


def test_pattern_and_linear():
    c = pattern([["a", 0.0], ["b", "a"]])
    assert c.names == ("a", "b") and c.shape == (2, 2)
    assert_close(c.matrix([2.0, 3.0]), np.array([[2.0, 0.0], [3.0, 2.0]]), "pattern")
    v = pattern(["x", 1.5, "x"])
    assert_close(v.matrix([4.0]), np.array([4.0, 1.5, 4.0]), "vector pattern")
    assert linear(np.zeros((2, 2)), np.eye(4)).names == ("beta[0]", "beta[1]", "beta[2]", "beta[3]")
    assert pattern([["a", 0.0], ["b", "a"]]) == c and hash(pattern([["a", 0.0], ["b", "a"]])) == hash(c)


def test_m_step_zeroes_the_beta_gradient():
    """With the covariances held, the M-step's W is the maximizer over beta of
    E[log p(z, y)]: the beta-gradient of the expected complete-data log likelihood
    (log_prob_gradient with the statistics of the E-step) vanishes there."""
    model, start, props, y, u = constrained_case()
    for group in (props.initial, props.dynamics, props.emissions):
        group.cov.trainable = False
    core_props = props_to_core(props)
    p0 = _core.project_constraints(model.core_params(start), core_props)
    stats = _core.sufficient_stats(p0, [y], [u], False)
    p1 = _core.m_step(p0, core_props, stats, None)
    satisfies(from_core(p1, start), props)
    g = _core.log_prob_gradient(p1, core_props, stats, None)
    g0 = _core.log_prob_gradient(p0, core_props, stats, None)
    assert np.abs(g).max() < 1e-8 * np.abs(g0).max()


def test_identity_constraint_is_todays_em():
    """A constraint that frees every entry takes the constrained path and
    reproduces the unconstrained M-step (1e-12)."""
    case = inputs_case()
    m = case.model
    start = case.em_start
    _, props = m.initialize(0)
    free, _ = m.fit_em(start, props, case.emissions, case.inputs, num_iters=15, verbose=False)
    for group, f, shape in [
        ("dynamics", "weights", (3, 3)),
        ("dynamics", "input_weights", (3, 2)),
        ("emissions", "weights", (4, 3)),
        ("emissions", "bias", (4,)),
    ]:
        size = int(np.prod(shape))
        getattr(getattr(props, group), f).constraint = linear(np.zeros(shape), np.eye(size))
    props.initial.mean.constraint = linear(np.zeros(3), np.eye(3))
    same, _ = m.fit_em(start, props, case.emissions, case.inputs, num_iters=15, verbose=False)
    for a, b in zip(lgssm.params.param_groups(free), lgssm.params.param_groups(same)):
        for f in lgssm.params.field_names(a[1]):
            assert_close(np.asarray(getattr(b[1], f)), getattr(a[1], f), f"{a[0]}.{f}", rtol=1e-12, atol=1e-13)


def test_em_is_monotone_and_reaches_the_lbfgs_optimum():
    """Plain EM never decreases the log likelihood; accelerated EM and L-BFGS over
    beta, each from the start, reach one optimum (1e-6 relative in log likelihood).
    Identified: the covariances of the initial state and the dynamics and the
    dynamics bias are held, so that scale and translation of the states are fixed."""
    model, start, props, y, u = constrained_case()
    props.initial.cov.trainable = props.dynamics.cov.trainable = props.dynamics.bias.trainable = False
    start.dynamics.bias = np.zeros(2)
    _, lls = model.fit_em(start, props, y, u, num_iters=200, tolerance=0.0, verbose=False)
    lls = np.asarray(lls)
    assert np.all(np.diff(lls) >= -1e-8 * np.abs(lls[1:]))
    em, _ = model.fit_em(start, props, y, u, num_iters=300, tolerance=0.0, accelerate=True, verbose=False)
    satisfies(em, props)
    lb, _ = model.fit_lbfgs(start, props, y, u, max_iters=2000, verbose=False)
    satisfies(lb, props)
    ll_em = model.marginal_log_prob(em, y, u)
    ll_lb = model.marginal_log_prob(lb, y, u)
    assert abs(ll_lb - ll_em) < 1e-6 * abs(ll_em)
    assert ll_em > lls[-1]


def test_beta_gradient_matches_finite_differences():
    model, start, props, y, u = constrained_case()
    core_props = props_to_core(props)
    base = _core.project_constraints(model.core_params(start), core_props)
    x = np.asarray(_core.to_unconstrained(base, core_props))

    def ll(v):
        return model.marginal_log_prob(from_core(_core.from_unconstrained(v, base, core_props), start), y, u)

    stats = _core.sufficient_stats(base, [y], [u], False)
    g = np.asarray(_core.log_prob_gradient(base, core_props, stats, None))
    k = props.emissions.weights.constraint.num_free + props.initial.mean.constraint.num_free
    fd = central_differences(ll, x)
    assert x.size > k
    assert_close(g, fd, "gradient", rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def test_json_round_trip(tmp_path):
    model, start, props, y, u = constrained_case()
    path = tmp_path / "m.json"
    lgssm.io.save_model(path, model, start, props)
    _, _, back = lgssm.io.load_model(path)
    assert back.emissions.weights.constraint == props.emissions.weights.constraint
    assert back.initial.mean.constraint == props.initial.mean.constraint
    assert back.dynamics.cov.constraint is None


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda p: setattr(p.emissions.weights, "constraint", "lower"), "props.emissions.weights.constraint: expected"),
        (lambda p: setattr(p.emissions.weights, "constraint", pattern([["a", 0.0]])), r"constraint.fixed: expected 8"),
        (
            lambda p: setattr(p.dynamics.cov, "constraint", pattern([["a", "c"], ["c", 1.0]])),
            r"props.dynamics.cov.constraint.fixed: expected zero fixed entries in the rows of components with a free",
        ),
        (
            lambda p: setattr(p.dynamics.cov, "constraint", linear(np.zeros(4), [[1, 0], [0, 1], [0, 1], [2, 0]])),
            r"props.dynamics.cov.constraint.design: expected free values whose span is closed under X Y \+ Y X",
        ),
        (
            lambda p: setattr(p.dynamics.cov, "constraint", linear(np.zeros(4), [[1], [1], [0], [1]])),
            r"props.dynamics.cov.constraint: expected a symmetric constraint",
        ),
        (
            lambda p: (
                setattr(p.dynamics.cov, "constraint", pattern([["a", 0.0], [0.0, "a"]])),
                setattr(p.dynamics.cov, "structure", "diagonal"),
            ),
            r"props.dynamics.cov.structure: expected 'full' \(a constraint replaces the structure\), got 'diagonal'",
        ),
        (
            lambda p: (
                setattr(p.dynamics.weights, "constraint", pattern([["a", 0.0], [0.0, "a"]])),
                setattr(p.dynamics.weights, "trainable", False),
            ),
            "frozen parameter",
        ),
    ],
)
def test_errors_name_the_argument(setup, match):
    model, start, props, y, u = constrained_case()
    setup(props)
    with pytest.raises(ValueError, match=match):
        model.fit_em(start, props, y, u, num_iters=2, verbose=False)


def test_rank_deficient_design_is_refused():
    with pytest.raises(ValueError, match="full column rank"):
        linear(np.zeros(2), [[1.0, 1.0], [1.0, 1.0]])


def test_free_entry_in_a_noiseless_row_is_refused():
    model, start, props, y, u = constrained_case()
    start.dynamics.cov = np.diag([0.3, 0.0])
    props.dynamics.cov.trainable = False
    with pytest.raises(ValueError, match="row 1, whose variance is 0"):
        model.fit_em(start, props, y, u, num_iters=2, verbose=False)


def test_gibbs_refuses_constraints():
    model = lgssm.LinearGaussianConjugateSSM(2, 4)
    params, props = model.initialize(0)
    props.emissions.weights.constraint = pattern([["a", 0.0], ["b", "c"], ["d", "e"], ["f", "g"]])
    _, y = model.sample(params, 1, 20)
    with pytest.raises(ValueError, match="element-wise constraints"):
        model.fit_blocked_gibbs(0, params, 3, y, props=props, verbose=False)


def test_cli_constraints(tmp_path, capsys):
    import json

    from lgssm import cli

    model, start, props, y, u = constrained_case()
    np.save(tmp_path / "y.npy", y)
    spec = {
        "emissions.weights": [["h0", 0.0], ["h1", "h2"], ["h1", "h3"], ["h4", "h5"]],
        "dynamics.weights": {"fixed": [[0.0, 0.0], [0.0, 0.0]], "design": [[1.0], [0.0], [0.0], [1.0]], "names": ["f"]},
    }
    (tmp_path / "c.json").write_text(json.dumps(spec))
    out = tmp_path / "m.json"
    argv = ["fit", tmp_path / "y.npy", "--state-dim", 2, "--iters", 20, "--constraints", tmp_path / "c.json"]
    assert cli.main([str(a) for a in argv + ["--out", out, "--quiet"]]) == 0
    _, fitted, back = lgssm.io.load_model(out)
    assert back.emissions.weights.constraint == pattern(spec["emissions.weights"])
    f = fitted.dynamics.weights
    assert f[0, 1] == 0.0 and f[1, 0] == 0.0 and f[0, 0] == f[1, 1]
    assert fitted.emissions.weights[0, 1] == 0.0 and fitted.emissions.weights[1, 0] == fitted.emissions.weights[2, 0]
    capsys.readouterr()
    (tmp_path / "bad.json").write_text(json.dumps({"emissions.weight": [[1.0]]}))
    bad = argv[:-1] + [tmp_path / "bad.json", "--out", tmp_path / "n.json"]
    assert cli.main([str(a) for a in bad]) != 0
    assert "unknown parameter 'emissions.weight'" in capsys.readouterr().err
    assert not (tmp_path / "n.json").exists()
