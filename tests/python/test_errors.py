"""Bad input raises ValueError whose message names the argument and says what was
expected and what came ("<argument>: expected <what>, got <what>")."""

import os
import re

import numpy as np
import pytest

from lgssm import LinearGaussianSSM, ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions, ParamsLGSSMInitial

N, P, M, T = 2, 3, 1, 5

KEYS = {  # argument name -> initialize() keyword
    "initial.mean": "initial_mean",
    "initial.cov": "initial_covariance",
    "dynamics.weights": "dynamics_weights",
    "dynamics.bias": "dynamics_bias",
    "dynamics.input_weights": "dynamics_input_weights",
    "dynamics.cov": "dynamics_covariance",
    "emissions.weights": "emission_weights",
    "emissions.bias": "emission_bias",
    "emissions.input_weights": "emission_input_weights",
    "emissions.cov": "emission_covariance",
}


def valid_params():
    rng = np.random.default_rng(5)
    return {
        "initial_mean": rng.normal(size=N),
        "initial_covariance": np.eye(N),
        "dynamics_weights": 0.9 * np.eye(N),
        "dynamics_bias": rng.normal(size=N),
        "dynamics_input_weights": rng.normal(size=(N, M)),
        "dynamics_covariance": 0.1 * np.eye(N),
        "emission_weights": rng.normal(size=(P, N)),
        "emission_bias": rng.normal(size=P),
        "emission_input_weights": rng.normal(size=(P, M)),
        "emission_covariance": 0.2 * np.eye(P),
    }


def build(d):
    return ParamsLGSSM(
        initial=ParamsLGSSMInitial(mean=d["initial_mean"], cov=d["initial_covariance"]),
        dynamics=ParamsLGSSMDynamics(
            weights=d["dynamics_weights"],
            bias=d["dynamics_bias"],
            input_weights=d["dynamics_input_weights"],
            cov=d["dynamics_covariance"],
        ),
        emissions=ParamsLGSSMEmissions(
            weights=d["emission_weights"],
            bias=d["emission_bias"],
            input_weights=d["emission_input_weights"],
            cov=d["emission_covariance"],
        ),
    )


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


@pytest.mark.parametrize(
    "value",
    [zero_variance_with_covariance(), np.ones((P, P))],  # rank one, no zero row
    ids=["zero_variance_with_covariance", "rank_one"],
)
def test_emission_covariance_must_be_positive_definite(value):
    # A singular emissions.cov is valid only as zero rows and columns (exactly observed components).
    raises_on_use("emissions.cov", value, message("emissions.cov", r"zero row and column", r"\bgot\b"))


def test_time_varying_emission_covariance_entry_named():
    R = np.stack([0.2 * np.eye(P)] * T)
    R[3, 0, 0] = -1.0
    raises_on_use("emissions.cov", R, message("emissions.cov", r"positive definite", r"\bgot\b"))


@pytest.mark.parametrize(
    "shape", [(T, P + 1), (T, P - 1), (T,), (1, 1, T, P), (0, P)], ids=["wider", "narrower", "1-d", "4-d", "no_steps"]
)
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


@pytest.mark.parametrize("shape", [(T, M + 1), (T - 1, M), (T + 1, M), (T,)], ids=["wider", "shorter", "longer", "1-d"])
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


@pytest.mark.parametrize(
    "argument, length",
    [
        ("dynamics.weights", T - 2),
        ("dynamics.cov", T - 2),
        ("dynamics.bias", T - 2),
        ("emissions.weights", T - 1),
        ("emissions.cov", T - 1),
        ("emissions.input_weights", T - 1),
    ],
)
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


# --------------------------------------------------------------------------
# Counts, flags and tolerances: integers are integers, bools are bools.

FIT_Y = np.random.default_rng(7).normal(size=(6, P))


