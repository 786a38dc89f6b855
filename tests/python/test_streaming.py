"""The streaming filter and the fixed-lag smoother against the batch filter and
smoother (the independent reference here: the smoother run on each truncated
sequence y_{0:t}) and against the dense joint-Gaussian reference, over every
model variant of conftest.py plus a degenerate model (singular Q, an exactly
observed component)."""

import copy
import dataclasses
import pickle

import numpy as np
import pytest

from lgssm import LinearGaussianSSM
from lgssm.streaming import FilterState, FixedLagSmoother
from test_inference import make_model

from conftest import VARIANTS, assert_close, simulate, spd, stable
from dense_reference import Reference

RTOL = 1e-12  # the same computation as the batch functions, step by step


def rows(a, t):
    return None if a is None else a[t]


def stream(model, params, y, u):
    """Filter y step by step: (means, covs, step log likelihoods)."""
    state = model.filter_init(params)
    means, covs, lls = [], [], []
    for t in range(len(y)):
        state, ll = model.filter_step(params, state, y[t], rows(u, t))
        means.append(state.filtered_mean)
        covs.append(state.filtered_covariance)
        lls.append(ll)
    assert state.num_timesteps == len(y)
    assert_close(np.asarray(state.marginal_loglik), np.sum(lls), "state.marginal_loglik", RTOL)
    return np.array(means), np.array(covs), np.array(lls)


def assert_same_state(a, b):
    assert a.num_timesteps == b.num_timesteps
    assert np.array_equal(a.filtered_mean, b.filtered_mean)
    assert np.array_equal(a.filtered_covariance, b.filtered_covariance)
    assert a.marginal_loglik == b.marginal_loglik


def check_against_batch(model, params, y, u):
    means, covs, lls = stream(model, params, y, u)
    batch = model.filter(params, y, u)
    assert_close(means, batch.filtered_means, "filtered_means", RTOL)
    assert_close(covs, batch.filtered_covariances, "filtered_covariances", RTOL)
    assert_close(np.asarray(lls.sum()), model.marginal_log_prob(params, y, u), "sum of step log likelihoods", RTOL)
    return means, covs, lls


def test_steps_equal_batch_filter_and_dense_reference(variant):
    model, params = make_model(variant)
    y, u = variant.seq.emissions, variant.seq.inputs
    means, covs, lls = check_against_batch(model, params, y, u)
    ref = Reference(variant.params, y, u)
    ref_means, ref_covs = ref.filtered()
    assert_close(means, ref_means, "filtered_means vs dense", 1e-9)
    assert_close(covs, ref_covs, "filtered_covariances vs dense", 1e-9)
    assert_close(np.asarray(lls.sum()), ref.marginal_loglik, "log likelihood vs dense", 1e-9)


def degenerate_model():
    """Singular Q (rank 1) and R with a zero row and column: component 1 is observed exactly.
    Returns the model, its parameters, the plain-NumPy parameters (for the dense reference) and data."""
    rng = np.random.default_rng(7)
    n, p, m, T = 3, 3, 1, 12
    R = spd(rng, p, 0.5)
    R[1, :] = R[:, 1] = 0.0
    plain = {
        "initial_mean": rng.normal(size=n),
        "initial_covariance": spd(rng, n),
        "dynamics_weights": stable(rng, n),
        "dynamics_bias": 0.3 * rng.normal(size=n),
        "dynamics_input_weights": rng.normal(size=(n, m)),
        "dynamics_covariance": spd(rng, n, 0.4, rank=1),
        "emission_weights": rng.normal(size=(p, n)),
        "emission_bias": rng.normal(size=p),
        "emission_input_weights": rng.normal(size=(p, m)),
        "emission_covariance": R,
    }
    model = LinearGaussianSSM(n, p, input_dim=m)
    params, _ = model.initialize(key=0, **plain)
    u = rng.normal(size=(T, m))
    _, y = simulate(rng, plain, T, u)
    y[4, 0] = y[7, :] = np.nan  # a missing component, a missing step
    y[9, 1] = np.nan  # the exactly observed one missing
    return model, params, plain, y, u


