"""One battery of exact-inference tests over every model variant (see conftest.py),
each compared with the dense joint-Gaussian reference (dense_reference.py) at
rtol 1e-9, for one sequence, a list of sequences of different lengths and a
NaN-padded (B, T, p) batch."""

import numpy as np
import pytest

import lgssm
from lgssm import LinearGaussianSSM, ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions, ParamsLGSSMInitial

from conftest import VARIANTS, assert_close
from dense_reference import Reference


def make_model(variant, convert=None):
    convert = convert or (lambda a: a)
    model = LinearGaussianSSM(
        variant.state_dim,
        variant.emission_dim,
        input_dim=variant.input_dim,
        has_dynamics_bias=variant.has_dynamics_bias,
        has_emissions_bias=variant.has_emissions_bias,
    )
    params, _ = model.initialize(key=0, **{k: convert(v) for k, v in variant.init_kwargs.items()})
    return model, params


def effective_length(emissions):
    """Length of a padded sequence: trailing all-NaN rows are padding."""
    observed = np.flatnonzero(~np.all(np.isnan(emissions), axis=1))
    return int(observed[-1]) + 1 if observed.size else 0


def arguments(variant, form):
    """(emissions, inputs, forecast_inputs, references) for the call in the given form."""
    K = variant.num_forecast_timesteps if variant.forecast else 0
    if form == "single":
        seqs = [variant.seq]
    else:
        seqs = variant.batch
    if form == "padded":
        T = max(s.emissions.shape[0] for s in seqs)
        E = np.full((len(seqs), T, variant.emission_dim), np.nan)
        U = np.zeros((len(seqs), T, variant.input_dim))
        for b, s in enumerate(seqs):
            E[b, : len(s.emissions)] = s.emissions
            if variant.input_dim:
                U[b, : len(s.emissions)] = s.inputs
        refs = []
        for b, s in enumerate(seqs):
            L = effective_length(E[b])
            refs.append(
                Reference(variant.params, E[b, :L], U[b, :L] if variant.input_dim else None, K, s.forecast_inputs)
            )
        FU = np.stack([s.forecast_inputs for s in seqs]) if variant.input_dim else None
        return E, (U if variant.input_dim else None), FU, refs
    refs = [Reference(variant.params, s.emissions, s.inputs, K, s.forecast_inputs) for s in seqs]
    if form == "single":
        s = seqs[0]
        return s.emissions, s.inputs, s.forecast_inputs, refs
    E = [s.emissions for s in seqs]
    U = [s.inputs for s in seqs] if variant.input_dim else None
    FU = [s.forecast_inputs for s in seqs] if variant.input_dim else None
    return E, U, FU, refs


def expected(refs, form, fn, pad=None, padded_length=None):
    """fn(reference) for one sequence; for "padded", stacked over the batch with per-step
    arrays (pad = 0 for length T, -1 for T-1) NaN-padded to padded_length + pad."""
    vals = [fn(r) for r in refs]
    if form == "single":
        return vals[0]
    if form == "list":
        return vals
    if pad is None:
        return np.stack([np.asarray(v, float) for v in vals])
    out = np.full((len(vals), padded_length + pad) + np.shape(vals[0])[1:], np.nan)
    for b, v in enumerate(vals):
        out[b, : len(v)] = v
    return out


def check(result, get, refs, form, fn, name, pad=None, padded_length=None):
    """Compare get(result) with fn(reference), per sequence for a list result."""
    if form == "list":
        assert isinstance(result, list) and len(result) == len(refs), (
            f"{name}: expected a list of {len(refs)} results, got {type(result).__name__}"
        )
        for b, (res, ref) in enumerate(zip(result, refs)):
            assert_close(get(res), fn(ref), f"{name}[{b}]")
    else:
        assert_close(get(result), expected(refs, form, fn, pad, padded_length), name)


def check_tuple(out, i, size, refs, form, fn, name, pad=None, padded_length=None):
    """Element i of a tuple-valued result (posterior_predictive, forecast). For a list of
    sequences the tuple holds one list per element (so that `means, stds = ...` unpacks
    alike in every form), each with one array per sequence."""
    assert isinstance(out, tuple) and len(out) == size, (
        f"{name}: expected a tuple of {size}, got {type(out).__name__} of length {len(out)}"
    )
    check(out[i], lambda x: x, refs, form, fn, name, pad, padded_length)


def _padded_length(E, form):
    return np.shape(E)[1] if form == "padded" else None


# --------------------------------------------------------------------------
# The battery.


def test_marginal_log_prob(variant, form):
    model, params = make_model(variant)
    E, U, _, refs = arguments(variant, form)
    ll = model.marginal_log_prob(params, E, U)
    if form == "single":
        assert isinstance(ll, (float, np.floating)), type(ll)
        assert_close(np.float64(ll), refs[0].marginal_loglik, "marginal_log_prob")
    else:
        assert_close(ll, np.array([r.marginal_loglik for r in refs]), "marginal_log_prob")