def _counted_calls():
    """(option, call(value)) for every integer option of the model's methods."""
    model = LinearGaussianSSM(N, P)
    params, props = model.initialize(0)
    quiet = {"verbose": False}
    return {
        "num_timesteps": lambda v: model.sample(params, 0, v),
        "num_forecast_timesteps": lambda v: model.forecast(params, FIT_Y, v),
        "num_samples": lambda v: model.posterior_sample(0, params, FIT_Y, num_samples=v),
        "num_iters": lambda v: model.fit_em(params, props, FIT_Y, num_iters=v, **quiet),
        "num_epochs": lambda v: model.fit_sgd(params, props, FIT_Y, num_epochs=v, **quiet),
        "batch_size": lambda v: model.fit_sgd(params, props, FIT_Y, num_epochs=1, batch_size=v, **quiet),
        "max_iters": lambda v: model.fit_lbfgs(params, props, FIT_Y, max_iters=v, **quiet),
        "state_dim": lambda v: LinearGaussianSSM(v, P),
        "emission_dim": lambda v: LinearGaussianSSM(N, v),
        "input_dim": lambda v: LinearGaussianSSM(N, P, input_dim=v),
    }


COUNTED = _counted_calls()
NOT_INTEGERS = [2.5, 3.0, np.float64(2.0), "10", True, np.bool_(True), None, [3]]


@pytest.mark.parametrize(
    "option,value",
    [
        pytest.param(o, v, id=f"{o}={v!r}")
        for o in COUNTED
        for v in NOT_INTEGERS
        if not (o == "num_samples" and v is None)
    ],
)  # None: one draw, no axis
def test_counts_must_be_integers(option, value):
    with pytest.raises(ValueError, match=re.escape(option) + r": expected an integer (>= \d|in \[\d, \d+\]), got "):
        COUNTED[option](value)


@pytest.mark.parametrize("option", ["num_iters", "num_epochs", "batch_size", "max_iters"])
def test_iteration_counts_beyond_the_core_int(option):
    with pytest.raises(
        ValueError,
        match=re.escape(option) + r": expected an integer in \[\d, 214748364\d\], got "
        r"1000000000000$",
    ):
        COUNTED[option](10**12)


@pytest.mark.parametrize("option", list(COUNTED))
def test_counts_accept_numpy_integers(option):
    COUNTED[option](np.int32(1) if option != "input_dim" else np.int64(0))


@pytest.mark.parametrize("option", ["num_timesteps", "num_samples", "batch_size", "max_iters", "state_dim"])
def test_negative_counts_are_printed_as_integers(option):
    with pytest.raises(ValueError) as info:
        COUNTED[option](-1)
    assert str(info.value).startswith(f"{option}: expected an integer ")
    assert str(info.value).endswith("got -1"), str(info.value)  # not "-1.000000"


def test_bool_is_not_a_dimension():
    with pytest.raises(ValueError, match=r"state_dim: expected an integer >= 1, got True"):
        LinearGaussianSSM(True, 2)


@pytest.mark.parametrize("option", ["tolerance", "gradient_tolerance", "function_tolerance"])
@pytest.mark.parametrize("value", [-1, -1e-300, np.nan, np.inf, "0.1", None, True])
def test_tolerances(option, value):
    model = LinearGaussianSSM(N, P)
    params, props = model.initialize(0)
    fit = model.fit_em if option == "tolerance" else model.fit_lbfgs
    with pytest.raises(ValueError, match=re.escape(option) + r": expected a finite number >= 0, got "):
        fit(params, props, FIT_Y, verbose=False, **{option: value})


@pytest.mark.parametrize("option", ["verbose", "return_summary", "shuffle"])
@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_flags_must_be_bools(option, value):
    model = LinearGaussianSSM(N, P)
    params, props = model.initialize(0)
    kwargs = {"num_epochs": 1, "verbose": False, option: value}
    with pytest.raises(ValueError, match=re.escape(option) + r": expected True or False, got "):
        model.fit_sgd(params, props, FIT_Y, **kwargs)


