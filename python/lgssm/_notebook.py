"""dynamax's notebook "MAP parameter estimation for an LG-SSM using EM and SGD", defined once.

A slowly rotating 2-d latent state (dynamics 0.99 x a rotation by pi/10,
covariance 0.01 I) seen through 10 noisy emissions for 100 steps; the fits start
from ``initialize(42)``. Used by the demo (Part 1), the tests (test_notebook.py,
test_learn.py, peer_models.py, test_demo.py) and the benchmark
(bench/problems.py, bench/run.py); docs/guide.md writes the same problem out
inline (with true key 0, as test_learn.py draws it).
"""

from __future__ import annotations

import numpy as np

from .models import LinearGaussianSSM
from .params import ParamsLGSSM
from .utils import random_rotation

STATE_DIM, EMISSION_DIM, NUM_TIMESTEPS = 2, 10, 100
NUM_FORECAST_TIMESTEPS = 50  # the forecast of the notebook's plots

# Seeds (the notebook's jr.PRNGKey(0) split, PRNGKey(42) and PRNGKey(1234) in spirit):
# the true parameters, the sample, the fits' start and Adam's shuffling.
TRUE_KEY, SAMPLE_KEY, INIT_KEY, SGD_KEY = 1, 3, 42, 1234

EM_ITERS, ADAM_EPOCHS = 100, 1000
LEARNING_RATES = (1e-2, 1e-1, 2.5e-1)  # Adam's, as in the notebook
FROZEN_LEARNING_RATE = 1e-2  # Adam's with the dynamics frozen at their true values


def true_dynamics(key=TRUE_KEY) -> tuple[np.ndarray, np.ndarray]:
    """The true dynamics: (weights, cov), each (state_dim, state_dim): 0.99 x a random
    rotation by pi/10 (``random_rotation(key, ...)``) and 0.01 I."""
    return 0.99 * random_rotation(key, STATE_DIM, theta=np.pi / 10), 0.01 * np.eye(STATE_DIM)


def true_model(key=TRUE_KEY) -> tuple[LinearGaussianSSM, ParamsLGSSM]:
    """The model and its true parameters: ``initialize(key)`` with the true dynamics."""
    model = LinearGaussianSSM(STATE_DIM, EMISSION_DIM)
    weights, cov = true_dynamics(key)
    params, _ = model.initialize(key, dynamics_weights=weights, dynamics_covariance=cov)
    return model, params


def sample(key=TRUE_KEY) -> tuple[LinearGaussianSSM, ParamsLGSSM, np.ndarray, np.ndarray]:
    """(model, true params, states (num_timesteps, state_dim), emissions
    (num_timesteps, emission_dim)): the notebook's data, drawn with SAMPLE_KEY."""
    model, params = true_model(key)
    states, emissions = model.sample(params, SAMPLE_KEY, NUM_TIMESTEPS)
    return model, params, states, emissions


def start(model: LinearGaussianSSM) -> tuple[ParamsLGSSM, ParamsLGSSM]:
    """(params, props) where the fits start: ``model.initialize(INIT_KEY)``."""
    return model.initialize(INIT_KEY)


def frozen_start(model: LinearGaussianSSM, key=TRUE_KEY) -> tuple[ParamsLGSSM, ParamsLGSSM]:
    """(params, props) of the fit with the dynamics frozen: ``initialize(INIT_KEY)``
    with the true dynamics weights and covariance, neither trainable."""
    weights, cov = true_dynamics(key)
    params, props = model.initialize(INIT_KEY, dynamics_weights=weights, dynamics_covariance=cov)
    props.dynamics.weights.trainable = False
    props.dynamics.cov.trainable = False
    return params, props
