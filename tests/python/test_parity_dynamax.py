"""Parity with dynamax (JAX with jax_enable_x64) on the same models and data: log
likelihood, filtered and smoothed moments, posterior predictive, forecasts,
joint sampling and EM trajectories, to 1e-8 relative. Where dynamax differs
(its smoothed "cross covariances" are second moments, its forecast is
approximate, its emission means omit D u, it has no missing data, its per-step
dynamics are indexed one step later) the test states the exact relation
instead (docs/parity.md). About 35 s of CPU, mostly JAX compiling once per shape."""

import numpy as np
import pytest

pytest.importorskip(
    "dynamax", minversion="1.0.3", exc_type=ImportError, reason="dynamax (extra `peers`) cannot be imported"
)
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_disable_most_optimizations", True)  # compiles ~30% faster; these are small problems
import jax.numpy as jnp  # noqa: E402
from dynamax.linear_gaussian_ssm import LinearGaussianConjugateSSM as DynamaxConjugateSSM  # noqa: E402
from dynamax.linear_gaussian_ssm import LinearGaussianSSM as DynamaxSSM  # noqa: E402
from dynamax.linear_gaussian_ssm import inference as dx_inference  # noqa: E402

from lgssm import LinearGaussianConjugateSSM  # noqa: E402
from lgssm.interop import to_dynamax  # noqa: E402

from conftest import assert_close  # noqa: E402
from dense_reference import Reference  # noqa: E402
from peer_models import (  # noqa: E402
    EM_ITERS,
    NUM_FORECAST,
    as_kwargs,
    inputs_case,
    notebook_case,
    replaced,  # noqa: E402
    with_missing,
)

RTOL = 1e-8
smoother = jax.jit(dx_inference.lgssm_smoother)


def dynamax_model(case, cls=DynamaxSSM):
    m = case.model
    return cls(m.state_dim, m.emission_dim, m.input_dim)


def jnp_or_none(a):
    return None if a is None else jnp.asarray(a)


def emulate_missing(params, emissions):
    """dynamax has no missing data; an exact emulation with per-step emission
    parameters: a missing entry becomes y = 0 with zero weights, input weights
    and bias, unit variance and no correlation. It then adds log N(0; 0, 1) per
    missing entry to the log likelihood and nothing else changes. Returns
    (emissions, per-step emission params as a dict, number of missing entries)."""
    T, p = emissions.shape
    miss = np.isnan(emissions)
    e = params.emissions
    keep = (~miss).astype(float)
    weights = e.weights[None] * keep[:, :, None]
    input_weights = e.input_weights[None] * keep[:, :, None]
    bias = e.bias[None] * keep
    cov = e.cov[None] * keep[:, :, None] * keep[:, None, :] + np.eye(p)[None] * miss[:, :, None]
    return (
        np.where(miss, 0.0, emissions),
        dict(weights=weights, bias=bias, input_weights=input_weights, cov=cov),
        int(miss.sum()),
    )


# --------------------------------------------------------------------------
# Filter and smoother.


def inference_notebook():
    case = notebook_case()
    return case, smoother(to_dynamax(case.params), jnp.asarray(case.emissions), None), 0.0


def inference_inputs():
    case = inputs_case()
    return case, smoother(to_dynamax(case.params), jnp.asarray(case.emissions), jnp.asarray(case.inputs)), 0.0


def inference_missing_time_varying():
    """Missing entries (emulated, see emulate_missing) and per-step dynamics weights:
    lgssm's (T-1, n, n) entry k drives z_k -> z_{k+1}; dynamax's (T, n, n) entry k+1
    does and its entry 0 is never read (NaN here to prove it)."""
    case = inputs_case()
    case.emissions = with_missing(case.emissions)
    T, n = len(case.emissions), case.model.state_dim
    rng = np.random.default_rng(3)
    case.params.dynamics.weights = case.params.dynamics.weights + 0.1 * rng.normal(size=(T - 1, n, n))
    filled, em, num_missing = emulate_missing(case.params, case.emissions)
    weights = np.concatenate([np.full((1, n, n), np.nan), case.params.dynamics.weights])
    dx = to_dynamax(case.params)
    dx = dx._replace(dynamics=dx.dynamics._replace(weights=jnp.asarray(weights)))
    dx = dx._replace(emissions=dx_inference.ParamsLGSSMEmissions(**{k: jnp.asarray(v) for k, v in em.items()}))
    post = smoother(dx, jnp.asarray(filled), jnp.asarray(case.inputs))
    return case, post, 0.5 * np.log(2 * np.pi) * num_missing


