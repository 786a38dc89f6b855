"""The blocked Gibbs sampler: conjugate draws against closed forms, a chain whose
parameter marginal is known exactly (with missing data and ragged batches),
simulation-based calibration, frozen parameters, the output's structure and errors.

Monte Carlo checks are z-tests at fixed seeds; chains use batch means for their
standard errors (Flegal & Jones 2010)."""

import numpy as np
import pytest
from scipy import stats

import lgssm
from lgssm import _core
from lgssm.priors import MatrixNormalInverseWishart as Mniw
from lgssm.priors import NormalInverseWishart as Niw

Z = 4.5  # the z-test's bound, in standard errors


def frozen_props(model, params, free):
    """Properties with only the parameters named in ``free`` ("group.field") trainable."""
    props = model._default_props(params)
    for group in ("initial", "dynamics", "emissions"):
        g = getattr(props, group)
        for name in g.__dataclass_fields__:
            getattr(g, name).trainable = f"{group}.{name}" in free
    return props


def batch_means_z(chain, exact):
    """|mean(chain) - exact| over its batch-means standard error (30 batches)."""
    batches = np.array_split(np.asarray(chain), 30)
    means = np.array([b.mean() for b in batches])
    return abs(np.mean(chain) - exact) / (means.std(ddof=1) / np.sqrt(len(means)))


# -- the conjugate draws alone ------------------------------------------------


def test_initial_niw_draws_match_closed_form():
    """Known initial states of 6 sequences: the NIW posterior (Murphy 2012, Sec. 4.6.3.3)
    kappa_n = kappa + N, m_n = (kappa m + sum z) / kappa_n, nu_n = nu + N,
    Psi_n = Psi + S + kappa N / kappa_n (zbar - m)(zbar - m)^T."""
    rng = np.random.default_rng(0)
    n, num = 2, 6
    prior = Niw(np.array([0.3, -0.2]), 2.0, 4.5, np.array([[1.0, 0.3], [0.3, 0.7]]))
    model = lgssm.LinearGaussianConjugateSSM(n, 1, initial_prior=prior)
    params, _ = model.initialize(0)
    props = frozen_props(model, params, {"initial.mean", "initial.cov"})
    core, core_props = model.core_params(params), lgssm.params.props_to_core(props)
    z0 = rng.normal(size=(num, n)) + 1.0
    total = None
    for z in z0:
        s = _core.complete_data_stats(core, np.full((1, 1), 0.5), np.zeros((1, 0)), z[None, :])
        total = s if total is None else total + s
    kn, nun = prior.mean_concentration + num, prior.df + num
    zbar = z0.mean(0)
    mn = (prior.mean_concentration * prior.loc + z0.sum(0)) / kn
    scatter = (z0 - zbar).T @ (z0 - zbar)
    psin = prior.scale + scatter + prior.mean_concentration * num / kn * np.outer(zbar - prior.loc, zbar - prior.loc)
    draws = [_core.conjugate_sample(core, core_props, total, model.core_prior(), 100 + k) for k in range(4000)]
    means = np.array([d.initial_mean for d in draws])
    covs = np.array([d.initial_cov for d in draws])
    sigma_mean = psin / (nun - n - 1)
    for i in range(n):
        # mu_i is a Student t: variance E[Sigma_ii] / kappa_n.
        assert abs(means[:, i].mean() - mn[i]) / np.sqrt(sigma_mean[i, i] / kn / len(draws)) < Z
        var = 2 * psin[i, i] ** 2 / ((nun - n - 1) ** 2 * (nun - n - 3))
        assert abs(covs[:, i, i].mean() - sigma_mean[i, i]) / np.sqrt(var / len(draws)) < Z


# -- a chain with an exactly known parameter marginal ------------------------------


