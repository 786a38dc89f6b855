"""fit_sgd with optax optimizers: the C++ driver steps optax's update with lgssm's
exact gradients. optax's Adam follows the C++ Adam's trajectory; plain SGD and
gradient clipping take the steps their closed forms give; frozen parameters stay."""

import sys

import numpy as np
import pytest

from lgssm import _core
from lgssm import _notebook as nb
from lgssm.optimizers import adam
from lgssm.params import props_to_core

optax = pytest.importorskip("optax", exc_type=ImportError, reason="optax (extra `jax`) cannot be imported")


@pytest.fixture(scope="module")
def problem():
    _, _, _, emissions = nb.sample()
    model = nb.LinearGaussianSSM(nb.STATE_DIM, nb.EMISSION_DIM)
    params, props = nb.start(model)
    return model, params, props, emissions


def flat(params):
    return np.concatenate([np.ravel(getattr(getattr(params, g), f)) for g, f in FIELDS])


FIELDS = [
    ("initial", "mean"),
    ("initial", "cov"),
    ("dynamics", "weights"),
    ("dynamics", "bias"),
    ("dynamics", "cov"),
    ("emissions", "weights"),
    ("emissions", "bias"),
    ("emissions", "cov"),
]


def unconstrained_loss_and_gradient(model, params, props, emissions):
    """dynamax's loss -log p(y) / emissions.size and its gradient over the unconstrained vector."""
    core = model.core_params(params)
    stats = _core.sufficient_stats(core, [emissions], [np.zeros((len(emissions), 0))], False, 1)
    loss, grad = _core.minibatch_loss(core, props_to_core(props), stats, 1.0, float(emissions.size), None)
    return loss, grad, _core.to_unconstrained(core, props_to_core(props))


@pytest.mark.parametrize("lr", [1e-2, 1e-1])
def test_optax_adam_follows_the_cpp_adam(problem, lr):
    model, params, props, emissions = problem
    n = 200
    cpp, cpp_losses = model.fit_sgd(params, props, emissions, optimizer=adam(lr), num_epochs=n, verbose=False)
    jx, jx_losses = model.fit_sgd(params, props, emissions, optimizer=optax.adam(lr), num_epochs=n, verbose=False)
    np.testing.assert_allclose(jx_losses, cpp_losses, rtol=1e-10, atol=0)
    np.testing.assert_allclose(flat(jx), flat(cpp), rtol=1e-10, atol=1e-12)
    assert cpp_losses[-1] < cpp_losses[0]


def test_a_constant_schedule_and_adamw_without_decay_are_adam(problem):
    model, params, props, emissions = problem
    _, ref = model.fit_sgd(params, props, emissions, optimizer=adam(1e-2), num_epochs=50, verbose=False)
    for optimizer in (optax.adam(optax.constant_schedule(1e-2)), optax.adamw(1e-2, weight_decay=0.0)):
        _, losses = model.fit_sgd(params, props, emissions, optimizer=optimizer, num_epochs=50, verbose=False)
        np.testing.assert_allclose(losses, ref, rtol=1e-10, atol=0)


def test_sgd_and_clipping_take_their_closed_form_steps(problem):
    model, params, props, emissions = problem
    loss0, grad, x0 = unconstrained_loss_and_gradient(model, params, props, emissions)
    lr = 1e-3
    one, losses = model.fit_sgd(params, props, emissions, optimizer=optax.sgd(lr), num_epochs=1, verbose=False)
    _, _, x1 = unconstrained_loss_and_gradient(model, one, props, emissions)
    np.testing.assert_allclose(x1, x0 - lr * grad, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(losses, [loss0], rtol=1e-12)

    max_norm = 1e-2 * np.linalg.norm(grad)  # the gradient is clipped to this norm
    clipped = optax.chain(optax.clip_by_global_norm(max_norm), optax.sgd(1.0))
    one, _ = model.fit_sgd(params, props, emissions, optimizer=clipped, num_epochs=1, verbose=False)
    _, _, x1 = unconstrained_loss_and_gradient(model, one, props, emissions)
    np.testing.assert_allclose(x1, x0 - grad * (max_norm / np.linalg.norm(grad)), rtol=1e-12, atol=1e-14)


def test_frozen_parameters_get_no_update(problem):
    model, _, _, emissions = problem
    params, props = nb.frozen_start(model)
    fitted, losses = model.fit_sgd(params, props, emissions, optimizer=optax.adam(1e-2), num_epochs=20, verbose=False)
    np.testing.assert_array_equal(fitted.dynamics.weights, params.dynamics.weights)
    np.testing.assert_array_equal(fitted.dynamics.cov, params.dynamics.cov)
    assert not np.array_equal(fitted.emissions.weights, params.emissions.weights)
    assert losses[-1] < losses[0]


def test_the_loss_reaches_transformations_that_take_it(problem):
    """reduce_on_plateau reads the loss (optax's extra argument ``value``): with a
    patience it never exhausts it leaves Adam's steps as they are."""
    model, params, props, emissions = problem
    _, ref = model.fit_sgd(params, props, emissions, optimizer=adam(1e-2), num_epochs=30, verbose=False)
    plateau = optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(patience=10**6))
    _, losses = model.fit_sgd(params, props, emissions, optimizer=plateau, num_epochs=30, verbose=False)
    np.testing.assert_allclose(losses, ref, rtol=1e-10, atol=0)


def test_optax_under_32_bit_jax_still_steps_in_float64(problem):
    """The step runs with JAX's 64-bit mode on for its duration only."""
    import jax

    model, params, props, emissions = problem
    with jax.enable_x64(False):
        _, losses = model.fit_sgd(params, props, emissions, optimizer=optax.adam(1e-2), num_epochs=20, verbose=False)
        assert jax.numpy.asarray(1.0).dtype == np.float32
    _, ref = model.fit_sgd(params, props, emissions, optimizer=adam(1e-2), num_epochs=20, verbose=False)
    np.testing.assert_allclose(losses, ref, rtol=1e-10, atol=0)


def test_bad_optimizers_are_named(problem, monkeypatch):
    model, params, props, emissions = problem
    with pytest.raises(ValueError, match="optimizer: expected lgssm.optimizers.adam.*or an optax.*got str"):
        model.fit_sgd(params, props, emissions, optimizer="adam", num_epochs=1, verbose=False)
    with pytest.raises(
        ValueError, match="optimizer: expected an update of the 99 unconstrained parameters, got 1 values"
    ):
        _core.fit_sgd(
            model.core_params(params),
            props_to_core(props),
            [emissions],
            [np.zeros((len(emissions), 0))],
            _core.SgdOptions(),
            None,
            lambda grad, x, loss: x[:1],
        )
    monkeypatch.setitem(sys.modules, "optax", None)
    with pytest.raises(ImportError, match=r"pip install 'lgssm\[jax\]'"):
        model.fit_sgd(params, props, emissions, optimizer=optax.adam(1e-2), num_epochs=1, verbose=False)