@pytest.mark.parametrize("option", ["has_dynamics_bias", "has_emissions_bias"])
def test_model_flags_must_be_bools(option):
    with pytest.raises(ValueError, match=re.escape(option) + r": expected True or False, got 'no'"):
        LinearGaussianSSM(N, P, **{option: "no"})


def test_trainable_must_be_a_bool():
    model = LinearGaussianSSM(N, P)
    params, props = model.initialize(0)
    props.dynamics.weights.trainable = "no"  # a truthy string: it used to count as trainable
    with pytest.raises(ValueError, match=r"props\.dynamics\.weights\.trainable: expected True or False, got 'no'"):
        model.fit_em(params, props, FIT_Y, num_iters=1, verbose=False)
    props.dynamics.weights.trainable = np.bool_(False)  # NumPy bools are bools
    fitted, _ = model.fit_em(params, props, FIT_Y, num_iters=1, verbose=False)
    assert np.array_equal(fitted.dynamics.weights, params.dynamics.weights)


@pytest.mark.parametrize("key", [-1, -(2**40)])
def test_negative_key(key):
    model = LinearGaussianSSM(N, P)
    params, _ = model.initialize(0)
    with pytest.raises(ValueError, match=r"key: expected an int seed >= 0, .*got -\d+"):
        model.sample(params, key, 3)


# --------------------------------------------------------------------------
# Sizes beyond memory are refused before anything is allocated.


@pytest.mark.parametrize("state_dim", [10**5, 10**30])
def test_huge_state_dim(state_dim, monkeypatch):
    from lgssm import _checks

    monkeypatch.setattr(_checks, "memory_limit", lambda: 16 * 2**30)  # the same cap on every machine
    with pytest.raises(
        ValueError,
        match=rf"state_dim: {state_dim} would need .* more than this machine's memory "
        rf"\(16 GiB\)",
    ):
        LinearGaussianSSM(state_dim, 2)


def test_memory_limit_is_the_physical_memory():
    from lgssm import _checks

    limit = _checks.memory_limit()
    assert limit == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_core_prints_integer_options_as_integers():
    """The C++ core's own check (reached without the Python layer) prints counts as integers."""
    from lgssm import _core
    from lgssm.params import props_to_core

    model = LinearGaussianSSM(1, 1)
    params, props = model.initialize(0)
    options = _core.EmOptions()
    options.num_iters = -1
    with pytest.raises(ValueError, match=r"^num_iters: expected an integer >= 0, got -1$"):
        _core.fit_em(
            model.core_params(params),
            props_to_core(props),
            [np.ones((4, 1))],
            [np.zeros((4, 0))],
            options,
            lambda i, v: True,
        )


@pytest.mark.parametrize(
    "cls, field, value, message",
    [
        ("EmOptions", "num_iters", -1, r"^num_iters: expected an integer >= 0, got -1$"),
        ("EmOptions", "tolerance", float("nan"), r"^tolerance: expected a finite value >= 0, got nan$"),
        ("AdamOptions", "b1", 1.0, r"^b1: expected a value in \[0, 1\), got 1$"),
        ("SgdOptions", "batch_size", 0, r"^batch_size: expected an integer >= 1, got 0$"),
        ("LbfgsOptions", "memory", 0, r"^memory: expected an integer >= 1, got 0$"),
        ("ContinuousEmOptions", "m_step_iters", 0, r"^m_step_iters: expected an integer >= 1, got 0$"),
        ("EmLoopOptions", "num_iters", -2, r"^num_iters: expected an integer >= 0, got -2$"),
    ],
)
def test_core_options_validate_names_the_field(cls, field, value, message):
    """Each options struct of the core has its defaults (valid) and a validate() naming the bad field."""
    from lgssm import _core

    options = getattr(_core, cls)()
    options.validate()
    setattr(options, field, value)
    with pytest.raises(ValueError, match=message):
        options.validate()


