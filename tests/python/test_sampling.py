"""Fixed-seed statistical tests of `sample` and `posterior_sample` against the dense
joint-Gaussian moments, and determinism in the key.

Each check compares many draws with exact moments, entry by entry in a few
standard errors, and after whitening by the exact covariance (the whitened draws
must have mean 0 and covariance I). The seeds are fixed, so the outcome is
deterministic; the 5-standard-error bounds make a false alarm under a correct
sampler improbable (< 1e-3 over all entries)."""

import numpy as np
import pytest

from lgssm import LinearGaussianSSM

from conftest import VARIANTS, assert_close, make_params
from dense_reference import Reference, joint_prior

Z = 5.0  # standard errors


def check_gaussian_draws(X, mean, cov, name):
    """X: (N, d) independent draws; compare with N(mean, cov)."""
    N, d = X.shape
    sd = np.sqrt(np.diag(cov))
    z_mean = (X.mean(0) - mean) / (sd / np.sqrt(N))
    assert np.max(np.abs(z_mean)) < Z, f"{name}: mean off by {np.max(np.abs(z_mean)):.2f} SE: {z_mean}"
    D = X - mean
    C = D.T @ D / N
    se = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / N)
    z_cov = (C - cov) / se
    assert np.max(np.abs(z_cov)) < Z, (
        f"{name}: covariance off by {np.max(np.abs(z_cov)):.2f} SE at "
        f"{np.unravel_index(np.argmax(np.abs(z_cov)), z_cov.shape)}\nsample:\n{C}\nexact:\n{cov}"
    )
    W = np.linalg.solve(np.linalg.cholesky(cov), D.T).T
    z_wmean = W.mean(0) * np.sqrt(N)
    assert np.max(np.abs(z_wmean)) < Z, f"{name}: whitened mean off by {np.max(np.abs(z_wmean)):.2f} SE"
    CW = W.T @ W / N
    se_w = np.where(np.eye(d, dtype=bool), np.sqrt(2.0 / N), np.sqrt(1.0 / N))
    z_w = (CW - np.eye(d)) / se_w
    assert np.max(np.abs(z_w)) < Z, (
        f"{name}: whitened covariance off by {np.max(np.abs(z_w)):.2f} SE at "
        f"{np.unravel_index(np.argmax(np.abs(z_w)), z_w.shape)}"
    )


def sample_model(kind):
    """A small model with inputs and biases: (model, params dict, lgssm params, T, inputs)."""
    rng = np.random.default_rng({"time_invariant": 21, "time_varying": 22}[kind])
    n, p, m, T = 2, 2, 1, 4
    steps = (T - 1, T) if kind == "time_varying" else None
    params = make_params(rng, n, p, m, steps=steps)
    # Large, distinct inputs make an off-by-one in the time index many SE wrong.
    u = np.array([[3.0], [-2.0], [4.0], [1.0]])
    model = LinearGaussianSSM(n, p, input_dim=m)
    lg_params, _ = model.initialize(key=0, **params)
    return model, params, lg_params, T, u


@pytest.mark.parametrize("kind", ["time_invariant", "time_varying"])
def test_sample_moments(kind):
    model, params, lg_params, T, u = sample_model(kind)
    N = 4000
    draws = []
    for seed in range(N):
        states, emissions = model.sample(lg_params, seed, T, inputs=u)
        draws.append(np.concatenate([states.ravel(), emissions.ravel()]))
    assert states.shape == (T, 2) and emissions.shape == (T, 2)
    mean, cov = joint_prior(params, T, u)
    check_gaussian_draws(np.array(draws), mean, cov, f"sample ({kind})")


def test_sample_same_key_same_draw():
    model, _, lg_params, T, u = sample_model("time_invariant")
    a = model.sample(lg_params, 11, T, inputs=u)
    b = model.sample(lg_params, 11, T, inputs=u)
    c = model.sample(lg_params, 12, T, inputs=u)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    g1 = model.sample(lg_params, np.random.default_rng(3), T, inputs=u)
    g2 = model.sample(lg_params, np.random.default_rng(3), T, inputs=u)
    assert np.array_equal(g1[0], g2[0]) and np.array_equal(g1[1], g2[1])


