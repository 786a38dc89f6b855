"""Models and data shared by the peer parity tests (test_parity_*.py).

Each case is an lgssm model, its parameters, fixed-seed data and the starting
point of the EM comparisons; the peers receive the same numbers converted to
their own conventions by the test files. Sizes are small so that the tests
stay fast (JAX compiles once per shape).
"""

from dataclasses import dataclass

import numpy as np

from lgssm import LinearGaussianSSM, ParamsLGSSM, _notebook

from conftest import make_params

NUM_FORECAST = 5  # forecast horizon K
EM_ITERS = 8  # EM iterations compared


@dataclass
class Case:
    model: LinearGaussianSSM
    params: ParamsLGSSM  # the parameters inference is compared at
    emissions: np.ndarray  # (num_timesteps, emission_dim) or (num_sequences, num_timesteps, emission_dim)
    inputs: np.ndarray = None  # like emissions with input_dim columns, or None
    forecast_inputs: np.ndarray = None  # (NUM_FORECAST, input_dim) or None
    em_start: ParamsLGSSM = None  # where the EM comparisons start


def notebook_case() -> Case:
    """dynamax's LG-SSM notebook: a slowly rotating 2-d state seen through 10 noisy
    emissions, T = 100; EM starts from initialize(42) as in the notebook."""
    model, params, _, emissions = _notebook.sample()
    return Case(model, params, emissions, em_start=_notebook.start(model)[0])


def inputs_case(num_sequences: int = 0) -> Case:
    """State 3, emission 4, input 2, with biases and input weights in both the
    dynamics and the emissions, T = 40; ``num_sequences`` > 0 gives a batch
    (num_sequences, 40, 4) of independent draws."""
    rng = np.random.default_rng(2026)
    model = LinearGaussianSSM(3, 4, input_dim=2)
    params, _ = model.initialize(0, **make_params(rng, 3, 4, 2))
    shape = (num_sequences, 40, 2) if num_sequences else (40, 2)
    inputs = rng.normal(size=shape)
    if num_sequences:
        emissions = np.stack([model.sample(params, 10 + b, 40, inputs[b])[1] for b in range(num_sequences)])
    else:
        emissions = model.sample(params, 10, 40, inputs)[1]
    return Case(model, params, emissions, inputs, rng.normal(size=(NUM_FORECAST, 2)), em_start=model.initialize(7)[0])


def with_missing(emissions: np.ndarray, whole_rows=(0, 9, 23), fraction: float = 0.15, seed: int = 5):
    """A copy of (num_timesteps, emission_dim) ``emissions`` with NaN in the rows
    ``whole_rows`` and in a random ``fraction`` of the other entries (never a
    whole row)."""
    rng = np.random.default_rng(seed)
    out = emissions.copy()
    mask = rng.random(out.shape) < fraction
    mask[:, 0] = False  # keep one component of each row, so only whole_rows are wholly missing
    mask[list(whole_rows)] = True
    out[mask] = np.nan
    return out


def as_kwargs(params: ParamsLGSSM) -> dict:
    """``params`` as LinearGaussianSSM.initialize keyword arguments (the dense reference's form)."""
    p = params
    return dict(
        initial_mean=p.initial.mean,
        initial_covariance=p.initial.cov,
        dynamics_weights=p.dynamics.weights,
        dynamics_bias=p.dynamics.bias,
        dynamics_input_weights=p.dynamics.input_weights,
        dynamics_covariance=p.dynamics.cov,
        emission_weights=p.emissions.weights,
        emission_bias=p.emissions.bias,
        emission_input_weights=p.emissions.input_weights,
        emission_covariance=p.emissions.cov,
    )


def replaced(model: LinearGaussianSSM, params: ParamsLGSSM, **override) -> ParamsLGSSM:
    """``params`` with some parameters replaced (initialize keyword arguments)."""
    return model.initialize(0, **{**as_kwargs(params), **override})[0]


def input_offsets(params: ParamsLGSSM, inputs: np.ndarray):
    """The inputs folded into per-step biases, for peers without inputs:
    (transition offsets (num_timesteps - 1, state_dim): entry t-1 = B u_t + b drives
    z_{t-1} -> z_t; emission offsets (num_timesteps, emission_dim): entry t = D u_t + d)."""
    d, e = params.dynamics, params.emissions
    return inputs[1:] @ d.input_weights.T + d.bias, inputs @ e.input_weights.T + e.bias