def test_degenerate_model_equals_batch_and_dense():
    model, params, plain, y, u = degenerate_model()
    means, covs, lls = check_against_batch(model, params, y, u)
    ref_means, ref_covs = Reference(plain, y, u).filtered()
    assert_close(means, ref_means, "filtered_means vs dense", 1e-8)
    assert_close(covs, ref_covs, "filtered_covariances vs dense", 1e-8)
    # The exactly observed component is known after its update (zero filtered variance).
    h = np.asarray(params.emissions.weights)[1]
    for t in (0, 3, 11):
        assert abs(h @ covs[t] @ h) <= 1e-12 * np.abs(covs[t]).max()
    # Fixed lag over the degenerate model too.
    check_fixed_lag(model, params, y, u, lag=3)


def test_params_may_change_between_steps():
    """Two parameter sets, alternating: equals the batch filter on the per-step parameters they make
    (the cached emission factors must follow the values, not the step's entry index)."""
    rng = np.random.default_rng(11)
    n, p, T = 2, 3, 9
    model = LinearGaussianSSM(n, p)

    def draw():
        return model.initialize(
            key=0,
            initial_mean=rng.normal(size=n),
            dynamics_weights=stable(rng, n),
            dynamics_covariance=spd(rng, n, 0.3),
            emission_weights=rng.normal(size=(p, n)),
            emission_covariance=spd(rng, p, 0.5),
        )[0]

    a, b = draw(), draw()  # b's initial distribution is never used: step 0 takes a
    per_step = [a if t % 2 == 0 else b for t in range(T)]
    y = model.sample(a, 5, T)[1]
    y[3, 1] = np.nan
    means, fresh_means = [], []
    state, fresh = model.filter_init(a), model.filter_init(a)
    for t in range(T):
        state, _ = model.filter_step(per_step[t], state, y[t])
        means.append(state.filtered_mean)
        fresh, _ = model.filter_step(copy.copy(per_step[t]), fresh, y[t])  # a new object each step, then dropped
        fresh_means.append(fresh.filtered_mean)
    stacked, _ = model.initialize(
        key=0,
        initial_mean=np.asarray(a.initial.mean),
        initial_covariance=np.asarray(a.initial.cov),
        dynamics_weights=np.stack([per_step[k + 1].dynamics.weights for k in range(T - 1)]),
        dynamics_bias=np.stack([per_step[k + 1].dynamics.bias for k in range(T - 1)]),
        dynamics_covariance=np.stack([per_step[k + 1].dynamics.cov for k in range(T - 1)]),
        emission_weights=np.stack([s.emissions.weights for s in per_step]),
        emission_bias=np.stack([s.emissions.bias for s in per_step]),
        emission_covariance=np.stack([s.emissions.cov for s in per_step]),
    )
    expected = model.filter(stacked, y).filtered_means
    assert_close(np.array(means), expected, "filtered_means", RTOL)
    assert_close(np.array(fresh_means), expected, "filtered_means, new params objects", RTOL)


@pytest.mark.parametrize("name", [name for name, v in VARIANTS.items() if v.forecast])
def test_predict_step_equals_forecast(name):
    v = VARIANTS[name]
    model, params = make_model(v)
    y, u, fu = v.seq.emissions, v.seq.inputs, v.seq.forecast_inputs
    state = model.filter_init(params)
    for t in range(len(y)):
        state, _ = model.filter_step(params, state, y[t], rows(u, t))
    means, covs, _, _ = model.forecast(params, y, v.num_forecast_timesteps, u, fu)
    for k in range(2):
        state = model.predict_step(params, state, rows(fu, k))
        assert_close(state.filtered_mean, means[k], f"predict_step {k}: mean", RTOL)
        assert_close(state.filtered_covariance, covs[k], f"predict_step {k}: covariance", RTOL)
    assert state.num_timesteps == len(y) + 2


def test_predict_step_is_a_step_without_observation():
    v = VARIANTS["inputs_and_biases"]
    model, params = make_model(v)
    y, u = v.seq.emissions, v.seq.inputs
    a, b = model.filter_init(params), model.filter_init(params)
    for t in range(len(y)):
        if t == 2:
            model.predict_step(params, a, u[t])
            _, ll = model.filter_step(params, b, np.full(v.emission_dim, np.nan), u[t])
            assert ll == 0.0
        else:
            model.filter_step(params, a, y[t], u[t])
            model.filter_step(params, b, y[t], u[t])
        assert_same_state(a, b)