def inference_batch():
    case = inputs_case(num_sequences=3)
    post = jax.vmap(smoother, in_axes=(None, 0, 0))(
        to_dynamax(case.params), jnp.asarray(case.emissions), jnp.asarray(case.inputs)
    )
    return case, post, 0.0


# dynamax's covariance updates P - K S K^T and P + G (P_{t+1|T} - P_{t+1|t}) G^T
# lose digits where the posterior is tight: in the notebook its filtered and
# smoothed covariances are ~1e-8 and ~1e-7 from the exact ones
# (test_dynamax_accuracy_notebook), so its moments are compared at 1e-6 there.
MOMENT_RTOL = {"notebook": 1e-6}

INFERENCE = {
    f.__name__[len("inference_") :]: f
    for f in (inference_notebook, inference_inputs, inference_missing_time_varying, inference_batch)
}


@pytest.mark.parametrize("name", list(INFERENCE))
def test_filter_and_smoother(name):
    case, dx, ll_offset = INFERENCE[name]()
    post = case.model.smoother(case.params, case.emissions, case.inputs)
    assert_close(post.marginal_loglik, np.asarray(dx.marginal_loglik) + ll_offset, "marginal_loglik", rtol=RTOL)
    rtol = MOMENT_RTOL.get(name, RTOL)
    for field in ("filtered_means", "filtered_covariances", "smoothed_means", "smoothed_covariances"):
        assert_close(getattr(post, field), np.asarray(getattr(dx, field)), field, rtol=rtol)
    # dynamax's smoothed_cross_covariances are E[z_t z_{t+1}^T | y]; lgssm's are Cov[z_{t+1}, z_t | y].
    m = np.asarray(dx.smoothed_means)
    second_moment = np.asarray(dx.smoothed_cross_covariances)
    cov = second_moment - m[..., :-1, :, None] * m[..., 1:, None, :]
    assert_close(post.smoothed_cross_covariances, np.swapaxes(cov, -1, -2), "smoothed_cross_covariances", rtol=rtol)


def test_dynamax_accuracy_notebook():
    """The notebook's covariances against the dense joint Gaussian
    (dense_reference.py; the smoothed law at the last step is the filtered one):
    lgssm's agree to 1e-10, dynamax's only to ~1e-8 (filtered) and ~1e-7 (smoothed)."""
    case, dx, _ = inference_notebook()
    _, covs, _ = Reference(as_kwargs(case.params), case.emissions).smoothed()
    post = case.model.smoother(case.params, case.emissions)
    assert_close(post.smoothed_covariances, covs, "lgssm smoothed_covariances", rtol=1e-10)
    assert_close(post.filtered_covariances[-1], covs[-1], "lgssm last filtered covariance", rtol=1e-10)
    for name, ours, exact, low in (
        ("smoothed_covariances", dx.smoothed_covariances, covs, 1e-8),
        ("last filtered covariance", dx.filtered_covariances[-1], covs[-1], 1e-9),
    ):
        gap = np.max(np.abs(np.asarray(ours) - exact)) / np.max(np.abs(exact))
        assert low < gap < 1e-6, f"dynamax {name}: relative error {gap:.3g}"


def test_missing_values_are_not_supported_by_dynamax():
    """NaN emissions give dynamax a NaN log likelihood (hence emulate_missing)."""
    case = inputs_case()
    missing = with_missing(case.emissions)
    dx = smoother(to_dynamax(case.params), jnp.asarray(missing), jnp.asarray(case.inputs))
    assert np.isnan(float(dx.marginal_loglik))
    assert np.isfinite(case.model.marginal_log_prob(case.params, missing, case.inputs))


