"""The fixed settings of the demo: seeds, sizes, the true SDE parameters and the figures' captions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._notebook import ADAM_EPOCHS, EM_ITERS, NUM_FORECAST_TIMESTEPS

# Part 1's seeds, sizes and learning rates are those of dynamax's notebook, lgssm._notebook.
SDE_PARAMS_SEED, SDE_SAMPLE_SEED, SDE_INIT_KEY = 2025, 11, 1
IRREGULAR_SEED = 12

# Part 2: the damped oscillator of the demo.
SDE_DRIFT = np.array([[0.0, 1.0], [-4.0, -0.4]])
SDE_DIFFUSION_COV = np.array([[0.05, 0.01], [0.01, 0.3]])

FIGURES = {
    "true_model.png": "Smoothed emissions and a 50-step forecast under the true model.",
    "random_model.png": "The same under the randomly initialized model (initialize(42)): much worse.",
    "em_learning_curve.png": "EM: marginal log likelihood entering each iteration (zoomed after the first, "
    "as in the notebook) and under the true parameters.",
    "fitted_model.png": "Smoothed emissions and forecast under the EM fit.",
    "sgd_learning_curves.png": "Adam at three learning rates: -losses * emissions.size per epoch.",
    "frozen_sgd_learning_curve.png": "Adam (learning rate 0.01) with the dynamics frozen at their true values.",
    "sde_em_learning_curve.png": "SDE model, equally spaced times: EM learning curve.",
    "sde_states.png": "SDE model: sequence 0's true latent path and its smoothed means (+-2 std) under the EM fit.",
    "irregular_lbfgs_learning_curve.png": "SDE model, irregular times: L-BFGS learning curve.",
}


@dataclass(frozen=True)
class Settings:
    """Sizes and iteration counts of one run (Part 1's problem itself: lgssm._notebook)."""

    num_forecast_timesteps: int = NUM_FORECAST_TIMESTEPS
    em_iters: int = EM_ITERS
    adam_epochs: int = ADAM_EPOCHS
    sde_num_sequences: int = 500
    sde_num_timesteps: int = 50
    sde_dt: float = 0.1
    sde_em_iters: int = 100
    irregular_num_sequences: int = 100
    irregular_num_timesteps: int = 50
    irregular_mean_gap: float = 0.1
    irregular_max_iters: int = 300


FULL = Settings()
SMALL = Settings(
    sde_num_sequences=100,
    sde_num_timesteps=30,
    sde_em_iters=30,
    irregular_num_sequences=20,
    irregular_num_timesteps=25,
    irregular_max_iters=50,
)