def test_initial_state():
    v = VARIANTS["time_invariant"]
    model, params = make_model(v)
    state = model.filter_init(params)
    assert isinstance(state, FilterState)
    assert state.num_timesteps == 0 and state.marginal_loglik == 0.0
    assert_close(state.filtered_mean, v.params["initial_mean"], "mean", 0.0)
    assert_close(state.filtered_covariance, v.params["initial_covariance"], "cov", 0.0)


def test_copy_and_pickle_resume_the_stream():
    v = VARIANTS["missing_components"]
    model, params = make_model(v)
    y, u = v.seq.emissions, v.seq.inputs
    state = model.filter_init(params)
    for t in range(4):
        model.filter_step(params, state, y[t], u[t])
    pickled = pickle.loads(pickle.dumps(state))
    copied, deep = copy.copy(state), copy.deepcopy(state)
    assert pickled.num_timesteps == 4 and pickled.marginal_loglik == state.marginal_loglik
    for t in range(4, len(y)):
        model.filter_step(params, state, y[t], u[t])
    for other in (pickled, copied, deep):
        assert other.num_timesteps == 4  # independent of `state`
        for t in range(4, len(y)):
            model.filter_step(params, other, y[t], u[t])
        assert_same_state(other, state)


def test_step_input_kinds():
    """Lists, integer arrays and strided views give the same step as float64 arrays."""
    v = VARIANTS["inputs_and_biases"]
    model, params = make_model(v)
    y = np.round(v.seq.emissions * 4)
    u = np.asfortranarray(v.seq.inputs)
    a, b = model.filter_init(params), model.filter_init(params)
    for t in range(len(y)):
        model.filter_step(params, a, y[t], u[t])
        model.filter_step(params, b, y[t].astype(int).tolist(), u[t, :])  # u[t] of Fortran order: strided
    assert np.array_equal(a.filtered_mean, b.filtered_mean)


def check_fixed_lag(model, params, y, u, lag):
    """Each step's lagged output and window equal the batch smoother on y_{0:t}."""
    smoother = model.fixed_lag_smoother(params, lag)
    assert isinstance(smoother, FixedLagSmoother)
    for t in range(len(y)):
        mean, cov = smoother.step(y[t], rows(u, t))
        s0 = max(0, t - lag)
        ref = model.smoother(params, y[: t + 1], None if u is None else u[: t + 1])
        assert smoother.window_start == s0 and smoother.num_timesteps == t + 1
        assert_close(mean, ref.smoothed_means[s0], f"lag {lag}, t {t}: mean", RTOL)
        assert_close(cov, ref.smoothed_covariances[s0], f"lag {lag}, t {t}: covariance", RTOL)
        assert_close(smoother.smoothed_means, ref.smoothed_means[s0:], f"lag {lag}, t {t}: window means", RTOL)
        assert_close(
            smoother.smoothed_covariances, ref.smoothed_covariances[s0:], f"lag {lag}, t {t}: window covs", RTOL
        )
        assert_close(np.asarray(smoother.marginal_loglik), ref.marginal_loglik, "marginal_loglik", RTOL)
    return smoother


@pytest.mark.parametrize("lag", [0, 1, 3])
def test_fixed_lag_equals_smoother_on_truncated_data(variant, lag):
    model, params = make_model(variant)
    check_fixed_lag(model, params, variant.seq.emissions, variant.seq.inputs, lag)


def test_fixed_lag_at_least_the_length_is_the_smoother(variant):
    model, params = make_model(variant)
    y, u = variant.seq.emissions, variant.seq.inputs
    T = len(y)
    for lag in (T - 1, T, T + 5):
        smoother = model.fixed_lag_smoother(params, lag)
        for t in range(T):
            smoother.step(y[t], rows(u, t))
        batch = model.smoother(params, y, u)
        assert smoother.window_start == 0
        assert_close(smoother.smoothed_means, batch.smoothed_means, "smoothed_means", RTOL)
        assert_close(smoother.smoothed_covariances, batch.smoothed_covariances, "smoothed_covariances", RTOL)
    ref_means, ref_covs, _ = Reference(variant.params, y, u).smoothed()
    assert_close(smoother.smoothed_means, ref_means, "smoothed_means vs dense", 1e-9)
    assert_close(smoother.smoothed_covariances, ref_covs, "smoothed_covariances vs dense", 1e-9)


