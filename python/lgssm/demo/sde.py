"""Part 2 of the demo: the seed document "Expectation maximization for SDE based SSMs", with equally
spaced times (EM) and with irregular times (L-BFGS)."""

from __future__ import annotations

import numpy as np

from .. import ContinuousTimeSSM
from ..plot import plot_states
from ._figures import curve_figure
from ._session import Session
from .report import format_number
from .settings import (
    IRREGULAR_SEED,
    SDE_DIFFUSION_COV,
    SDE_DRIFT,
    SDE_INIT_KEY,
    SDE_PARAMS_SEED,
    SDE_SAMPLE_SEED,
    Settings,
)


def _rel_error(estimate, truth) -> float:
    return float(np.linalg.norm(np.asarray(estimate) - truth) / np.linalg.norm(truth))


def _zoom(lls, true_value, margin_fraction=0.05):
    """y-limits from the second value of a learning curve to above its end and the truth."""
    lls = np.asarray(lls)
    low = lls[1] if len(lls) > 1 else lls[0]
    high = max(float(lls[-1]), float(true_value))
    margin = margin_fraction * max(high - low, 1.0)
    return low - margin, high + margin


def _fit_and_report(
    run: Session, name: str, model, method: str, params, props, emissions, when: dict, options: dict, truth
):
    """Runs ``model``'s fit ``method`` ("fit_em" or "fit_lbfgs"), timed as ``name``, from ``params`` on
    ``emissions`` at the observation times ``when`` (``dt=...`` or ``times=...``); says how far
    its drift and diffusion covariance are from the truth and saves its learning curve.
    ``truth`` is (true log likelihood, curve label, figure name, whether to report the
    termination). Returns (fitted, the curve, the results for results.json)."""
    true_ll, curve, figure, with_termination = truth

    def loglik(ps) -> float:
        return float(np.sum(model.marginal_log_prob(ps, emissions, **when)))

    initial_ll = loglik(params)
    fitted, lls, summary = run.timed(
        name, getattr(model, method), params, props, emissions, **when, **options, return_summary=True
    )
    final_ll = loglik(fitted)
    F, Qc = np.asarray(fitted.dynamics.drift), np.asarray(fitted.dynamics.diffusion_cov)
    run.say(
        f"  F relative error {format_number(_rel_error(F, SDE_DRIFT))}, "
        f"Q_c relative error {format_number(_rel_error(Qc, SDE_DIFFUSION_COV))}"
        + (f" ({summary.termination})" if with_termination else "")
    )
    run.save(curve_figure({curve: lls}, true_ll, "iteration", ylim=_zoom(lls, true_ll)), figure)
    result = {
        "loglik_true": true_ll,
        "loglik_initial": initial_ll,
        "loglik_final": final_ll,
        "iterations": summary.iterations,
        **({"termination": summary.termination} if with_termination else {}),
        "drift": F.tolist(),
        "diffusion_cov": Qc.tolist(),
        "drift_rel_error": _rel_error(F, SDE_DRIFT),
        "diffusion_cov_rel_error": _rel_error(Qc, SDE_DIFFUSION_COV),
    }
    return fitted, lls, result


def _per_step_emissions(T: int, p: int, n: int):
    """The demo's per-step emission parameters H_k, u_k, R_k for k < T (fixed seed)."""
    rng = np.random.default_rng(SDE_PARAMS_SEED)
    H0, H1 = rng.normal(size=(p, n)), rng.normal(size=(p, n))
    phase = 2 * np.pi * np.arange(T) / T
    H = H0[None] + 0.3 * np.sin(phase)[:, None, None] * H1[None]
    u = 0.5 * np.sin(phase[:, None] + np.arange(p)[None, :])
    R = np.stack([np.diag(0.1 + 0.05 * np.sin(ph + np.arange(p))) + 0.01 for ph in phase])
    return H0, H, u, R


