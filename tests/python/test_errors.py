"""Bad input raises ValueError whose message names the argument and says what was
expected and what came ("<argument>: expected <what>, got <what>")."""

import re

import numpy as np
import pytest

from lgssm import (LinearGaussianSSM, ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions,
                   ParamsLGSSMInitial)

N, P, M, T = 2, 3, 1, 5

KEYS = {  # argument name -> initialize() keyword
    "initial.mean": "initial_mean", "initial.cov": "initial_covariance",
    "dynamics.weights": "dynamics_weights", "dynamics.bias": "dynamics_bias",
    "dynamics.input_weights": "dynamics_input_weights", "dynamics.cov": "dynamics_covariance",
    "emissions.weights": "emission_weights", "emissions.bias": "emission_bias",
    "emissions.input_weights": "emission_input_weights", "emissions.cov": "emission_covariance",
}


def valid_params():
    rng = np.random.default_rng(5)
    return {
        "initial_mean": rng.normal(size=N), "initial_covariance": np.eye(N),
        "dynamics_weights": 0.9 * np.eye(N), "dynamics_bias": rng.normal(size=N),
        "dynamics_input_weights": rng.normal(size=(N, M)), "dynamics_covariance": 0.1 * np.eye(N),
        "emission_weights": rng.normal(size=(P, N)), "emission_bias": rng.normal(size=P),
        "emission_input_weights": rng.normal(size=(P, M)), "emission_covariance": 0.2 * np.eye(P),
    }


def build(d):
    return ParamsLGSSM(
        initial=ParamsLGSSMInitial(mean=d["initial_mean"], cov=d["initial_covariance"]),
        dynamics=ParamsLGSSMDynamics(weights=d["dynamics_weights"], bias=d["dynamics_bias"],
                                     input_weights=d["dynamics_input_weights"], cov=d["dynamics_covariance"]),
        emissions=ParamsLGSSMEmissions(weights=d["emission_weights"], bias=d["emission_bias"],
                                       input_weights=d["emission_input_weights"], cov=d["emission_covariance"]))


def data(num_timesteps=T):
    rng = np.random.default_rng(6)
    return rng.normal(size=(num_timesteps, P)), rng.normal(size=(num_timesteps, M))


MODEL = LinearGaussianSSM(N, P, input_dim=M)


def shape_re(shape):
    """A shape as printed: "(3,)" or "(3)" for 1-d, "(2, 3)" otherwise."""
    if len(shape) == 1:
        return rf"\({shape[0]},?\)"
    return re.escape("(" + ", ".join(str(s) for s in shape) + ")")


def message(argument, *words):
    """Regex: the argument name, then 'expected', then each word in order, with 'got' in place."""
    return re.escape(argument) + r"\b.*\bexpected\b.*" + ".*".join(words)


def raises_on_use(argument, value, pattern, route="direct"):
    """Put `value` in `argument` and run marginal_log_prob; the error may come from
    building the parameters or from using them."""
    d = valid_params()
    d[KEYS[argument]] = value
    emissions, inputs = data()
    with pytest.raises(ValueError, match=pattern) as info:
        if route == "direct":
            params = build(d)
        else:
            params, _ = MODEL.initialize(key=0, **d)
        MODEL.marginal_log_prob(params, emissions, inputs)
    return info


def test_valid_params_are_accepted():
    emissions, inputs = data()
    assert np.isfinite(MODEL.marginal_log_prob(build(valid_params()), emissions, inputs))
    # A singular (PSD) dynamics or initial covariance is valid.
    d = valid_params()
    d["dynamics_covariance"] = np.diag([0.1, 0.0])
    d["initial_covariance"] = np.zeros((N, N))
    assert np.isfinite(MODEL.marginal_log_prob(build(d), emissions, inputs))


WRONG_SHAPES = [  # argument, expected shape (per entry), given shape
    ("initial.mean", (N,), (N + 1,)),
    ("initial.cov", (N, N), (N, N + 1)),
    ("dynamics.weights", (N, N), (N, N + 1)),
    ("dynamics.bias", (N,), (N + 1,)),
    ("dynamics.input_weights", (N, M), (N, M + 1)),
    ("dynamics.cov", (N, N), (N + 1, N + 1)),
    ("emissions.weights", (P, N), (P, N + 1)),
    ("emissions.bias", (P,), (P - 1,)),
    ("emissions.input_weights", (P, M), (P, M + 1)),
    ("emissions.cov", (P, P), (P - 1, P - 1)),
]