def test_fixed_lag_copy_is_independent():
    v = VARIANTS["time_invariant"]
    model, params = make_model(v)
    y = v.seq.emissions
    smoother = model.fixed_lag_smoother(params, 2)
    smoother.step(y[0])
    other = copy.copy(smoother)
    smoother.step(y[1])
    assert other.num_timesteps == 1 and smoother.num_timesteps == 2
    other.step(y[1])
    assert np.array_equal(other.smoothed_covariances, smoother.smoothed_covariances)


# --------------------------------------------------------------------------
# Bad input.


@pytest.fixture
def stream_model():
    v = VARIANTS["inputs_and_biases"]  # state_dim 3, emission_dim 3, input_dim 2
    model, params = make_model(v)
    return model, params, model.filter_init(params)


@pytest.mark.parametrize(
    "emission, message",
    [
        (np.zeros(2), r"emission: expected shape \(3\) \(emission_dim\), got \(2\)"),
        (np.zeros((3, 1)), r"emission: expected shape \(3,\), got shape \(3, 1\)"),
        ([0.0, np.inf, 0.0], r"emission: expected finite values or NaN for missing, got inf at \(1\)"),
        (["a", "b", "c"], r"emission: expected"),
    ],
)
def test_bad_emission(stream_model, emission, message):
    model, params, state = stream_model
    with pytest.raises(ValueError, match=message):
        model.filter_step(params, state, emission, np.zeros(2))
    assert state.num_timesteps == 0  # unchanged


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros(3), r"input: expected shape \(2\) \(input_dim\) or none, got \(3\)"),
        (np.array([0.0, np.nan]), r"input: expected finite values, got nan at \(1\)"),
        (np.zeros((1, 2)), r"input: expected shape \(2,\), got shape \(1, 2\)"),
    ],
)
def test_bad_input(stream_model, value, message):
    model, params, state = stream_model
    with pytest.raises(ValueError, match=message):
        model.filter_step(params, state, np.zeros(3), value)
    with pytest.raises(ValueError, match=message):
        model.predict_step(params, state, value)
    with pytest.raises(ValueError, match=message):
        model.fixed_lag_smoother(params, 1).step(np.zeros(3), value)


@pytest.mark.parametrize("bad", [None, {}, np.zeros(3), "state"])
def test_wrong_state_type(stream_model, bad):
    model, params, _ = stream_model
    with pytest.raises(ValueError, match="state: expected the FilterState of model.filter_init"):
        model.filter_step(params, bad, np.zeros(3))
    with pytest.raises(ValueError, match="state: expected the FilterState"):
        model.predict_step(params, bad)


def test_state_of_another_model(stream_model):
    _, _, state = stream_model
    other = VARIANTS["time_invariant"]  # state_dim 2, emission_dim 3, input_dim 0
    model, params = make_model(other)
    with pytest.raises(ValueError, match=r"params: expected a model of \(state_dim, emission_dim, input_dim\) = "):
        model.filter_step(params, state, np.zeros(3))


def test_per_step_params_too_short():
    v = VARIANTS["time_varying_exact_length"]  # per-step parameters for exactly T steps
    model, params = make_model(v)
    y, u = v.seq.emissions, v.seq.inputs
    state = model.filter_init(params)
    for t in range(len(y)):
        model.filter_step(params, state, y[t], u[t])
    with pytest.raises(ValueError, match="dynamics.weights: expected 1 entry or at least"):
        model.filter_step(params, state, y[0], u[0])


@pytest.mark.parametrize("lag, message", [(-1, "lag: expected an integer >= 0, got -1"), (1.5, "lag: expected")])
def test_bad_lag(stream_model, lag, message):
    model, params, _ = stream_model
    with pytest.raises(ValueError, match=message):
        model.fixed_lag_smoother(params, lag)


def test_bad_params(stream_model):
    model, params, _ = stream_model
    bad = dataclasses.replace(params, initial=dataclasses.replace(params.initial, cov=-np.eye(3)))
    with pytest.raises(ValueError, match="initial.cov"):
        model.filter_init(bad)
    with pytest.raises(ValueError, match="initial.cov"):
        model.fixed_lag_smoother(bad, 2)
