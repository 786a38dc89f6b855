"""The first part of dynamax's "LG-SSM: MAP parameter estimation" notebook in lgssm:
simulate from a rotating 2-d latent with 10-d emissions, smooth, reconstruct the
emissions and forecast 50 steps, as the notebook's plots do; and its Adam fits,
whose loss curves match dynamax's until Adam turns chaotic (the fits' other
properties are in test_learn.py)."""

import numpy as np
import pytest

from lgssm import LinearGaussianSSM
from lgssm import _notebook as nb
from lgssm.optimizers import adam

from conftest import assert_close

STATE_DIM, EMISSION_DIM, T, K = nb.STATE_DIM, nb.EMISSION_DIM, nb.NUM_TIMESTEPS, nb.NUM_FORECAST_TIMESTEPS


@pytest.fixture(scope="module")
def notebook():
    true_model, true_params, true_states, emissions = nb.sample()
    true_A, true_Sigma = nb.true_dynamics()
    return true_model, true_params, true_A, true_Sigma, true_states, emissions


def stationary_covariance(A, Q):
    """Sigma = A Sigma A^T + Q, solved as (I - A kron A) vec(Sigma) = vec(Q)."""
    n = A.shape[0]
    return np.linalg.solve(np.eye(n * n) - np.kron(A, A), Q.ravel()).reshape(n, n)


def test_sample_shapes(notebook):
    _, _, _, _, states, emissions = notebook
    assert states.shape == (T, STATE_DIM) and emissions.shape == (T, EMISSION_DIM)
    assert np.all(np.isfinite(states)) and np.all(np.isfinite(emissions))


def test_smoother_and_reconstruction(notebook):
    model, params, _, _, _, emissions = notebook
    post = model.smoother(params, emissions)
    assert post.smoothed_means.shape == (T, STATE_DIM)
    assert post.smoothed_covariances.shape == (T, STATE_DIM, STATE_DIM)
    assert post.smoothed_cross_covariances.shape == (T - 1, STATE_DIM, STATE_DIM)
    assert np.all(np.isfinite(post.smoothed_means)) and np.all(np.isfinite(post.smoothed_covariances))
    assert np.all(np.linalg.eigvalsh(post.smoothed_covariances) > 0)

    recon, recon_std = model.posterior_predictive(params, emissions)
    assert recon.shape == (T, EMISSION_DIM) and recon_std.shape == (T, EMISSION_DIM)
    assert np.all(np.isfinite(recon)) and np.all(np.isfinite(recon_std))
    assert np.all(recon_std > 0)
    # Var[y_t | y] = H P_{t|T} H^T + R >= R on the diagonal.
    assert np.all(recon_std >= np.sqrt(np.diag(params.emissions.cov)) * (1 - 1e-12))
    H, b = params.emissions.weights, params.emissions.bias
    assert_close(recon, post.smoothed_means @ H.T + b, "reconstruction = H m_{t|T} + d")

    # The smoothed reconstruction under the true model fits the data better than a
    # randomly initialised model (the notebook's "much worse" plot) ...
    mse_true = np.mean((recon - emissions) ** 2)
    rand_model = LinearGaussianSSM(STATE_DIM, EMISSION_DIM)
    rand_params, _ = nb.start(rand_model)
    rand_recon, rand_std = rand_model.posterior_predictive(rand_params, emissions)
    mse_rand = np.mean((rand_recon - emissions) ** 2)
    assert mse_true < mse_rand, (mse_true, mse_rand)
    # ... and its residual variance R - H P H^T is below the noise variance 0.1.
    assert mse_true < 0.1, mse_true
    assert model.marginal_log_prob(params, emissions) > rand_model.marginal_log_prob(rand_params, emissions)


def test_forecast(notebook):
    model, params, A, Q, _, emissions = notebook
    fm, fc, fem, fec = model.forecast(params, emissions, K)
    assert fm.shape == (K, STATE_DIM) and fc.shape == (K, STATE_DIM, STATE_DIM)
    assert fem.shape == (K, EMISSION_DIM) and fec.shape == (K, EMISSION_DIM, EMISSION_DIM)
    for a in (fm, fc, fem, fec):
        assert np.all(np.isfinite(a))
    stds = np.sqrt(np.diagonal(fec, axis1=1, axis2=2))
    assert np.all(stds > 0)

    H, R = params.emissions.weights, params.emissions.cov
    sigma_inf = stationary_covariance(A, Q)
    y_inf = H @ sigma_inf @ H.T + R
    std_inf = np.sqrt(np.diag(y_inf))
    # The forecast emission stds grow toward the stationary value and stay below it.
    assert np.all(stds[-1] > stds[0]), (stds[0], stds[-1])
    assert np.all(stds <= std_inf * (1 + 1e-12))
    assert np.all(std_inf - stds[-1] < std_inf - stds[0])
    # A = 0.99 x rotation: tr P_{k+1} = 0.9801 tr P_k + tr Q, so the gap to the
    # stationary trace shrinks by exactly 0.9801 per step.
    gap = np.trace(sigma_inf) - np.trace(fc, axis1=1, axis2=2)
    assert np.all(gap > 0)
    assert_close(gap[1:] / gap[:-1], np.full(K - 1, 0.99**2), "trace gap ratio")

    # Without bias or inputs the forecast mean is A^{k+1} m_{T-1|T-1}, whose norm
    # shrinks by exactly 0.99 per step.
    m_last = model.filter(params, emissions).filtered_means[-1]
    assert_close(np.linalg.norm(fm, axis=1), 0.99 ** np.arange(1, K + 1) * np.linalg.norm(m_last), "|forecast mean|")

    # Far ahead, the forecast is the stationary distribution.
    fm, fc, fem, fec = model.forecast(params, emissions, 2000)
    assert_close(fc[-1], sigma_inf, "state covariance at k = 2000")
    assert_close(fec[-1], y_inf, "emission covariance at k = 2000")
    assert np.linalg.norm(fm[-1]) < 0.99**1999 * np.linalg.norm(m_last)


