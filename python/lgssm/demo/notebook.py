"""Part 1 of the demo: dynamax's notebook "MAP parameter estimation for an LG-SSM using EM and SGD"."""

from __future__ import annotations

import numpy as np

from .. import LinearGaussianSSM
from ..optimizers import adam
from ..plot import plot_emissions_and_forecast
from ..utils import monotonically_increasing, random_rotation
from ._figures import curve_figure
from ._session import Session
from .settings import INIT_KEY, LEARNING_RATES, SAMPLE_KEY, SGD_KEY, TRUE_KEY, Settings


def run_notebook(run: Session, s: Settings, verbose: bool) -> dict:
    n, p, T = s.state_dim, s.emission_dim, s.num_timesteps
    run.say(f"Part 1 (dynamax notebook): true model, state_dim {n}, emission_dim {p}, {T} steps")
    true_A = 0.99 * random_rotation(seed=TRUE_KEY, n=n, theta=np.pi / 10)
    true_Sigma = 0.01 * np.eye(n)
    true_model = LinearGaussianSSM(n, p)
    true_params, _ = true_model.initialize(key=TRUE_KEY, dynamics_weights=true_A, dynamics_covariance=true_Sigma)
    true_states, emissions = true_model.sample(true_params, SAMPLE_KEY, T)
    true_ll = true_model.marginal_log_prob(true_params, emissions)

    def emissions_figure(params, title, name):
        fig = plot_emissions_and_forecast(
            true_model, params, emissions, num_forecast_timesteps=s.num_forecast_timesteps
        )
        fig.axes[0].grid(True)
        fig.suptitle(title, y=1.02)
        fig.tight_layout()
        run.save(fig, name)

    emissions_figure(true_params, "true model", "true_model.png")

    run.say("Part 1: randomly initialized model (initialize(42))")
    model = LinearGaussianSSM(n, p)
    params, props = model.initialize(INIT_KEY)
    initial_ll = model.marginal_log_prob(params, emissions)
    emissions_figure(params, "randomly initialized model", "random_model.png")

    run.say(f"Part 1: EM, {s.em_iters} iterations")
    em_params, em_lls = run.timed("em", model.fit_em, params, props, emissions, num_iters=s.em_iters, verbose=verbose)
    em_final = model.marginal_log_prob(em_params, emissions)
    fig = curve_figure(
        {"estimated": em_lls}, true_ll, "iteration", ylim=(em_lls[1] - 25, em_lls[-1] + 25) if len(em_lls) > 1 else None
    )
    run.save(fig, "em_learning_curve.png")
    emissions_figure(em_params, "fitted model", "fitted_model.png")

    sgd_curves, sgd_final = {}, {}
    for lr in LEARNING_RATES:
        label = f"lr={lr:g}"
        run.say(f"Part 1: Adam, learning rate {lr:g}, {s.adam_epochs} epochs")
        sgd_params, sgd_props = model.initialize(INIT_KEY)
        fitted, losses = run.timed(
            f"adam {label}",
            model.fit_sgd,
            sgd_params,
            sgd_props,
            emissions,
            num_epochs=s.adam_epochs,
            optimizer=adam(learning_rate=lr),
            key=SGD_KEY,
            verbose=verbose,
        )
        sgd_curves[label] = -np.asarray(losses) * emissions.size
        sgd_final[label] = model.marginal_log_prob(fitted, emissions)
    fig = curve_figure(sgd_curves, true_ll, "epochs", ylim=(true_ll - 3000, true_ll + 100))
    run.save(fig, "sgd_learning_curves.png")

    run.say(f"Part 1: Adam with the dynamics frozen at the truth, learning rate 0.01, {s.adam_epochs} epochs")
    frozen_params, frozen_props = model.initialize(INIT_KEY, dynamics_weights=true_A, dynamics_covariance=true_Sigma)
    frozen_props.dynamics.weights.trainable = False
    frozen_props.dynamics.cov.trainable = False
    before = np.array(frozen_params.dynamics.weights, copy=True)
    frozen_fit, losses = run.timed(
        "adam frozen dynamics",
        model.fit_sgd,
        frozen_params,
        frozen_props,
        emissions,
        num_epochs=s.adam_epochs,
        optimizer=adam(learning_rate=1e-2),
        key=SGD_KEY,
        verbose=verbose,
    )
    frozen_curve = -np.asarray(losses) * emissions.size
    unchanged = bool(
        np.array_equal(frozen_fit.dynamics.weights, before) and np.array_equal(frozen_fit.dynamics.cov, true_Sigma)
    )
    run.say(f"  dynamics weights after fitting {'unchanged' if unchanged else 'CHANGED'}")
    fig = curve_figure({"estimated": frozen_curve}, true_ll, "epochs", ylim=(true_ll - 3000, true_ll + 100))
    run.save(fig, "frozen_sgd_learning_curve.png")

    return {
        "loglik": {
            "true": true_ll,
            "initial": initial_ll,
            "em_final": em_final,
            **{f"adam_{k}_final": v for k, v in sgd_final.items()},
            "frozen_adam_final": model.marginal_log_prob(frozen_fit, emissions),
        },
        "true_dynamics_weights": true_A.tolist(),
        "frozen_dynamics_weights_after": np.asarray(frozen_fit.dynamics.weights).tolist(),
        "checks": {
            "em_monotone": monotonically_increasing(em_lls, atol=1e-8, rtol=1e-10),
            "em_final_above_true": bool(em_final > true_ll),
            "frozen_dynamics_unchanged": unchanged,
        },
        "curves": {
            "em": np.asarray(em_lls).tolist(),
            **{f"adam_{k}": v.tolist() for k, v in sgd_curves.items()},
            "adam_frozen": frozen_curve.tolist(),
        },
    }
