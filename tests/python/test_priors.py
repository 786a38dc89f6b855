"""MAP fitting with conjugate priors: the log prior against SciPy's densities,
the MAP gradient against finite differences, monotone MAP-EM, and the MAP
M-step as the maximizer of E[log p(z, y)] + log p(params)."""

import numpy as np
import pytest
from scipy.stats import invwishart, matrix_normal, multivariate_normal

from lgssm import LinearGaussianConjugateSSM, LinearGaussianSSM, _core
from lgssm.params import props_to_core
from lgssm.priors import MatrixNormalInverseWishart, NormalInverseWishart
from lgssm.utils import monotonically_increasing, random_rotation


def scipy_log_prior(model, params):
    ip, dp, ep = model.initial_prior, model.dynamics_prior, model.emission_prior
    lp = invwishart(ip.df, ip.scale).logpdf(params.initial.cov)
    lp += multivariate_normal(ip.loc, params.initial.cov / ip.mean_concentration).logpdf(params.initial.mean)
    for group, prior in ((params.dynamics, dp), (params.emissions, ep)):
        w = np.column_stack([group.weights, group.input_weights, group.bias])
        lp += invwishart(prior.df, prior.scale).logpdf(group.cov)
        lp += matrix_normal(prior.loc, group.cov, np.linalg.inv(prior.col_precision)).logpdf(w)
    return lp


@pytest.fixture(scope="module")
def data():
    truth_model = LinearGaussianSSM(2, 4, input_dim=1)
    truth, _ = truth_model.initialize(
        0,
        dynamics_weights=0.95 * random_rotation(0, 2, theta=0.4),
        dynamics_covariance=0.05 * np.eye(2),
        dynamics_input_weights=[[0.5], [0.0]],
    )
    inputs = np.random.default_rng(1).normal(size=(60, 1))
    _, y = truth_model.sample(truth, 2, 60, inputs=inputs)
    y[5, 1] = np.nan
    return y, inputs


def custom_model():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 4))
    return LinearGaussianConjugateSSM(
        2,
        4,
        input_dim=1,
        initial_prior=NormalInverseWishart(loc=[0.5, -0.5], mean_concentration=2.0, df=4.0, scale=np.diag([1.0, 2.0])),
        dynamics_prior=MatrixNormalInverseWishart(
            loc=0.1 * np.ones((2, 4)), col_precision=np.diag([1.0, 2.0, 3.0, 4.0]), df=5.0, scale=0.5 * np.eye(2)
        ),
        emission_prior=MatrixNormalInverseWishart(
            loc=np.zeros((4, 4)), col_precision=a @ a.T + np.eye(4), df=6.0, scale=np.eye(4)
        ),
    )


@pytest.mark.parametrize(
    "make", [lambda: LinearGaussianConjugateSSM(2, 4, input_dim=1), custom_model], ids=["dynamax_defaults", "custom"]
)
def test_log_prior_matches_scipy(make):
    model = make()
    params, _ = model.initialize(3, dynamics_input_weights=[[0.2], [0.1]], emission_bias=[0.1, 0.2, 0.3, 0.4])
    assert model.log_prior(params) == pytest.approx(scipy_log_prior(model, params), rel=1e-12)


@pytest.mark.parametrize(
    "make", [lambda: LinearGaussianConjugateSSM(2, 4, input_dim=1), custom_model], ids=["dynamax_defaults", "custom"]
)
def test_map_gradient_matches_finite_differences(make, data):
    y, inputs = data
    model = make()
    params, props = model.initialize(7)
    props.emissions.cov.structure = "full"
    core, cprops, prior = model.core_params(params), props_to_core(props), model.core_prior()
    x = _core.to_unconstrained(core, cprops)

    def objective(v):
        p = _core.from_unconstrained(v, core, cprops)
        return _core.marginal_log_prob(p, [y], [inputs])[0] + _core.log_prior(p, prior)

    stats = _core.sufficient_stats(core, [y], [inputs], False)
    grad = _core.log_prob_gradient(core, cprops, stats, prior)
    h = 1e-5
    fd = np.array([(objective(x + h * e) - objective(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    assert np.max(np.abs(grad - fd) / np.maximum(1.0, np.abs(fd))) < 1e-6


@pytest.mark.parametrize("freeze", [(), ("dynamics", "weights"), ("emissions", "cov")])
def test_map_em_is_monotone_in_the_log_joint(freeze, data):
    y, inputs = data
    model = custom_model()
    params, props = model.initialize(7)
    if freeze:
        getattr(getattr(props, freeze[0]), freeze[1]).trainable = False
    fitted, objective = model.fit_em(params, props, y, inputs=inputs, num_iters=30, verbose=False)
    assert monotonically_increasing(objective, atol=1e-8, rtol=1e-8)
    # The recorded objective is log p(y) + log p(params) of the parameters entering each iteration.
    assert objective[0] == pytest.approx(
        model.marginal_log_prob(params, y, inputs=inputs) + model.log_prior(params), rel=1e-12
    )
    if freeze:
        frozen = getattr(getattr(fitted, freeze[0]), freeze[1])
        assert np.array_equal(frozen, getattr(getattr(params, freeze[0]), freeze[1]))


def test_map_m_step_maximizes_the_expected_log_joint_plus_log_prior(data):
    """At the MAP M-step's output, the gradient of E[log p(z, y)] + log p(params)
    (with the statistics held fixed) vanishes."""
    y, inputs = data
    model = custom_model()
    params, props = model.initialize(7)
    core, cprops, prior = model.core_params(params), props_to_core(props), model.core_prior()
    stats = _core.sufficient_stats(core, [y], [inputs], False)
    updated = _core.m_step(core, cprops, stats, prior)
    grad = _core.log_prob_gradient(updated, cprops, stats, prior)
    assert np.max(np.abs(grad)) < 1e-8 * max(1.0, abs(stats.marginal_loglik))