@pytest.mark.parametrize("argument, want, given", WRONG_SHAPES, ids=[w[0] for w in WRONG_SHAPES])
def test_wrong_shape_per_parameter(argument, want, given):
    value = np.eye(*given) if len(given) == 2 else np.ones(given)
    raises_on_use(argument, value, message(argument, shape_re(want), r"\bgot\b.*" + shape_re(given)))


@pytest.mark.parametrize("argument, want, given", WRONG_SHAPES, ids=[w[0] for w in WRONG_SHAPES])
def test_wrong_shape_per_parameter_via_initialize(argument, want, given):
    value = np.eye(*given) if len(given) == 2 else np.ones(given)
    name = re.escape(argument) + "|" + KEYS[argument]
    raises_on_use(argument, value, rf"({name}).*\bexpected\b.*\bgot\b", route="initialize")


NON_FINITE = [
    ("initial.mean", (0,), np.nan),
    ("initial.cov", (1, 1), np.inf),
    ("dynamics.weights", (0, 1), np.nan),
    ("dynamics.bias", (1,), np.inf),
    ("dynamics.input_weights", (0, 0), np.nan),
    ("dynamics.cov", (0, 0), np.nan),
    ("emissions.weights", (2, 1), -np.inf),
    ("emissions.bias", (0,), np.nan),
    ("emissions.input_weights", (1, 0), np.inf),
    ("emissions.cov", (2, 2), np.nan),
]


@pytest.mark.parametrize("argument, index, bad", NON_FINITE, ids=[w[0] for w in NON_FINITE])
def test_non_finite_parameter(argument, index, bad):
    value = valid_params()[KEYS[argument]].copy()
    value[index] = bad
    raises_on_use(argument, value, message(argument, r"finite", r"\bgot\b"))


@pytest.mark.parametrize("argument", ["initial.cov", "dynamics.cov", "emissions.cov"])
def test_asymmetric_covariance(argument):
    value = valid_params()[KEYS[argument]].copy()
    value[0, 1] += 0.05
    raises_on_use(argument, value, message(argument, r"symmetric", r"\bgot\b"))


@pytest.mark.parametrize("argument", ["initial.cov", "dynamics.cov", "emissions.cov"])
def test_indefinite_covariance(argument):
    value = valid_params()[KEYS[argument]].copy()
    value[0, 0] = -0.3
    raises_on_use(argument, value, message(argument, r"positive (semi-?)?definite", r"\bgot\b"))


def zero_variance_with_covariance():
    R = np.diag([0.2, 0.2, 0.0])
    R[1, 2] = R[2, 1] = 0.05
    return R


@pytest.mark.parametrize("value", [zero_variance_with_covariance(),
                                   np.ones((P, P))],  # rank one, no zero row
                         ids=["zero_variance_with_covariance", "rank_one"])
def test_emission_covariance_must_be_positive_definite(value):
    # A singular emissions.cov is valid only as zero rows and columns (exactly observed components).
    raises_on_use("emissions.cov", value, message("emissions.cov", r"zero row and column", r"\bgot\b"))


def test_time_varying_emission_covariance_entry_named():
    R = np.stack([0.2 * np.eye(P)] * T)
    R[3, 0, 0] = -1.0
    raises_on_use("emissions.cov", R, message("emissions.cov", r"positive definite", r"\bgot\b"))


@pytest.mark.parametrize("shape", [(T, P + 1), (T, P - 1), (T,), (1, 1, T, P), (0, P)],
                         ids=["wider", "narrower", "1-d", "4-d", "no_steps"])
def test_emissions_wrong_width_or_ndim(shape):
    _, inputs = data()
    emissions = np.ones(shape)
    with pytest.raises(ValueError, match=message("emissions", r"\bgot\b")):
        MODEL.marginal_log_prob(build(valid_params()), emissions, inputs)