def run_sde(run: Session, s: Settings, verbose: bool) -> dict:
    n, p, N, T, dt = 2, 3, s.sde_num_sequences, s.sde_num_timesteps, s.sde_dt
    run.say(
        f"Part 2 (SDE EM): damped oscillator, {N} sequences x {T} steps at dt={dt:g}, 3-d emissions "
        f"with per-step H_k (known), u_k and R_k"
    )
    H0, H, u, R = _per_step_emissions(T, p, n)
    model = ContinuousTimeSSM(n, p)
    true_params, _ = model.initialize(
        0,
        drift=SDE_DRIFT,
        diffusion_covariance=SDE_DIFFUSION_COV,
        emission_weights=H,
        emission_bias=u,
        emission_input_weights=np.zeros((T, p, 0)),
        emission_covariance=R,
    )
    rng = np.random.default_rng(SDE_SAMPLE_SEED)
    draws = [model.sample(true_params, rng, num_timesteps=T, dt=dt) for _ in range(N)]
    states = np.stack([d[0] for d in draws])
    emissions = np.stack([d[1] for d in draws])
    true_ll = float(np.sum(model.marginal_log_prob(true_params, emissions, dt=dt)))

    params, props = model.initialize(
        SDE_INIT_KEY,
        emission_weights=H,
        emission_bias=np.zeros((T, p)),
        emission_input_weights=np.zeros((T, p, 0)),
        emission_covariance=np.tile(0.1 * np.eye(p), (T, 1, 1)),
    )
    props.emissions.weights.trainable = False
    run.say(f"Part 2: EM, {s.sde_em_iters} iterations")
    fitted, lls, em = _fit_and_report(
        run,
        "sde em",
        model,
        "fit_em",
        params,
        props,
        emissions,
        {"dt": dt},
        {"num_iters": s.sde_em_iters, "verbose": verbose},
        (true_ll, "EM", "sde_em_learning_curve.png", False),
    )
    post = model.smoother(fitted, emissions[0], dt=dt)
    fig = plot_states(states[0], post.smoothed_means, post.smoothed_covariances)
    ax = fig.axes[0]
    ax.set_xlabel(f"time step (dt = {dt:g})")
    ax.set_title("sequence 0: true latent path and smoothed means under the EM fit")
    ax.grid(True)
    run.save(fig, "sde_states.png")
    em["emission_bias_rmse"] = float(np.sqrt(np.mean((np.asarray(fitted.emissions.bias) - u) ** 2)))
    em["emission_cov_rmse"] = float(np.sqrt(np.mean((np.asarray(fitted.emissions.cov) - R) ** 2)))

    # Irregular observation times: constant emission parameters, L-BFGS.
    N2, T2 = s.irregular_num_sequences, s.irregular_num_timesteps
    run.say(
        f"Part 2 (irregular times): {N2} sequences x {T2} steps, exponential gaps with mean "
        f"{s.irregular_mean_gap:g}, L-BFGS up to {s.irregular_max_iters} iterations"
    )
    u0, R0 = u.mean(axis=0), R.mean(axis=0)
    true2, _ = model.initialize(
        0,
        drift=SDE_DRIFT,
        diffusion_covariance=SDE_DIFFUSION_COV,
        emission_weights=H0,
        emission_bias=u0,
        emission_covariance=R0,
    )
    rng = np.random.default_rng(IRREGULAR_SEED)
    gaps = rng.exponential(s.irregular_mean_gap, size=(N2, T2 - 1))
    times = np.concatenate([np.zeros((N2, 1)), np.cumsum(gaps, axis=1)], axis=1)
    emissions2 = np.stack([model.sample(true2, rng, times=t)[1] for t in times])
    true_ll2 = float(np.sum(model.marginal_log_prob(true2, emissions2, times=times)))
    params2, props2 = model.initialize(SDE_INIT_KEY, emission_weights=H0)
    props2.emissions.weights.trainable = False
    _, lls2, irregular = _fit_and_report(
        run,
        "irregular lbfgs",
        model,
        "fit_lbfgs",
        params2,
        props2,
        emissions2,
        {"times": times},
        {"max_iters": s.irregular_max_iters, "verbose": verbose},
        (true_ll2, "L-BFGS", "irregular_lbfgs_learning_curve.png", True),
    )
    return {
        "true_drift": SDE_DRIFT.tolist(),
        "true_diffusion_cov": SDE_DIFFUSION_COV.tolist(),
        "em": em,
        "irregular": irregular,
        "curves": {"sde_em": np.asarray(lls).tolist(), "irregular_lbfgs": np.asarray(lls2).tolist()},
    }