def emission_bias_model():
    """A random walk z seen through H = [1, 0.5] with correlated noise R; only the
    emission bias d is free. Given the frozen H and R, d's prior is the MNIW's
    conditional N(mu_d, R / K_dd), mu_d = M_d - (H - M_H) K_Hd / K_dd."""
    h, r = np.array([[1.0], [0.5]]), np.array([[1.0, 0.6], [0.6, 0.8]])
    q, m0, p0 = 0.3, 0.2, 0.5
    loc = np.array([[0.8, 0.4], [0.3, -0.5]])  # columns [H, d]
    k = np.array([[2.0, 0.5], [0.5, 1.5]])
    prior = Mniw(loc, k, 4.0, np.eye(2))
    model = lgssm.LinearGaussianConjugateSSM(1, 2, emission_prior=prior)
    params, _ = model.initialize(
        0,
        initial_mean=[m0],
        initial_covariance=[[p0]],
        dynamics_weights=[[1.0]],
        dynamics_covariance=[[q]],
        emission_weights=h,
        emission_covariance=r,
    )
    props = frozen_props(model, params, {"emissions.bias"})
    mu_d = loc[:, 1] - (h[:, 0] - loc[:, 0]) * k[0, 1] / k[1, 1]
    return model, params, props, (h, r, q, m0, p0, mu_d, k[1, 1])


def exact_bias_posterior(seqs, h, r, q, m0, p0, mu_d, kdd):
    """p(d | y) of the observed entries: y = H m0 + d + noise, Cov(y_s, y_t) =
    H H^T (p0 + min(s, t) q) + R [s = t], so d's posterior is Gaussian (conjugate)."""
    rinv = np.linalg.inv(r)
    precision, shift = kdd * rinv, kdd * rinv @ mu_d
    for y in seqs:
        t = len(y)
        time = np.arange(t)
        state_cov = p0 + q * np.minimum.outer(time, time)
        cov = np.kron(state_cov, h @ h.T) + np.kron(np.eye(t), r)
        design = np.kron(np.ones((t, 1)), np.eye(2))
        obs = ~np.isnan(y.ravel())
        c, a = cov[np.ix_(obs, obs)], design[obs]
        resid = y.ravel()[obs] - np.kron(np.ones(t), h[:, 0] * m0)[obs]
        precision = precision + a.T @ np.linalg.solve(c, a)
        shift = shift + a.T @ np.linalg.solve(c, resid)
    cov = np.linalg.inv(precision)
    return cov @ shift, cov


@pytest.mark.parametrize("form", ["list", "padded"])
def test_chain_matches_exact_posterior_with_missing_data(form):
    model, params, props, consts = emission_bias_model()
    rng = np.random.default_rng(3)
    seqs = []
    for length in (25, 14):
        _, y = model.sample(params, int(rng.integers(1 << 30)), length)
        y[rng.random(y.shape) < 0.25] = np.nan  # single components missing: R's correlation matters
        seqs.append(y)
    emissions = seqs
    if form == "padded":
        emissions = np.full((2, 25, 2), np.nan)
        for i, y in enumerate(seqs):
            emissions[i, : len(y)] = y
    mean, cov = exact_bias_posterior(seqs, *consts)
    samples = model.fit_blocked_gibbs(7, params, 6001, emissions, props=props, verbose=False)
    d = samples.emissions.bias[1001:]
    for i in range(2):
        assert batch_means_z(d[:, i], mean[i]) < Z, (d[:, i].mean(), mean[i])
        centered = (d[:, i] - mean[i]) ** 2
        assert batch_means_z(centered, cov[i, i]) < Z, (centered.mean(), cov[i, i])
    cross = (d[:, 0] - mean[0]) * (d[:, 1] - mean[1])
    assert batch_means_z(cross, cov[0, 1]) < Z
    for field in ("weights", "cov"):
        np.testing.assert_array_equal(
            getattr(samples.emissions, field),
            np.broadcast_to(getattr(params.emissions, field), getattr(samples.emissions, field).shape),
        )


# -- simulation-based calibration ------------------------------------------------


def sbc_model(emission_dim, structure):
    """state_dim 1: free dynamics weights, bias and cov, and a free emission cov; H and
    d frozen at the prior's loc (so the prior conditional on them is simple), the
    initial state frozen. (A free d is confounded with the level b / (1 - F) and mixes
    slowly; the closed-form test above covers it.)"""
    h = np.array([[1.0], [0.5]])[:emission_dim]
    dyn = Mniw(np.array([[0.5, 0.0]]), 4.0 * np.eye(2), 5.0, 0.5 * np.eye(1))
    emi = Mniw(np.hstack([h, np.zeros((emission_dim, 1))]), np.diag([1.0, 4.0]), 4.0, 0.5 * np.eye(emission_dim))
    model = lgssm.LinearGaussianConjugateSSM(1, emission_dim, dynamics_prior=dyn, emission_prior=emi)
    start, _ = model.initialize(
        0,
        dynamics_weights=[[0.5]],
        dynamics_covariance=[[0.2]],
        emission_weights=h,
        emission_covariance=0.3 * np.eye(emission_dim),
    )
    props = frozen_props(model, start, {"dynamics.weights", "dynamics.bias", "dynamics.cov", "emissions.cov"})
    props.emissions.cov.structure = structure
    return model, start, props, dyn, emi