def test_huge_num_timesteps():
    model = LinearGaussianSSM(N, P)
    params, _ = model.initialize(0)
    with pytest.raises(ValueError, match=r"num_timesteps: 1000000000000 would need .*TiB"):
        model.sample(params, 0, 10**12)
    with pytest.raises(ValueError, match=r"num_forecast_timesteps: 1000000000000 would need"):
        model.forecast(params, FIT_Y, 10**12)


def test_memory_cap_counts_the_results(monkeypatch):
    """The cap is on what the call allocates: with a limit between the filter's and the
    smoother's needs (2 and 4 (state_dim, state_dim) covariances per step), the
    filter runs and the smoother is refused."""
    from lgssm import _checks

    model = LinearGaussianSSM(N, P)
    params, _ = model.initialize(0)
    steps = len(FIT_Y)
    monkeypatch.setattr(_checks, "memory_limit", lambda: 8 * steps * 3 * N * N)
    model.filter(params, FIT_Y)
    with pytest.raises(ValueError, match=rf"emissions: {steps} time steps would need .* fewer time steps"):
        model.smoother(params, FIT_Y)


# --------------------------------------------------------------------------
# initialize() names the keyword whose value is bad.

BAD_VALUES = {
    "string": ("abc", r"strings \('abc'\)"),
    "ragged": ([[1.0, 2.0], [3.0]], r"ragged"),
    "object": ([object(), 1.0], r"object"),
    "none inside": ([None, 1.0], r"None"),
    "complex": (np.eye(2) * (1 + 1j), r"complex"),
    "wrong shape": (np.ones((4, 4, 4, 4)), r"shape"),
}


@pytest.mark.parametrize("keyword", list(KEYS.values()))
@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_initialize_names_the_keyword(keyword, kind):
    value, what = BAD_VALUES[kind]
    with pytest.raises(ValueError, match=rf"^{keyword}\b.*expected .*{what}"):
        MODEL.initialize(0, **{keyword: value})


def test_initialize_complex_with_zero_imaginary_part_is_still_an_error():
    with pytest.raises(ValueError, match=r"dynamics_weights: expected real numbers, got complex"):
        MODEL.initialize(0, dynamics_weights=np.eye(N) + 0j)


@pytest.mark.parametrize("argument", ["params", "props"])
@pytest.mark.parametrize("value", [None, {}, 3])
def test_params_or_props_not_dataclasses(argument, value):
    model = LinearGaussianSSM(N, P)
    params, props = model.initialize(0)
    args = {"params": params, "props": props, argument: value}
    with pytest.raises(ValueError, match=rf"^{argument}: expected the dataclass .* got {type(value).__name__}"):
        model.fit_em(args["params"], args["props"], FIT_Y, num_iters=1, verbose=False)
    if argument == "params":
        with pytest.raises(ValueError, match=r"^params: expected the dataclass"):
            model.filter(value, FIT_Y)


def test_none_parameter_field():
    d = valid_params()
    params = build(d)
    params.dynamics.bias = None
    with pytest.raises(ValueError, match=r"dynamics\.bias: expected an array of real numbers, got None"):
        MODEL.filter(params, *data())


# --------------------------------------------------------------------------
# Emissions: complex, empty, 1-D and pandas input.


def test_complex_emissions_are_an_error():
    emissions, inputs = data()
    with pytest.raises(ValueError, match=r"emissions: expected real numbers, got complex"):
        MODEL.filter(build(valid_params()), emissions + 1j, inputs)


@pytest.mark.parametrize(
    "emissions,got", [(np.zeros((0, T, P)), r"shape \(0, 5, 3\)"), ([], "an empty list"), ((), "an empty tuple")]
)
def test_empty_batch(emissions, got):
    with pytest.raises(ValueError, match=rf"emissions: expected at least one sequence, got {got}"):
        MODEL.filter(build(valid_params()), emissions)