def test_filter(variant, form):
    model, params = make_model(variant)
    E, U, _, refs = arguments(variant, form)
    post = model.filter(params, E, U)
    Tp = _padded_length(E, form)
    if form == "list":
        check(post, lambda r: np.float64(r.marginal_loglik), refs, form, lambda r: r.marginal_loglik, "marginal_loglik")
    else:
        check(
            post,
            lambda r: np.asarray(r.marginal_loglik, np.float64),
            refs,
            form,
            lambda r: r.marginal_loglik,
            "marginal_loglik",
        )
    check(post, lambda r: r.filtered_means, refs, form, lambda r: r.filtered()[0], "filtered_means", 0, Tp)
    check(post, lambda r: r.filtered_covariances, refs, form, lambda r: r.filtered()[1], "filtered_covariances", 0, Tp)
    check(post, lambda r: r.predicted_means, refs, form, lambda r: r.predicted()[0], "predicted_means", 0, Tp)
    check(
        post, lambda r: r.predicted_covariances, refs, form, lambda r: r.predicted()[1], "predicted_covariances", 0, Tp
    )


def test_smoother(variant, form):
    model, params = make_model(variant)
    E, U, _, refs = arguments(variant, form)
    post = model.smoother(params, E, U)
    Tp = _padded_length(E, form)
    if form == "list":
        check(post, lambda r: np.float64(r.marginal_loglik), refs, form, lambda r: r.marginal_loglik, "marginal_loglik")
    else:
        check(
            post,
            lambda r: np.asarray(r.marginal_loglik, np.float64),
            refs,
            form,
            lambda r: r.marginal_loglik,
            "marginal_loglik",
        )
    check(post, lambda r: r.filtered_means, refs, form, lambda r: r.filtered()[0], "filtered_means", 0, Tp)
    check(post, lambda r: r.filtered_covariances, refs, form, lambda r: r.filtered()[1], "filtered_covariances", 0, Tp)
    check(post, lambda r: r.smoothed_means, refs, form, lambda r: r.smoothed()[0], "smoothed_means", 0, Tp)
    check(post, lambda r: r.smoothed_covariances, refs, form, lambda r: r.smoothed()[1], "smoothed_covariances", 0, Tp)
    check(
        post,
        lambda r: r.smoothed_cross_covariances,
        refs,
        form,
        lambda r: r.smoothed()[2],
        "smoothed_cross_covariances",
        -1,
        Tp,
    )


def test_posterior_predictive(variant, form):
    model, params = make_model(variant)
    E, U, _, refs = arguments(variant, form)
    out = model.posterior_predictive(params, E, U)
    Tp = _padded_length(E, form)
    stds = lambda r: np.sqrt(np.diagonal(r.posterior_predictive()[1], axis1=1, axis2=2))  # noqa: E731
    check_tuple(out, 0, 2, refs, form, lambda r: r.posterior_predictive()[0], "means", 0, Tp)
    check_tuple(out, 1, 2, refs, form, stds, "stds", 0, Tp)


def test_posterior_predictive_full_covariance(variant, form):
    model, params = make_model(variant)
    E, U, _, refs = arguments(variant, form)
    out = model.posterior_predictive(params, E, U, full_covariance=True)
    Tp = _padded_length(E, form)
    check_tuple(out, 0, 2, refs, form, lambda r: r.posterior_predictive()[0], "means", 0, Tp)
    check_tuple(out, 1, 2, refs, form, lambda r: r.posterior_predictive()[1], "covariances", 0, Tp)


def test_forecast(forecast_variant, form):
    variant = forecast_variant
    model, params = make_model(variant)
    E, U, FU, refs = arguments(variant, form)
    K = variant.num_forecast_timesteps
    if variant.input_dim:
        out = model.forecast(params, E, K, inputs=U, forecast_inputs=FU)
    else:
        out = model.forecast(params, E, K)
    names = ["means", "covariances", "emission_means", "emission_covariances"]
    for i, name in enumerate(names):
        check_tuple(out, i, 4, refs, form, lambda r, i=i: r.forecast()[i], "forecast " + name)


# --------------------------------------------------------------------------
# Other ways of passing the same things.


def _direct_params(variant, convert=lambda a: a):
    p = variant.params
    return ParamsLGSSM(
        initial=ParamsLGSSMInitial(mean=convert(p["initial_mean"]), cov=convert(p["initial_covariance"])),
        dynamics=ParamsLGSSMDynamics(
            weights=convert(p["dynamics_weights"]),
            bias=convert(p["dynamics_bias"]),
            input_weights=convert(p["dynamics_input_weights"]),
            cov=convert(p["dynamics_covariance"]),
        ),
        emissions=ParamsLGSSMEmissions(
            weights=convert(p["emission_weights"]),
            bias=convert(p["emission_bias"]),
            input_weights=convert(p["emission_input_weights"]),
            cov=convert(p["emission_covariance"]),
        ),
    )