def draw_prior(rng, start, dyn, emi, structure):
    """The prior conditional on the frozen parameters, drawn with SciPy: Q ~ IW(df, Psi),
    [F, b] | Q ~ MN(loc, Q, K^{-1}); with H and d frozen at their loc (two frozen
    columns, K diagonal) R ~ IW(df + 2, Psi), and a diagonal R's entries
    IG((df + p + 1) / 2, Psi_ii / 2) (gibbs.hpp's restricted prior, k = 2 columns)."""
    q = float(stats.invwishart(dyn.df, dyn.scale[0, 0]).rvs(random_state=rng))
    fb = dyn.loc[0] + rng.multivariate_normal(np.zeros(2), q * np.linalg.inv(dyn.col_precision))
    p = emi.scale.shape[0]
    if structure == "diagonal":
        shape = (emi.df + p + 1) / 2
        r = np.diag([stats.invgamma(shape, scale=emi.scale[i, i] / 2).rvs(random_state=rng) for i in range(p)])
    else:
        r = np.atleast_2d(stats.invwishart(emi.df + 2, emi.scale).rvs(random_state=rng))
    dynamics = lgssm.params.ParamsLGSSMDynamics(
        weights=np.array([[fb[0]]]), bias=np.array([fb[1]]), input_weights=np.zeros((1, 0)), cov=np.array([[q]])
    )
    emissions = lgssm.params.ParamsLGSSMEmissions(
        weights=start.emissions.weights, bias=start.emissions.bias, input_weights=np.zeros((p, 0)), cov=r
    )
    return lgssm.ParamsLGSSM(initial=start.initial, dynamics=dynamics, emissions=emissions)


@pytest.mark.parametrize("emission_dim, structure", [(1, "full"), (2, "diagonal"), (2, "full")])
def test_simulation_based_calibration(emission_dim, structure):
    """Talts et al. (2018): ranks of the true values among thinned posterior draws are
    uniform; a chi-square test over 10 bins for each scalar parameter. 10% of the
    emission entries are missing (data augmentation enters R's conditional)."""
    model, start, props, dyn, emi = sbc_model(emission_dim, structure)
    rng = np.random.default_rng(2018 + emission_dim + len(structure))
    num_reps, burn, thin, draws = 200, 40, 8, 9
    ranks = {}
    for rep in range(num_reps):
        truth = draw_prior(rng, start, dyn, emi, structure)
        y = model.sample(truth, int(rng.integers(1 << 30)), 15)[1]
        y[rng.random(y.shape) < 0.1] = np.nan
        chain = model.fit_blocked_gibbs(rep, start, 1 + burn + thin * draws, y, props=props, verbose=False)
        kept = slice(burn + thin, None, thin)
        values = {
            "F": (truth.dynamics.weights[0, 0], chain.dynamics.weights[kept, 0, 0]),
            "b": (truth.dynamics.bias[0], chain.dynamics.bias[kept, 0]),
            "Q": (truth.dynamics.cov[0, 0], chain.dynamics.cov[kept, 0, 0]),
        }
        for i in range(emission_dim):
            values[f"R{i}{i}"] = (truth.emissions.cov[i, i], chain.emissions.cov[kept, i, i])
        if emission_dim == 2 and structure == "full":
            values["R01"] = (truth.emissions.cov[0, 1], chain.emissions.cov[kept, 0, 1])
        for name, (true, samples) in values.items():
            assert len(samples) == draws
            ranks.setdefault(name, []).append(int(np.sum(samples < true)))
    for name, r in ranks.items():
        counts = np.bincount(r, minlength=draws + 1)
        assert stats.chisquare(counts).pvalue > 1e-3, (name, counts)


# -- the sampler's contract ----------------------------------------------------


