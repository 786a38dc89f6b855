"""The fast paths of issue 17 against the general recursion they shortcut.

Steady state: with time-invariant F, Q, H, R the filter keeps the fixed point of the Riccati
recursion once the predicted covariance stops changing (src/kalman.hpp). The same model with
its parameters given per step (every step's entry equal) never enters it, so the two must
agree to round-off: 1e-12 relative, over long sequences, blocks and scattered entries of
missing data (the recursion leaves the steady state and comes back), a singular Q, a dynamic
state dimension with a full R, and a batch whose sequences run as columns of one filter.

Collapsed observations: with more emission components than states, runs of steps with one
missing pattern have their whitened data projected at once (time-invariant H and R only, so
the per-step reference never collapses), equal to the step-by-step path to the same 1e-12,
with a diagonal and a full R, through missing blocks and scattered missing entries.

The smoother's backward recursion has a steady state too (BackwardRecursion), checked by the
same comparison of the smoothed and cross covariances.

(The columns path alone is checked over the whole battery: test_battery.py.)
"""

import numpy as np
import pytest

from lgssm import LinearGaussianSSM

from conftest import spd, stable


def _model(n, p, m, q_rank, seed, diagonal_r=False):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, q_rank))
    kw = dict(
        initial_mean=rng.standard_normal(n),
        initial_covariance=spd(rng, n),
        dynamics_weights=stable(rng, n, 0.9),
        dynamics_bias=0.1 * rng.standard_normal(n),
        dynamics_input_weights=rng.standard_normal((n, m)),
        dynamics_covariance=0.3 * a @ a.T,
        emission_weights=rng.standard_normal((p, n)),
        emission_bias=rng.standard_normal(p),
        emission_input_weights=rng.standard_normal((p, m)),
        emission_covariance=np.diag(rng.uniform(0.5, 2.0, p)) if diagonal_r else spd(rng, p),
    )
    return LinearGaussianSSM(n, p, input_dim=m), kw


def _per_step(kw, T):
    """The same parameters with one (equal) entry per step."""
    out = dict(kw)
    for name in ("dynamics_weights", "dynamics_bias", "dynamics_input_weights", "dynamics_covariance"):
        out[name] = np.repeat(kw[name][None], T - 1, axis=0)
    for name in ("emission_weights", "emission_bias", "emission_input_weights", "emission_covariance"):
        out[name] = np.repeat(kw[name][None], T, axis=0)
    return out


def _data(rng, T, p, m, missing):
    y = 3.0 * rng.standard_normal((T, p))
    if missing:
        y[150:170] = np.nan  # a block of wholly missing steps
        y[300:360, 1] = np.nan  # another pattern for a while
        y[420, 0] = y[421, -1] = y[500, :2] = np.nan  # scattered: out of the steady state and back
    return y, rng.standard_normal((T, m))


def _close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    scale = np.abs(want).max() if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale, err_msg=what)


# (state, emission, input, rank of Q, missing data, diagonal R). With more emission components
# than states the filter also collapses the observations (runs of steps whose data terms are
# computed at once, src/kalman.hpp); the per-step reference never does.
CASES = {
    "ordinary": (3, 5, 1, 3, False, False),
    "missing_blocks": (3, 5, 1, 3, True, False),
    "singular_Q": (4, 2, 0, 1, True, False),
    "dynamic_state_dim_full_R": (6, 12, 2, 6, True, False),
    "emission_much_larger_diagonal_R": (3, 60, 1, 3, True, True),
    "emission_much_larger_full_R": (5, 48, 2, 5, True, False),
}


@pytest.mark.parametrize("name", CASES)
def test_steady_state_equals_the_full_recursion(name):
    n, p, m, q_rank, missing, diagonal_r = CASES[name]
    T = 600
    model, kw = _model(n, p, m, q_rank, seed=list(CASES).index(name), diagonal_r=diagonal_r)
    rng = np.random.default_rng(7)
    y, u = _data(rng, T, p, m, missing)
    fast, _ = model.initialize(key=0, **kw)
    full, _ = model.initialize(key=0, **_per_step(kw, T))

    a, b = model.filter(fast, y, u), model.filter(full, y, u)
    assert a.marginal_loglik == pytest.approx(b.marginal_loglik, rel=1e-12)
    for field in ("filtered_means", "filtered_covariances", "predicted_means", "predicted_covariances"):
        _close(getattr(a, field), getattr(b, field), field)
    a, b = model.smoother(fast, y, u), model.smoother(full, y, u)
    for field in ("smoothed_means", "smoothed_covariances", "smoothed_cross_covariances"):
        _close(getattr(a, field), getattr(b, field), field)

    # A forecast from the steady state runs the recursion (no update between the predictions).
    K = 5
    long, _ = model.initialize(key=0, **_per_step(kw, T + K))
    fu = np.ones((K, m))
    fa, fb = model.forecast(fast, y, K, u, fu), model.forecast(long, y, K, u, fu)
    for i, what in enumerate(("means", "covariances", "emission means", "emission covariances")):
        _close(fa[i], fb[i], "forecast " + what)

    # A batch: three sequences of this pattern run as columns, their log likelihoods and E-step.
    ys = [y] + [y + rng.standard_normal(y.shape) for _ in range(2)]
    us = [u] * 3
    _close(model.marginal_log_prob(fast, ys, us), model.marginal_log_prob(full, ys, us), "batch log likelihoods")
    sa, sb = model.sufficient_stats(fast, ys, us), model.sufficient_stats(full, ys, us)
    assert sa.marginal_loglik == pytest.approx(sb.marginal_loglik, rel=1e-12)
    for ra, rb in ((sa.initial, [sb.initial]), (sa.dynamics[0], sb.dynamics), (sa.emissions[0], sb.emissions)):
        for k in ("xx", "rx", "rr"):  # the per-step model's emission entries (one per step, equal w0) pooled
            _close(getattr(ra, k), sum(np.asarray(getattr(r, k)) for r in rb), k)