# --------------------------------------------------------------------------
# Posterior predictive, forecast, sampling.


def test_posterior_predictive_omits_emission_inputs_in_dynamax():
    """dynamax's posterior_predictive mean is H m_{t|T} + d: it drops D u_t.
    Adding D u_t back gives lgssm's mean; the standard deviations agree."""
    case = inputs_case()
    dx = jax.jit(dynamax_model(case).posterior_predictive)(
        to_dynamax(case.params), jnp.asarray(case.emissions), jnp.asarray(case.inputs)
    )
    means, stds = case.model.posterior_predictive(case.params, case.emissions, case.inputs)
    D = case.params.emissions.input_weights
    assert_close(means, np.asarray(dx[0]) + case.inputs @ D.T, "posterior predictive means", rtol=RTOL)
    assert_close(stds, np.asarray(dx[1]), "posterior predictive stds", rtol=RTOL)


@pytest.mark.parametrize("make_case", [notebook_case, inputs_case], ids=["notebook", "inputs"])
def test_forecast_is_approximate_in_dynamax(make_case):
    """dynamax forecasts by filtering K dummy observations y = 0 with R = 1e8 I
    from the one-step prediction, and its emission means omit D u. lgssm's filter
    run on that construction reproduces dynamax's states to 1e-8; lgssm's exact
    forecast differs from them by the dummy observations' small pull."""
    case = make_case()
    dx = dynamax_model(case)
    forecast = jax.jit(dx.forecast, static_argnums=2)
    fm, fc, fem, fec = (
        np.asarray(a)
        for a in forecast(
            to_dynamax(case.params),
            jnp.asarray(case.emissions),
            NUM_FORECAST,
            jnp_or_none(case.inputs),
            jnp_or_none(case.forecast_inputs),
        )
    )
    model, params = case.model, case.params
    exact = model.forecast(params, case.emissions, NUM_FORECAST, case.inputs, case.forecast_inputs)

    # The exact relation: lgssm's filter on dynamax's construction.
    dummy = replaced(
        model,
        params,
        initial_mean=exact[0][0],
        initial_covariance=exact[1][0],
        emission_covariance=1e8 * np.eye(model.emission_dim),
    )
    fu = np.zeros((NUM_FORECAST, model.input_dim)) if case.forecast_inputs is None else case.forecast_inputs
    construction = model.filter(dummy, np.zeros((NUM_FORECAST, model.emission_dim)), fu)
    assert_close(fm, construction.filtered_means, "dynamax forecast means", rtol=RTOL)
    assert_close(fc, construction.filtered_covariances, "dynamax forecast covariances", rtol=RTOL)
    H, d, D, R = (params.emissions.weights, params.emissions.bias, params.emissions.input_weights, params.emissions.cov)
    assert_close(fem, fm @ H.T + d, "dynamax forecast emission means (no D u)", rtol=RTOL)
    assert_close(fec, H @ fc @ H.T + R, "dynamax forecast emission covariances", rtol=RTOL)

    # Against the exact forecast: close, but not equal.
    for name, ours, theirs in (
        ("means", exact[0], fm),
        ("covariances", exact[1], fc),
        ("emission means", exact[2] - fu @ D.T, fem),
    ):
        rel = np.max(np.abs(ours - theirs)) / np.max(np.abs(ours))
        assert 1e-13 < rel < 1e-5, f"forecast {name}: relative gap to dynamax {rel:.3g}"