def test_emissions_wrong_width_reports_shapes():
    emissions, inputs = data()
    emissions = np.ones((T, P + 1))
    with pytest.raises(ValueError, match=message("emissions", str(P), r"\bgot\b.*" + shape_re((T, P + 1)))):
        MODEL.filter(build(valid_params()), emissions, inputs)


def test_emissions_wrong_width_in_a_batch():
    emissions, inputs = data()
    params = build(valid_params())
    with pytest.raises(ValueError, match=message("emissions", r"\bgot\b")):
        MODEL.smoother(params, np.ones((2, T, P + 1)), np.ones((2, T, M)))
    with pytest.raises(ValueError, match=re.escape("emissions[1]") + r".*\bexpected\b.*\bgot\b"):
        MODEL.smoother(params, [emissions, np.ones((T - 1, P + 1))], [inputs, inputs[:-1]])


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_emissions(value):
    emissions, inputs = data()
    emissions[2, 1] = value
    with pytest.raises(ValueError, match=message("emissions", r"\bgot\b.*inf")):
        MODEL.filter(build(valid_params()), emissions, inputs)


@pytest.mark.parametrize("shape", [(T, M + 1), (T - 1, M), (T + 1, M), (T,)],
                         ids=["wider", "shorter", "longer", "1-d"])
def test_inputs_wrong_shape(shape):
    emissions, _ = data()
    with pytest.raises(ValueError, match=message("inputs", r"\bgot\b")):
        MODEL.smoother(build(valid_params()), emissions, np.ones(shape))


def test_inputs_wrong_shape_reports_shapes():
    emissions, _ = data()
    with pytest.raises(ValueError, match=message("inputs", shape_re((T, M)), r"\bgot\b.*" + shape_re((T, M + 1)))):
        MODEL.filter(build(valid_params()), emissions, np.ones((T, M + 1)))


def test_inputs_to_a_model_without_inputs():
    model = LinearGaussianSSM(N, P)
    params, _ = model.initialize(key=0)
    emissions, inputs = data()
    with pytest.raises(ValueError, match=message("inputs", r"\bgot\b")):
        model.filter(params, emissions, inputs)


def test_non_finite_inputs():
    emissions, inputs = data()
    inputs[1, 0] = np.nan
    with pytest.raises(ValueError, match=message("inputs", r"finite", r"\bgot\b")):
        MODEL.filter(build(valid_params()), emissions, inputs)


def test_forecast_inputs_wrong_shape():
    emissions, inputs = data()
    with pytest.raises(ValueError, match=message("forecast_inputs", r"\bgot\b")):
        MODEL.forecast(build(valid_params()), emissions, 3, inputs=inputs, forecast_inputs=np.ones((2, M)))


def test_sample_inputs_wrong_shape():
    with pytest.raises(ValueError, match=message("inputs", r"\bgot\b")):
        MODEL.sample(build(valid_params()), 0, T, inputs=np.ones((T - 1, M)))


@pytest.mark.parametrize("argument, length", [("dynamics.weights", T - 2), ("dynamics.cov", T - 2),
                                              ("dynamics.bias", T - 2), ("emissions.weights", T - 1),
                                              ("emissions.cov", T - 1), ("emissions.input_weights", T - 1)])
def test_time_varying_parameter_too_short(argument, length):
    value = np.stack([valid_params()[KEYS[argument]]] * length)
    raises_on_use(argument, value, message(argument, str(length + 1), r"\bgot\b.*" + str(length)))


def test_time_varying_parameters_must_cover_the_forecast_horizon():
    d = valid_params()
    d["dynamics_weights"] = np.stack([d["dynamics_weights"]] * (T - 1))  # exactly T - 1 transitions
    emissions, inputs = data()
    params = build(d)
    assert np.isfinite(MODEL.marginal_log_prob(params, emissions, inputs))
    with pytest.raises(ValueError, match=message("dynamics.weights", r"\bgot\b")):
        MODEL.forecast(params, emissions, 2, inputs=inputs, forecast_inputs=np.ones((2, M)))


@pytest.mark.parametrize("num_timesteps", [0, -3])
def test_num_timesteps_not_positive(num_timesteps):
    model = LinearGaussianSSM(N, P)
    params, _ = model.initialize(key=0)
    with pytest.raises(ValueError, match=message("num_timesteps", r"\bgot\b")):
        model.sample(params, 0, num_timesteps)