# Horizons: lgssm's and dynamax's curves agree to 2e-8 relative (measured)
# over these epochs; beyond them, at 0.25 from epoch ~30 and at 0.1 from ~300,
# Adam is chaotic and the two separate as any two round-offs do.
ADAM_HORIZONS = {1e-2: 200, 1e-1: 100, 2.5e-1: 20}


@pytest.mark.parametrize("lr", sorted(ADAM_HORIZONS))
def test_adam_curve_matches_dynamax_until_chaos(notebook, lr):
    """dynamax's fit_sgd (optax.adam, its RealToPSDBijector: the Cholesky factor
    with a log diagonal, as lgssm's) from the same start on the same data: the
    loss curves agree to 1e-6 relative over the epochs before chaos sets in."""
    pytest.importorskip(
        "dynamax", minversion="1.0.3", exc_type=ImportError, reason="dynamax (extra `peers`) cannot be imported"
    )
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax
    from dynamax.linear_gaussian_ssm import LinearGaussianSSM as DynamaxSSM

    from lgssm.interop import to_dynamax

    _, _, _, _, _, emissions = notebook
    model = LinearGaussianSSM(STATE_DIM, EMISSION_DIM)
    params, props = nb.start(model)
    dx_params = to_dynamax(params)
    dx = DynamaxSSM(STATE_DIM, EMISSION_DIM)
    _, dx_props = dx.initialize(jax.random.PRNGKey(0))
    n = ADAM_HORIZONS[lr]
    _, dx_losses = dx.fit_sgd(dx_params, dx_props, jnp.asarray(emissions), optimizer=optax.adam(lr), num_epochs=n)
    _, losses = model.fit_sgd(params, props, emissions, optimizer=adam(lr), num_epochs=n, verbose=False)
    assert_close(losses, np.asarray(dx_losses), f"Adam losses at lr {lr}, epochs 0..{n - 1}", rtol=1e-6)


def test_the_seed_notebook_runs_with_its_dynamax_imports_changed(monkeypatch, tmp_path):
    """examples/python/dynamax_notebook.py is the notebook's code, line for line,
    but for its two dynamax imports; it runs with lgssm and the optax optimizer,
    its own asserts (EM monotone, the frozen dynamics unchanged) included."""
    pytest.importorskip("optax", exc_type=ImportError, reason="optax (extra `jax`) cannot be imported")
    import pathlib

    import matplotlib

    matplotlib.use("Agg")
    root = pathlib.Path(__file__).resolve().parents[2]
    source = (root / "examples/python/dynamax_notebook.py").read_text()
    notebook = {
        line.strip() for line in (root / "tests/python/data/lgssm_learning_notebook.txt").read_text().split("\n")
    }
    code = source.split('"""', 2)[2].split("\n")  # after the module docstring
    changed = [line for line in code if line.strip() and line.strip() not in notebook]
    assert [line.split("  # was: ")[1] for line in changed] == [
        "from dynamax.linear_gaussian_ssm import LinearGaussianSSM",
        "from dynamax.utils.utils import ...",
    ]
    assert "from optax import adam" in notebook and "from optax import adam" in code

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    exec(compile(source, "dynamax_notebook.py", "exec"), namespace)
    lls = namespace["all_sgd_marginal_lls"]
    # Adam at the notebook's largest rate (0.25) oscillates: its trajectory amplifies round-off
    # (1e-14 apart at epoch 44, 1e-3 by epoch 368 between two builds), and where it ends, or
    # whether its loss overflows first (fit_sgd then stops with a warning), is not a property
    # of lgssm. The two smaller rates run every epoch.
    assert len(lls) == 3 and [len(curve) for curve in lls[:2]] == [1000, 1000] and 0 < len(lls[2]) <= 1000
    em_lls, true_ll = namespace["marginal_lls"], namespace["true_ll"]
    assert em_lls[-1] > true_ll  # EM's fit beats the true parameters on this short sequence
    assert lls[0][-1] > lls[0][0] + 1000  # Adam at lr 1e-2 climbs from the random start
    namespace["plt"].close("all")