def test_sampler_uses_the_filters_input_timing():
    """dynamax 1.0.3's sampler, like its filter and lgssm, lets u_t drive the
    transition into z_t. With negligible noise (covariances 1e-24 I) both
    samplers return the noiseless path, which depends on that timing."""
    case = inputs_case()
    model = case.model
    n, p = model.state_dim, model.emission_dim
    quiet = replaced(
        model,
        case.params,
        initial_covariance=1e-24 * np.eye(n),
        dynamics_covariance=1e-24 * np.eye(n),
        emission_covariance=1e-24 * np.eye(p),
    )
    states, emissions = model.sample(quiet, 0, len(case.inputs), case.inputs)
    dx_states, dx_emissions = jax.jit(dynamax_model(case).sample, static_argnums=2)(
        to_dynamax(quiet), jax.random.PRNGKey(0), len(case.inputs), jnp.asarray(case.inputs)
    )
    assert_close(states, np.asarray(dx_states), "noiseless states", rtol=RTOL)
    assert_close(emissions, np.asarray(dx_emissions), "noiseless emissions", rtol=RTOL)


# --------------------------------------------------------------------------
# EM: dynamax's fit_em with all parameters trainable is lgssm's joint M-step.


def fit_both(case, num_iters, conjugate=False):
    """(lgssm's, dynamax's) (params, log likelihoods) after fit_em from
    case.em_start; ``conjugate``: both libraries' conjugate-prior models with
    their default priors (MAP EM; the objective includes the log prior)."""
    dx = dynamax_model(case, DynamaxConjugateSSM if conjugate else DynamaxSSM)
    dx_fit = dx.fit_em(
        to_dynamax(case.em_start),
        dx.initialize()[1],
        jnp.asarray(case.emissions),
        jnp_or_none(case.inputs),
        num_iters=num_iters,
        verbose=False,
    )
    m = case.model
    model = LinearGaussianConjugateSSM(m.state_dim, m.emission_dim, m.input_dim) if conjugate else m
    ours = model.fit_em(
        case.em_start, model.initialize()[1], case.emissions, case.inputs, num_iters=num_iters, verbose=False
    )
    return ours, dx_fit


def assert_same_params(params, dx_params, rtol, skip=()):
    for group in ("initial", "dynamics", "emissions"):
        ours, theirs = getattr(params, group), getattr(dx_params, group)
        for field in theirs._fields:
            if f"{group}.{field}" not in skip:
                assert_close(getattr(ours, field), np.asarray(getattr(theirs, field)), f"{group}.{field}", rtol=rtol)


@pytest.mark.parametrize("conjugate", [False, True], ids=["mle", "map"])
def test_em_trajectory_notebook(conjugate):
    (params, lls), (dx_params, dx_lls) = fit_both(notebook_case(), EM_ITERS, conjugate)
    assert_close(lls, np.asarray(dx_lls), "log likelihood per EM iteration", rtol=RTOL)
    assert_same_params(params, dx_params, rtol=1e-6)


def test_em_batch_initial_covariance_differs_in_dynamax():
    """With N sequences dynamax's M-step sets the initial covariance to
    (sum_i E[z_0 z_0^T] - (sum_i E[z_0])(sum_i E[z_0])^T) / N, which is the
    maximizer minus (N - 1) m m^T (m the new initial mean): not positive
    definite in general, and dynamax's next E-step returns NaN here. The other
    parameters are lgssm's joint M-step (one iteration, 3 sequences with inputs)."""
    case = inputs_case(num_sequences=3)
    (params, lls), (dx_params, dx_lls) = fit_both(case, 1)
    assert_close(lls, np.asarray(dx_lls), "log likelihood before the M-step", rtol=RTOL)
    assert_same_params(params, dx_params, rtol=RTOL, skip=("initial.cov",))
    m = params.initial.mean
    assert_close(
        params.initial.cov - (len(case.emissions) - 1) * np.outer(m, m),
        np.asarray(dx_params.initial.cov),
        "initial.cov + (N - 1) m m^T",
        rtol=RTOL,
    )
    assert np.min(np.linalg.eigvalsh(np.asarray(dx_params.initial.cov))) < 0
    next_lls = jax.vmap(smoother, in_axes=(None, 0, 0))(
        dx_params, jnp.asarray(case.emissions), jnp.asarray(case.inputs)
    ).marginal_loglik
    assert np.all(np.isnan(np.asarray(next_lls)))
