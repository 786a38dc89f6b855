"""Simulate an LG-SSM (2-D latents, 10-D emissions, 100 steps), smooth it and
forecast 50 steps: the first part of dynamax's LG-SSM notebook, in lgssm."""
import numpy as np

from lgssm import LinearGaussianSSM
from lgssm.utils import random_rotation

state_dim, emission_dim, num_timesteps = 2, 10, 100
true_A = 0.99 * random_rotation(seed=0, n=state_dim, theta=np.pi / 10)
true_model = LinearGaussianSSM(state_dim, emission_dim)
true_params, _ = true_model.initialize(key=0, dynamics_weights=true_A,
                                       dynamics_covariance=0.01 * np.eye(state_dim))
true_states, emissions = true_model.sample(true_params, key=3, num_timesteps=num_timesteps)

posterior = true_model.smoother(true_params, emissions)
recon, recon_std = true_model.posterior_predictive(true_params, emissions)
_, _, forecast, forecast_cov = true_model.forecast(true_params, emissions, num_forecast_timesteps=50)

print(f"log p(y | true params)        = {posterior.marginal_loglik:.3f}")
print(f"smoothed state RMSE vs truth  = {np.sqrt(np.mean((posterior.smoothed_means - true_states) ** 2)):.4f}")
print(f"reconstruction RMSE           = {np.sqrt(np.mean((recon - emissions) ** 2)):.4f}")
print(f"mean posterior predictive std = {recon_std.mean():.4f}")
print(f"forecast std at steps 1, 50   = {np.sqrt(np.diagonal(forecast_cov[0])).mean():.4f}, "
      f"{np.sqrt(np.diagonal(forecast_cov[-1])).mean():.4f}")