def test_params_constructed_directly(variant):
    """ParamsLGSSM(...) built by hand gives the same results as initialize(overrides)."""
    model, _ = make_model(variant)
    params = _direct_params(variant)
    seq = variant.seq
    ref = Reference(variant.params, seq.emissions, seq.inputs)
    assert_close(
        np.float64(model.marginal_log_prob(params, seq.emissions, seq.inputs)), ref.marginal_loglik, "marginal_log_prob"
    )
    post = model.smoother(params, seq.emissions, seq.inputs)
    assert_close(post.smoothed_means, ref.smoothed()[0], "smoothed_means")
    assert_close(post.smoothed_cross_covariances, ref.smoothed()[2], "smoothed_cross_covariances")


def test_initialize_stores_overrides(variant):
    _, params = make_model(variant)
    fields = {
        "initial_mean": params.initial.mean,
        "initial_covariance": params.initial.cov,
        "dynamics_weights": params.dynamics.weights,
        "dynamics_bias": params.dynamics.bias,
        "dynamics_input_weights": params.dynamics.input_weights,
        "dynamics_covariance": params.dynamics.cov,
        "emission_weights": params.emissions.weights,
        "emission_bias": params.emissions.bias,
        "emission_input_weights": params.emissions.input_weights,
        "emission_covariance": params.emissions.cov,
    }
    for name, value in variant.init_kwargs.items():
        assert_close(fields[name], value, name, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["list", "numpy"])
def test_input_kinds(kind):
    """Parameters, emissions and inputs as nested Python lists or NumPy arrays (no JAX)."""
    variant = VARIANTS["missing_components"]
    convert = (lambda a: np.asarray(a).tolist()) if kind == "list" else np.asarray
    model, params = make_model(variant, convert)
    seq = variant.seq
    K = variant.num_forecast_timesteps
    E, U, FU = convert(seq.emissions), convert(seq.inputs), convert(seq.forecast_inputs)
    ref = Reference(variant.params, seq.emissions, seq.inputs, K, seq.forecast_inputs)
    assert_close(np.float64(model.marginal_log_prob(params, E, U)), ref.marginal_loglik, "marginal_log_prob")
    post = model.smoother(params, E, U)
    assert_close(post.smoothed_means, ref.smoothed()[0], "smoothed_means")
    assert_close(post.smoothed_covariances, ref.smoothed()[1], "smoothed_covariances")
    means, stds = model.posterior_predictive(params, E, U)
    assert_close(means, ref.posterior_predictive()[0], "posterior_predictive means")
    fm, fc, fem, fec = model.forecast(params, E, K, inputs=U, forecast_inputs=FU)
    assert_close(fem, ref.forecast()[2], "forecast emission_means")
    assert_close(fec, ref.forecast()[3], "forecast emission_covariances")
    # Parameters given as ParamsLGSSM fields of the same kind.
    direct = _direct_params(variant, convert)
    assert_close(
        np.float64(model.marginal_log_prob(direct, E, U)), ref.marginal_loglik, "marginal_log_prob (direct params)"
    )


def test_jax_inputs():
    jnp = pytest.importorskip("jax.numpy")
    import jax

    jax.config.update("jax_enable_x64", True)
    variant = VARIANTS["inputs_and_biases"]
    model, params = make_model(variant, jnp.asarray)
    seq = variant.seq
    ref = Reference(variant.params, seq.emissions, seq.inputs)
    ll = model.marginal_log_prob(params, jnp.asarray(seq.emissions), jnp.asarray(seq.inputs))
    assert_close(np.float64(ll), ref.marginal_loglik, "marginal_log_prob")
    post = model.smoother(params, jnp.asarray(seq.emissions), jnp.asarray(seq.inputs))
    assert isinstance(post.smoothed_means, np.ndarray)
    assert_close(post.smoothed_means, ref.smoothed()[0], "smoothed_means")


def test_padded_batch_equals_per_sequence_calls():
    """A padded (B, T, p) batch gives, sequence by sequence, what single calls give."""
    variant = VARIANTS["missing_components"]
    model, params = make_model(variant)
    E, U, _, _ = arguments(variant, "padded")
    post = model.smoother(params, E, U)
    for b, s in enumerate(variant.batch):
        L = effective_length(E[b])
        one = model.smoother(params, s.emissions[:L], s.inputs[:L])
        assert_close(post.marginal_loglik[b], one.marginal_loglik, f"marginal_loglik[{b}]")
        assert_close(post.smoothed_means[b, :L], one.smoothed_means, f"smoothed_means[{b}]")
        assert np.all(np.isnan(post.smoothed_means[b, L:]))


def test_lgssm_exports():
    assert lgssm.LinearGaussianSSM is LinearGaussianSSM
    from lgssm.utils import monotonically_increasing, random_rotation

    assert callable(monotonically_increasing) and callable(random_rotation)
