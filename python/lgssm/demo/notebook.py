"""Part 1 of the demo: dynamax's notebook "MAP parameter estimation for an LG-SSM using EM and SGD"."""

from __future__ import annotations

import numpy as np

from .. import LinearGaussianSSM
from .. import _notebook as nb
from ..optimizers import adam
from ..plot import plot_emissions_and_forecast
from ..utils import monotonically_increasing
from ._figures import curve_figure
from ._session import Session
from .settings import Settings


def run_notebook(run: Session, s: Settings, verbose: bool) -> dict:
    run.say(
        f"Part 1 (dynamax notebook): true model, state_dim {nb.STATE_DIM}, emission_dim {nb.EMISSION_DIM}, "
        f"{nb.NUM_TIMESTEPS} steps"
    )
    true_model, true_params, _, emissions = nb.sample()
    true_A, true_Sigma = nb.true_dynamics()
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

    run.say(f"Part 1: randomly initialized model (initialize({nb.INIT_KEY}))")
    model = LinearGaussianSSM(nb.STATE_DIM, nb.EMISSION_DIM)
    params, props = nb.start(model)
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
    for lr in nb.LEARNING_RATES:
        label = f"lr={lr:g}"
        run.say(f"Part 1: Adam, learning rate {lr:g}, {s.adam_epochs} epochs")
        sgd_params, sgd_props = nb.start(model)
        fitted, losses = run.timed(
            f"adam {label}",
            model.fit_sgd,
            sgd_params,
            sgd_props,
            emissions,
            num_epochs=s.adam_epochs,
            optimizer=adam(learning_rate=lr),
            key=nb.SGD_KEY,
            verbose=verbose,
        )
        sgd_curves[label] = -np.asarray(losses) * emissions.size
        sgd_final[label] = model.marginal_log_prob(fitted, emissions)
    fig = curve_figure(sgd_curves, true_ll, "epochs", ylim=(true_ll - 3000, true_ll + 100))
    run.save(fig, "sgd_learning_curves.png")

    run.say(
        f"Part 1: Adam with the dynamics frozen at the truth, learning rate {nb.FROZEN_LEARNING_RATE:g}, "
        f"{s.adam_epochs} epochs"
    )
    frozen_params, frozen_props = nb.frozen_start(model)
    before = np.array(frozen_params.dynamics.weights, copy=True)
    frozen_fit, losses = run.timed(
        "adam frozen dynamics",
        model.fit_sgd,
        frozen_params,
        frozen_props,
        emissions,
        num_epochs=s.adam_epochs,
        optimizer=adam(learning_rate=nb.FROZEN_LEARNING_RATE),
        key=nb.SGD_KEY,
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
