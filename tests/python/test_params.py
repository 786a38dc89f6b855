"""LinearGaussianSSM.initialize: dynamax's defaults, overrides, keys and parameter properties."""

import re

import numpy as np
import pytest

from lgssm import LinearGaussianSSM

from conftest import assert_close


def test_initialize_defaults_match_dynamax():
    n, p, m = 3, 4, 2
    model = LinearGaussianSSM(n, p, input_dim=m)
    params, _ = model.initialize(key=0)
    assert_close(params.initial.mean, np.zeros(n), "initial.mean", 0, 0)
    assert_close(params.initial.cov, np.eye(n), "initial.cov", 0, 0)
    assert_close(params.dynamics.weights, 0.99 * np.eye(n), "dynamics.weights", 0, 0)
    assert_close(params.dynamics.bias, np.zeros(n), "dynamics.bias", 0, 0)
    assert_close(params.dynamics.input_weights, np.zeros((n, m)), "dynamics.input_weights", 0, 0)
    assert_close(params.dynamics.cov, 0.1 * np.eye(n), "dynamics.cov", 0, 0)
    assert_close(params.emissions.bias, np.zeros(p), "emissions.bias", 0, 0)
    assert_close(params.emissions.input_weights, np.zeros((p, m)), "emissions.input_weights", 0, 0)
    assert_close(params.emissions.cov, 0.1 * np.eye(p), "emissions.cov", 0, 0)
    H = params.emissions.weights
    assert isinstance(H, np.ndarray) and H.dtype == np.float64 and H.shape == (p, n)
    assert np.all(np.isfinite(H)) and np.all(H != 0)


def test_initialize_emission_weights_are_standard_normal_draws():
    model = LinearGaussianSSM(20, 50)
    H = model.initialize(key=3)[0].emissions.weights
    N = H.size
    assert abs(H.mean()) < 4.5 / np.sqrt(N), H.mean()
    assert abs(H.var() - 1.0) < 4.5 * np.sqrt(2.0 / N), H.var()


def test_initialize_key_determinism_and_kinds():
    model = LinearGaussianSSM(2, 5)
    a = model.initialize(key=7)[0].emissions.weights
    b = model.initialize(key=7)[0].emissions.weights
    c = model.initialize(key=8)[0].emissions.weights
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    d = model.initialize(np.random.default_rng(1))[0].emissions.weights
    e = model.initialize(np.random.default_rng(1))[0].emissions.weights
    assert d.shape == (5, 2) and np.array_equal(d, e)
    f = model.initialize()[0].emissions.weights  # default key
    assert np.array_equal(f, model.initialize(key=0)[0].emissions.weights)


def test_initialize_jax_key():
    jr = pytest.importorskip("jax.random")
    model = LinearGaussianSSM(2, 5)
    a = model.initialize(jr.PRNGKey(0))[0].emissions.weights
    b = model.initialize(jr.PRNGKey(0))[0].emissions.weights
    assert isinstance(a, np.ndarray) and a.shape == (5, 2) and np.array_equal(a, b)


def test_initialize_time_varying_overrides_keep_time_axis():
    n, p, T = 2, 3, 6
    rng = np.random.default_rng(0)
    F = 0.5 * rng.normal(size=(T - 1, n, n))
    R = np.stack([np.eye(p) * (1 + t) for t in range(T)])
    params, _ = LinearGaussianSSM(n, p).initialize(key=0, dynamics_weights=F, emission_covariance=R)
    assert_close(params.dynamics.weights, F, "dynamics.weights", 0, 0)
    assert_close(params.emissions.cov, R, "emissions.cov", 0, 0)


def test_parameter_properties_trainable():
    model = LinearGaussianSSM(2, 3)
    _, props = model.initialize(key=0)
    for group, names in [
        ("initial", ["mean", "cov"]),
        ("dynamics", ["weights", "bias", "input_weights", "cov"]),
        ("emissions", ["weights", "bias", "input_weights", "cov"]),
    ]:
        for name in names:
            assert getattr(getattr(props, group), name).trainable is True, f"{group}.{name}"
    props.dynamics.weights.trainable = False
    props.dynamics.cov.trainable = False
    assert props.dynamics.weights.trainable is False
    assert props.dynamics.cov.trainable is False
    assert props.emissions.weights.trainable is True


@pytest.mark.parametrize("structure", [["full"], None, "Full", 3])
def test_covariance_structure_must_be_a_known_name(structure):
    model = LinearGaussianSSM(2, 3)
    params, props = model.initialize(key=0)
    props.emissions.cov.structure = structure
    with pytest.raises(
        ValueError,
        match=r"props\.emissions\.cov\.structure: expected one of \['diagonal', 'full', "
        r"'scalar'\], got " + re.escape(repr(structure)),
    ):
        model.fit_em(params, props, np.ones((4, 3)), num_iters=1, verbose=False)


@pytest.mark.parametrize("value", [None, True, "trainable"])
def test_parameter_properties_must_be_parameter_properties(value):
    model = LinearGaussianSSM(2, 3)
    params, props = model.initialize(key=0)
    props.dynamics.cov = value
    with pytest.raises(
        ValueError,
        match=rf"props\.dynamics\.cov: expected a ParameterProperties, got "
        rf"{type(value).__name__}",
    ):
        model.fit_em(params, props, np.ones((4, 3)), num_iters=1, verbose=False)


def test_interop_round_trips_through_dynamax():
    """lgssm.interop: to_dynamax and from_dynamax carry every number exactly (float64)."""
    pytest.importorskip("dynamax", reason="dynamax (extra `peers`) cannot be imported")
    import jax

    jax.config.update("jax_enable_x64", True)
    from lgssm.interop import from_dynamax, to_dynamax

    model = LinearGaussianSSM(3, 2, input_dim=1)
    params, _ = model.initialize(5)
    dx = to_dynamax(params)
    assert dx.emissions.input_weights.shape == (2, 1) and str(dx.dynamics.cov.dtype) == "float64"
    back = from_dynamax(dx)
    for group in ("initial", "dynamics", "emissions"):
        for name, value in vars(getattr(params, group)).items():
            assert np.array_equal(getattr(getattr(back, group), name), value), (group, name)


@pytest.mark.parametrize("structure", ["full", "diagonal", "scalar"])
def test_project_covariance_is_the_nearest_matrix_of_the_structure(structure):
    """Against the closed forms of the Frobenius-nearest symmetric, diagonal and c * I matrix;
    a stack is projected entry by entry."""
    from lgssm.params import project_covariance

    rng = np.random.default_rng(5)
    covs = rng.standard_normal((3, 4, 4))
    for c in covs:
        want = {
            "full": (c + c.T) / 2,
            "diagonal": np.diag(np.diag(c)),
            "scalar": np.trace(c) / 4 * np.eye(4),
        }[structure]
        assert_close(project_covariance(c, structure), want, f"{structure} projection", rtol=1e-15)
    stacked = project_covariance(covs, structure)
    assert stacked.shape == covs.shape
    for c, p in zip(covs, stacked):
        assert_close(p, project_covariance(c, structure), "stack entry", rtol=0)
    with pytest.raises(ValueError, match="structure: expected one of"):
        project_covariance(covs[0], "banded")
    with pytest.raises(ValueError, match=r"cov: expected a square matrix, got shape \(4, 3\)"):
        project_covariance(covs[0][:, :3], structure)