def test_string_emissions():
    with pytest.raises(ValueError, match=r"emissions: expected real numbers, got strings"):
        MODEL.filter(build(valid_params()), [["1", "2", "3"]])


def test_one_dimensional_emissions_when_emission_dim_is_one():
    model = LinearGaussianSSM(1, 1)
    params, _ = model.initialize(0)
    y = np.random.default_rng(2).normal(size=8)
    y[3] = np.nan
    expected = model.smoother(params, y[:, None])
    got = model.smoother(params, y)
    assert got.marginal_loglik == expected.marginal_loglik
    assert np.array_equal(got.smoothed_means, expected.smoothed_means)
    with pytest.raises(
        ValueError,
        match=r"emissions: .*got shape \(5,\) \(a 1-D array is one sequence only when "
        r"emission_dim is 1\)",
    ):
        MODEL.filter(build(valid_params()), np.ones(5))


def test_pandas_series_and_na():
    pd = pytest.importorskip("pandas")
    model = LinearGaussianSSM(1, 1)
    params, _ = model.initialize(0)
    y = np.array([0.5, np.nan, -1.0, 2.0])
    expected = model.marginal_log_prob(params, y[:, None])
    for series in (
        pd.Series(y),
        pd.Series([0.5, pd.NA, -1.0, 2.0], dtype="Float64"),
        pd.Series([0.5, None, -1.0, 2.0]),
        pd.Series([0.5, pd.NA, -1.0, 2.0], dtype=object),
    ):
        assert model.marginal_log_prob(params, series) == expected
    frame = pd.DataFrame({"a": [1.0, pd.NA, 3.0], "b": [pd.NA, 2.0, 1.0], "c": [0.0, 1.0, pd.NA]}, dtype="Float64")
    as_nan = frame.astype(float).to_numpy()
    assert MODEL.marginal_log_prob(build(valid_params()), frame, np.ones((3, M))) == MODEL.marginal_log_prob(
        build(valid_params()), as_nan, np.ones((3, M))
    )
    assert model.marginal_log_prob(params, [[0.5], [pd.NA], [-1.0], [2.0]]) == expected  # pd.NA in a list


def test_fitting_all_missing_data_is_an_error():
    model = LinearGaussianSSM(N, P)
    params, props = model.initialize(0)
    y = np.full((5, P), np.nan)
    with pytest.raises(ValueError, match=r"emissions: expected at least one observed value, got only missing"):
        model.fit_em(params, props, y, num_iters=1, verbose=False)
    with pytest.raises(ValueError, match=r"emissions: expected at least one observed value"):
        model.fit_lbfgs(params, props, [y, y[:2]], max_iters=1, verbose=False)


def test_sgd_warns_on_unscaled_data():
    model = LinearGaussianSSM(1, 1)
    params, props = model.initialize(0)
    y = np.random.default_rng(3).normal(size=(30, 1))
    with pytest.warns(RuntimeWarning, match=r"emissions: component 0 has mean 1e\+03 .*standardize the data .*EM"):
        model.fit_sgd(params, props, 1000 + y, num_epochs=1, verbose=False)
    with pytest.warns(RuntimeWarning, match=r"standard deviation 0\.001"):
        model.fit_sgd(params, props, 1e-3 * y, num_epochs=1, verbose=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit_sgd(params, props, y, num_epochs=1, verbose=False)  # unit scale: no warning


@pytest.mark.parametrize("value,got", [("ab", "strings"), (np.ones((2, M)) * 1j, "complex values")])
def test_forecast_inputs_are_named(value, got):
    emissions, inputs = data()
    with pytest.raises(ValueError, match=rf"forecast_inputs: expected real numbers, got {got}"):
        MODEL.forecast(build(valid_params()), emissions, 2, inputs=inputs, forecast_inputs=value)