def test_structure_first_sample_and_determinism():
    model = lgssm.LinearGaussianConjugateSSM(2, 3, input_dim=1, has_dynamics_bias=False)
    params, _ = model.initialize(1)
    rng = np.random.default_rng(5)
    y, u = rng.normal(size=(3, 12, 3)), rng.normal(size=(3, 12, 1))
    a = model.fit_blocked_gibbs(11, params, 6, y, u, verbose=False)
    b = model.fit_blocked_gibbs(11, params, 6, y, u, verbose=False)
    assert a.dynamics.weights.shape == (6, 2, 2) and a.emissions.input_weights.shape == (6, 3, 1)
    assert a.initial.mean.shape == (6, 2) and a.emissions.cov.shape == (6, 3, 3)
    np.testing.assert_array_equal(a.emissions.weights[0], params.emissions.weights)  # dynamax's first sample
    np.testing.assert_array_equal(a.emissions.cov, b.emissions.cov)
    np.testing.assert_array_equal(a.dynamics.bias, 0.0)  # no dynamics bias: frozen at 0
    assert not np.array_equal(a.emissions.cov[1], a.emissions.cov[2])
    for s in range(6):  # every draw is a valid covariance
        assert np.all(np.linalg.eigvalsh(a.dynamics.cov[s]) > 0)


def test_frozen_and_structured_parameters():
    model = lgssm.LinearGaussianConjugateSSM(2, 3)
    params, props = model.initialize(2)
    props.dynamics.weights.trainable = False
    props.initial.cov.trainable = False
    props.emissions.cov.structure = "scalar"
    props.dynamics.cov.structure = "diagonal"
    y = np.random.default_rng(1).normal(size=(20, 3))
    samples = model.fit_blocked_gibbs(0, params, 8, y, props=props, verbose=False)
    for s in range(8):
        np.testing.assert_array_equal(samples.dynamics.weights[s], params.dynamics.weights)
        np.testing.assert_array_equal(samples.initial.cov[s], params.initial.cov)
        r, q = samples.emissions.cov[s], samples.dynamics.cov[s]
        np.testing.assert_array_equal(r, r[0, 0] * np.eye(3))
        np.testing.assert_array_equal(q, np.diag(np.diag(q)))


def test_progress_summary_and_keys(capsys):
    model = lgssm.LinearGaussianConjugateSSM(1, 1)
    params, _ = model.initialize(0)
    y = np.random.default_rng(0).normal(size=30)
    samples, lls, summary = model.fit_blocked_gibbs(
        np.random.default_rng(4), params, 5, y, verbose=True, return_summary=True
    )
    assert "Gibbs" in capsys.readouterr().err
    assert lls.shape == (4,) and summary.iterations == 4 and summary.termination == "max_iterations"
    assert np.isclose(lls[0], model.marginal_log_prob(params, y), rtol=1e-12)
    one = model.fit_blocked_gibbs(0, params, 1, y, verbose=False)
    assert one.dynamics.cov.shape == (1, 1, 1)


def test_jax_key():
    jax = pytest.importorskip("jax")
    model = lgssm.LinearGaussianConjugateSSM(1, 1)
    params, _ = model.initialize(0)
    y = np.random.default_rng(0).normal(size=30)
    a = model.fit_blocked_gibbs(jax.random.PRNGKey(1), params, 3, y, verbose=False)
    b = model.fit_blocked_gibbs(jax.random.PRNGKey(1), params, 3, y, verbose=False)
    np.testing.assert_array_equal(a.dynamics.cov, b.dynamics.cov)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sample_size": 0}, "sample_size"),
        ({"sample_size": 2.5}, "sample_size"),
        ({"emissions": np.full((5, 1), np.nan)}, "emissions: expected at least one observed"),
        ({"emissions": np.zeros((5, 2))}, "emission"),
        ({"verbose": "yes"}, "verbose"),
    ],
)
def test_bad_arguments(kwargs, match):
    model = lgssm.LinearGaussianConjugateSSM(1, 1)
    params, _ = model.initialize(0)
    args = {"key": 0, "initial_params": params, "sample_size": 3, "emissions": np.zeros((5, 1)), "verbose": False}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        model.fit_blocked_gibbs(**args)


def test_bad_prior_is_named():
    model = lgssm.LinearGaussianConjugateSSM(1, 1, dynamics_prior=Mniw(np.zeros((1, 2)), np.eye(2), -1.0, np.eye(1)))
    params, _ = model.initialize(0)
    with pytest.raises(ValueError, match="prior.dynamics.df"):
        model.fit_blocked_gibbs(0, params, 3, np.zeros((5, 1)), verbose=False)