def test_sample_jax_key():
    jr = pytest.importorskip("jax.random")
    model, _, lg_params, T, u = sample_model("time_invariant")
    a = model.sample(lg_params, jr.PRNGKey(4), T, inputs=u)
    b = model.sample(lg_params, jr.PRNGKey(4), T, inputs=u)
    c = model.sample(lg_params, jr.PRNGKey(5), T, inputs=u)
    assert isinstance(a[0], np.ndarray) and a[0].shape == (T, 2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_sample_shapes_without_inputs():
    model = LinearGaussianSSM(3, 5)
    params, _ = model.initialize(key=1)
    for T in (1, 6):
        states, emissions = model.sample(params, 0, T)
        assert isinstance(states, np.ndarray) and states.dtype == np.float64 and states.shape == (T, 3)
        assert isinstance(emissions, np.ndarray) and emissions.shape == (T, 5)
        assert np.all(np.isfinite(states)) and np.all(np.isfinite(emissions))


POSTERIOR_VARIANTS = ["missing_components", "missing_components_diagonal_R_time_varying", "wholly_missing_steps"]


def _model(variant):
    model = LinearGaussianSSM(variant.state_dim, variant.emission_dim, input_dim=variant.input_dim)
    params, _ = model.initialize(key=0, **variant.init_kwargs)
    return model, params


@pytest.mark.parametrize("name", POSTERIOR_VARIANTS)
def test_posterior_sample_moments(name):
    variant = VARIANTS[name]
    model, params = _model(variant)
    seq = variant.seq
    T, n = seq.emissions.shape[0], variant.state_dim
    S = 4000
    z = model.posterior_sample(2024, params, seq.emissions, seq.inputs, num_samples=S)
    assert isinstance(z, np.ndarray) and z.shape == (S, T, n)
    # The whole path against the dense posterior p(z_{0:T-1} | y).
    ref = Reference(variant.params, seq.emissions, seq.inputs)
    mean, cov = ref.smoothed_joint()
    check_gaussian_draws(z.reshape(S, T * n), mean, cov, f"posterior_sample ({name})")
    # Block by block against the library's own smoother.
    post = model.smoother(params, seq.emissions, seq.inputs)
    zc = z - post.smoothed_means
    for t in range(T):
        P = post.smoothed_covariances[t]
        sd = np.sqrt(np.diag(P))
        z_mean = zc[:, t].mean(0) / (sd / np.sqrt(S))
        assert np.max(np.abs(z_mean)) < Z, f"t={t}: mean off by {z_mean} SE"
        C = zc[:, t].T @ zc[:, t] / S
        z_cov = (C - P) / np.sqrt((np.outer(sd**2, sd**2) + P**2) / S)
        assert np.max(np.abs(z_cov)) < Z, f"t={t}: covariance off by {z_cov} SE\n{C}\n{P}"
    for t in range(T - 1):
        X = post.smoothed_cross_covariances[t]  # Cov[z_{t+1}, z_t | y]
        C = zc[:, t + 1].T @ zc[:, t] / S
        sd1 = np.sqrt(np.diag(post.smoothed_covariances[t + 1]))
        sd0 = np.sqrt(np.diag(post.smoothed_covariances[t]))
        z_cross = (C - X) / np.sqrt((np.outer(sd1**2, sd0**2) + X**2) / S)
        assert np.max(np.abs(z_cross)) < Z, f"t={t}: cross covariance off by {z_cross} SE\n{C}\n{X}"


def test_posterior_sample_same_key_same_draw():
    variant = VARIANTS["missing_components"]
    model, params = _model(variant)
    seq = variant.seq
    T, n = seq.emissions.shape[0], variant.state_dim
    a = model.posterior_sample(5, params, seq.emissions, seq.inputs)
    b = model.posterior_sample(5, params, seq.emissions, seq.inputs)
    c = model.posterior_sample(6, params, seq.emissions, seq.inputs)
    assert isinstance(a, np.ndarray) and a.shape == (T, n) and np.all(np.isfinite(a))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    A = model.posterior_sample(5, params, seq.emissions, seq.inputs, num_samples=3)
    B = model.posterior_sample(5, params, seq.emissions, seq.inputs, num_samples=3)
    assert A.shape == (3, T, n) and np.array_equal(A, B)
    assert not np.array_equal(A[0], A[1])


def test_posterior_sample_padded_batch():
    """A NaN-padded (B, T, p) batch: a leading B axis, NaN on padding steps."""
    variant = VARIANTS["missing_components"]
    model, params = _model(variant)
    seqs = variant.batch
    T = max(len(s.emissions) for s in seqs)
    E = np.full((len(seqs), T, variant.emission_dim), np.nan)
    U = np.zeros((len(seqs), T, variant.input_dim))
    lengths = []
    for b, s in enumerate(seqs):
        E[b, : len(s.emissions)] = s.emissions
        U[b, : len(s.emissions)] = s.inputs
        observed = np.flatnonzero(~np.all(np.isnan(E[b]), axis=1))
        lengths.append(observed[-1] + 1)
    z = model.posterior_sample(1, params, E, U)
    assert z.shape == (len(seqs), T, variant.state_dim)
    zs = model.posterior_sample(1, params, E, U, num_samples=4)
    assert zs.shape == (len(seqs), 4, T, variant.state_dim)
    for b, L in enumerate(lengths):
        assert np.all(np.isfinite(z[b, :L])) and np.all(np.isnan(z[b, L:]))
        assert np.all(np.isfinite(zs[b, :, :L])) and np.all(np.isnan(zs[b, :, L:]))


def test_posterior_sample_single_observation_exact_mean():
    """Sanity of the helper on the simplest case: one step, compared by moments."""
    variant = VARIANTS["single_step"]
    model, params = _model(variant)
    seq = variant.seq
    S = 20000
    z = model.posterior_sample(9, params, seq.emissions, seq.inputs, num_samples=S)
    mean, cov = Reference(variant.params, seq.emissions, seq.inputs).smoothed_joint()
    check_gaussian_draws(z.reshape(S, -1), mean, cov, "posterior_sample (single step)")
    post = model.smoother(params, seq.emissions, seq.inputs)
    assert_close(post.smoothed_means.ravel(), mean, "smoothed_means")
