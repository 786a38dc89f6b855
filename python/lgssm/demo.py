"""``lgssm demo``: the main job of lgssm, on built-in data with fixed seeds.

    lgssm demo [--out DIR] [--small] [--quiet]

Part 1 is dynamax's notebook "MAP parameter estimation for an LG-SSM using EM
and SGD" (2-d latent states, 10-d emissions, 100 steps): the true model, a
randomly initialized one, EM, Adam at three learning rates, and Adam with the
dynamics frozen at their true values.

Part 2 is the seed document "Expectation maximization for SDE based SSMs": a
damped oscillator dx = F x dt + L dW observed through 3-d emissions with
per-step H_k (known), u_k and R_k (learned), fitted by closed-form EM on many
equally spaced sequences; then, with irregular observation times, by L-BFGS.

DIR (default ./lgssm-demo) receives the figures (PNG), ``results.json`` (every
number of the report; ``curves`` holds the learning curves) and ``report.html``
(self-contained: figures embedded). Every file is written atomically. Numbers
in the report are formatted by ``format_number``, as are the checks of
tests/python/test_demo.py. ``--small`` shrinks Part 2 so the whole demo runs in
seconds (Part 1 is cheap and stays full size).
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

# Seeds (the notebook's jr.PRNGKey(0) split, PRNGKey(42) and PRNGKey(1234) in spirit).
TRUE_KEY, SAMPLE_KEY, INIT_KEY, SGD_KEY = 1, 3, 42, 1234
SDE_PARAMS_SEED, SDE_SAMPLE_SEED, SDE_INIT_KEY = 2025, 11, 1
IRREGULAR_SEED = 12

LEARNING_RATES = (1e-2, 1e-1, 2.5e-1)

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
    """Sizes and iteration counts of one run."""

    state_dim: int = 2
    emission_dim: int = 10
    num_timesteps: int = 100
    num_forecast_timesteps: int = 50
    em_iters: int = 100
    adam_epochs: int = 1000
    sde_num_sequences: int = 500
    sde_num_timesteps: int = 50
    sde_dt: float = 0.1
    sde_em_iters: int = 100
    irregular_num_sequences: int = 100
    irregular_num_timesteps: int = 50
    irregular_mean_gap: float = 0.1
    irregular_max_iters: int = 300


FULL = Settings()
SMALL = Settings(sde_num_sequences=100, sde_num_timesteps=30, sde_em_iters=30, irregular_num_sequences=20,
                 irregular_num_timesteps=25, irregular_max_iters=50)


def format_number(x) -> str:
    """How every number appears in report.html: 6 significant digits for floats."""
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.6g}"


# ---------------------------------------------------------------------------
# Helpers.

class _Run:
    """Output directory, progress lines, figures and timings of one demo run."""

    def __init__(self, out: str, quiet: bool):
        self.out, self.quiet = out, quiet
        self.images: dict[str, str] = {}  # file name -> base64 PNG
        self.wall_time: dict[str, float] = {}

    def say(self, message: str):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def save(self, fig, name: str):
        import io as _bytes_io

        import matplotlib.pyplot as plt

        from .io import atomic_write

        buffer = _bytes_io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight", dpi=100)
        plt.close(fig)
        data = buffer.getvalue()
        with atomic_write(os.path.join(self.out, name), "wb") as fh:
            fh.write(data)
        self.images[name] = base64.b64encode(data).decode("ascii")
        self.say(f"  wrote {os.path.join(self.out, name)}")

    def timed(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.wall_time[name] = round(time.perf_counter() - start, 3)
        return result


def _rel_error(estimate, truth) -> float:
    return float(np.linalg.norm(np.asarray(estimate) - truth) / np.linalg.norm(truth))


def _curve_figure(curves: dict, true_value, xlabel: str, ylim=None, title=None):
    from .plot import plot_learning_curves

    fig = plot_learning_curves({k: np.asarray(v) for k, v in curves.items()}, true_value=true_value, xlabel=xlabel)
    ax = fig.axes[0]
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _zoom(lls, true_value, margin_fraction=0.05):
    """y-limits from the second value of a learning curve to above its end and the truth."""
    lls = np.asarray(lls)
    low = lls[1] if len(lls) > 1 else lls[0]
    high = max(float(lls[-1]), float(true_value))
    margin = margin_fraction * max(high - low, 1.0)
    return low - margin, high + margin


# ---------------------------------------------------------------------------
# Part 1: dynamax's notebook.

def _notebook(run: _Run, s: Settings, verbose: bool) -> dict:
    from . import LinearGaussianSSM
    from .optimizers import adam
    from .plot import plot_emissions_and_forecast
    from .utils import monotonically_increasing, random_rotation

    n, p, T = s.state_dim, s.emission_dim, s.num_timesteps
    run.say(f"Part 1 (dynamax notebook): true model, state_dim {n}, emission_dim {p}, {T} steps")
    true_A = 0.99 * random_rotation(seed=TRUE_KEY, n=n, theta=np.pi / 10)
    true_Sigma = 0.01 * np.eye(n)
    true_model = LinearGaussianSSM(n, p)
    true_params, _ = true_model.initialize(key=TRUE_KEY, dynamics_weights=true_A, dynamics_covariance=true_Sigma)
    true_states, emissions = true_model.sample(true_params, SAMPLE_KEY, T)
    true_ll = true_model.marginal_log_prob(true_params, emissions)

    def emissions_figure(params, title, name):
        fig = plot_emissions_and_forecast(true_model, params, emissions, num_forecast_timesteps=s.num_forecast_timesteps)
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
    fig = _curve_figure({"estimated": em_lls}, true_ll, "iteration",
                        ylim=(em_lls[1] - 25, em_lls[-1] + 25) if len(em_lls) > 1 else None)
    run.save(fig, "em_learning_curve.png")
    emissions_figure(em_params, "fitted model", "fitted_model.png")

    sgd_curves, sgd_final = {}, {}
    for lr in LEARNING_RATES:
        label = f"lr={lr:g}"
        run.say(f"Part 1: Adam, learning rate {lr:g}, {s.adam_epochs} epochs")
        sgd_params, sgd_props = model.initialize(INIT_KEY)
        fitted, losses = run.timed(f"adam {label}", model.fit_sgd, sgd_params, sgd_props, emissions,
                                   num_epochs=s.adam_epochs, optimizer=adam(learning_rate=lr), key=SGD_KEY,
                                   verbose=verbose)
        sgd_curves[label] = -np.asarray(losses) * emissions.size
        sgd_final[label] = model.marginal_log_prob(fitted, emissions)
    fig = _curve_figure(sgd_curves, true_ll, "epochs", ylim=(true_ll - 3000, true_ll + 100))
    run.save(fig, "sgd_learning_curves.png")

    run.say(f"Part 1: Adam with the dynamics frozen at the truth, learning rate 0.01, {s.adam_epochs} epochs")
    frozen_params, frozen_props = model.initialize(INIT_KEY, dynamics_weights=true_A, dynamics_covariance=true_Sigma)
    frozen_props.dynamics.weights.trainable = False
    frozen_props.dynamics.cov.trainable = False
    before = np.array(frozen_params.dynamics.weights, copy=True)
    frozen_fit, losses = run.timed("adam frozen dynamics", model.fit_sgd, frozen_params, frozen_props, emissions,
                                   num_epochs=s.adam_epochs, optimizer=adam(learning_rate=1e-2), key=SGD_KEY,
                                   verbose=verbose)
    frozen_curve = -np.asarray(losses) * emissions.size
    unchanged = bool(np.array_equal(frozen_fit.dynamics.weights, before)
                     and np.array_equal(frozen_fit.dynamics.cov, true_Sigma))
    run.say(f"  dynamics weights after fitting {'unchanged' if unchanged else 'CHANGED'}")
    fig = _curve_figure({"estimated": frozen_curve}, true_ll, "epochs", ylim=(true_ll - 3000, true_ll + 100))
    run.save(fig, "frozen_sgd_learning_curve.png")

    return {
        "loglik": {"true": true_ll, "initial": initial_ll, "em_final": em_final,
                   **{f"adam_{k}_final": v for k, v in sgd_final.items()},
                   "frozen_adam_final": model.marginal_log_prob(frozen_fit, emissions)},
        "true_dynamics_weights": true_A.tolist(),
        "frozen_dynamics_weights_after": np.asarray(frozen_fit.dynamics.weights).tolist(),
        "checks": {
            "em_monotone": monotonically_increasing(em_lls, atol=1e-8, rtol=1e-10),
            "em_final_above_true": bool(em_final > true_ll),
            "frozen_dynamics_unchanged": unchanged,
        },
        "curves": {"em": np.asarray(em_lls).tolist(), **{f"adam_{k}": v.tolist() for k, v in sgd_curves.items()},
                   "adam_frozen": frozen_curve.tolist()},
    }


# ---------------------------------------------------------------------------
# Part 2: the SDE document.

def _per_step_emissions(T: int, p: int, n: int):
    """The demo's per-step emission parameters H_k, u_k, R_k for k < T (fixed seed)."""
    rng = np.random.default_rng(SDE_PARAMS_SEED)
    H0, H1 = rng.normal(size=(p, n)), rng.normal(size=(p, n))
    phase = 2 * np.pi * np.arange(T) / T
    H = H0[None] + 0.3 * np.sin(phase)[:, None, None] * H1[None]
    u = 0.5 * np.sin(phase[:, None] + np.arange(p)[None, :])
    R = np.stack([np.diag(0.1 + 0.05 * np.sin(ph + np.arange(p))) + 0.01 for ph in phase])
    return H0, H, u, R


def _sde(run: _Run, s: Settings, verbose: bool) -> dict:
    from . import ContinuousTimeSSM
    from .plot import plot_states

    n, p, N, T, dt = 2, 3, s.sde_num_sequences, s.sde_num_timesteps, s.sde_dt
    run.say(f"Part 2 (SDE EM): damped oscillator, {N} sequences x {T} steps at dt={dt:g}, 3-d emissions "
            f"with per-step H_k (known), u_k and R_k")
    H0, H, u, R = _per_step_emissions(T, p, n)
    model = ContinuousTimeSSM(n, p)
    true_params, _ = model.initialize(0, drift=SDE_DRIFT, diffusion_covariance=SDE_DIFFUSION_COV, emission_weights=H,
                                      emission_bias=u, emission_input_weights=np.zeros((T, p, 0)),
                                      emission_covariance=R)
    rng = np.random.default_rng(SDE_SAMPLE_SEED)
    draws = [model.sample(true_params, rng, num_timesteps=T, dt=dt) for _ in range(N)]
    states = np.stack([d[0] for d in draws])
    emissions = np.stack([d[1] for d in draws])
    true_ll = float(np.sum(model.marginal_log_prob(true_params, emissions, dt=dt)))

    params, props = model.initialize(SDE_INIT_KEY, emission_weights=H, emission_bias=np.zeros((T, p)),
                                     emission_input_weights=np.zeros((T, p, 0)),
                                     emission_covariance=np.tile(0.1 * np.eye(p), (T, 1, 1)))
    props.emissions.weights.trainable = False
    initial_ll = float(np.sum(model.marginal_log_prob(params, emissions, dt=dt)))
    run.say(f"Part 2: EM, {s.sde_em_iters} iterations")
    fitted, lls, summary = run.timed("sde em", model.fit_em, params, props, emissions, dt=dt,
                                     num_iters=s.sde_em_iters, verbose=verbose, return_summary=True)
    final_ll = float(np.sum(model.marginal_log_prob(fitted, emissions, dt=dt)))
    F, Qc = np.asarray(fitted.dynamics.drift), np.asarray(fitted.dynamics.diffusion_cov)
    run.say(f"  F relative error {format_number(_rel_error(F, SDE_DRIFT))}, "
            f"Q_c relative error {format_number(_rel_error(Qc, SDE_DIFFUSION_COV))}")
    run.save(_curve_figure({"EM": lls}, true_ll, "iteration", ylim=_zoom(lls, true_ll)), "sde_em_learning_curve.png")
    post = model.smoother(fitted, emissions[0], dt=dt)
    fig = plot_states(states[0], post.smoothed_means, post.smoothed_covariances)
    ax = fig.axes[0]
    ax.set_xlabel(f"time step (dt = {dt:g})")
    ax.set_title("sequence 0: true latent path and smoothed means under the EM fit")
    ax.grid(True)
    run.save(fig, "sde_states.png")
    em = {
        "loglik_true": true_ll, "loglik_initial": initial_ll, "loglik_final": final_ll,
        "iterations": summary.iterations, "drift": F.tolist(), "diffusion_cov": Qc.tolist(),
        "drift_rel_error": _rel_error(F, SDE_DRIFT), "diffusion_cov_rel_error": _rel_error(Qc, SDE_DIFFUSION_COV),
        "emission_bias_rmse": float(np.sqrt(np.mean((np.asarray(fitted.emissions.bias) - u) ** 2))),
        "emission_cov_rmse": float(np.sqrt(np.mean((np.asarray(fitted.emissions.cov) - R) ** 2))),
    }

    # Irregular observation times: constant emission parameters, L-BFGS.
    N2, T2 = s.irregular_num_sequences, s.irregular_num_timesteps
    run.say(f"Part 2 (irregular times): {N2} sequences x {T2} steps, exponential gaps with mean "
            f"{s.irregular_mean_gap:g}, L-BFGS up to {s.irregular_max_iters} iterations")
    u0, R0 = u.mean(axis=0), R.mean(axis=0)
    true2, _ = model.initialize(0, drift=SDE_DRIFT, diffusion_covariance=SDE_DIFFUSION_COV, emission_weights=H0,
                                emission_bias=u0, emission_covariance=R0)
    rng = np.random.default_rng(IRREGULAR_SEED)
    gaps = rng.exponential(s.irregular_mean_gap, size=(N2, T2 - 1))
    times = np.concatenate([np.zeros((N2, 1)), np.cumsum(gaps, axis=1)], axis=1)
    emissions2 = np.stack([model.sample(true2, rng, times=t)[1] for t in times])
    true_ll2 = float(np.sum(model.marginal_log_prob(true2, emissions2, times=times)))
    params2, props2 = model.initialize(SDE_INIT_KEY, emission_weights=H0)
    props2.emissions.weights.trainable = False
    initial_ll2 = float(np.sum(model.marginal_log_prob(params2, emissions2, times=times)))
    fitted2, lls2, summary2 = run.timed("irregular lbfgs", model.fit_lbfgs, params2, props2, emissions2, times=times,
                                        max_iters=s.irregular_max_iters, verbose=verbose, return_summary=True)
    final_ll2 = float(np.sum(model.marginal_log_prob(fitted2, emissions2, times=times)))
    F2, Qc2 = np.asarray(fitted2.dynamics.drift), np.asarray(fitted2.dynamics.diffusion_cov)
    run.say(f"  F relative error {format_number(_rel_error(F2, SDE_DRIFT))}, "
            f"Q_c relative error {format_number(_rel_error(Qc2, SDE_DIFFUSION_COV))} ({summary2.termination})")
    run.save(_curve_figure({"L-BFGS": lls2}, true_ll2, "iteration", ylim=_zoom(lls2, true_ll2)),
             "irregular_lbfgs_learning_curve.png")
    irregular = {
        "loglik_true": true_ll2, "loglik_initial": initial_ll2, "loglik_final": final_ll2,
        "iterations": summary2.iterations, "termination": summary2.termination,
        "drift": F2.tolist(), "diffusion_cov": Qc2.tolist(),
        "drift_rel_error": _rel_error(F2, SDE_DRIFT), "diffusion_cov_rel_error": _rel_error(Qc2, SDE_DIFFUSION_COV),
    }
    return {"true_drift": SDE_DRIFT.tolist(), "true_diffusion_cov": SDE_DIFFUSION_COV.tolist(), "em": em,
            "irregular": irregular,
            "curves": {"sde_em": np.asarray(lls).tolist(), "irregular_lbfgs": np.asarray(lls2).tolist()}}


# ---------------------------------------------------------------------------
# The report.

def _plain(x):
    """``x`` with NumPy scalars as Python numbers and non-finite floats as None (valid JSON)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2, h3 { font-weight: 600; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td.label, th.label { text-align: left; }
table.matrix td { border: none; padding: 0.1em 0.5em; font-family: monospace; }
table.matrix { border-left: 2px solid #444; border-right: 2px solid #444; margin: 0; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
.ok { color: #070; } .bad { color: #b00; font-weight: bold; }
"""


def _num(x) -> str:
    return html.escape(format_number(x))


def _matrix(a) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{_num(v)}</td>" for v in row) + "</tr>" for row in a)
    return f'<table class="matrix">{rows}</table>'


def _table(header, rows) -> str:
    head = "<tr>" + "".join(f'<th class="label">{html.escape(header[0])}</th>' if i == 0 else f"<th>{html.escape(h)}</th>"
                            for i, h in enumerate(header)) + "</tr>"
    body = "".join("<tr>" + "".join(f'<td class="label">{c}</td>' if i == 0 else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _figure(run: _Run, name: str) -> str:
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{run.images[name]}">'
            f"<figcaption><b>{html.escape(name)}</b>: {html.escape(FIGURES[name])}</figcaption></figure>")


def _check(value: bool) -> str:
    return f'<span class="{"ok" if value else "bad"}">{_num(value)}</span>'


def _report(run: _Run, r: dict) -> str:
    nb, sde, t = r["notebook"], r["sde"], r["wall_time_s"]
    em, irr = sde["em"], sde["irregular"]
    s = r["settings"]
    ll = nb["loglik"]
    ll_rows = [["true parameters", _num(ll["true"]), ""],
               ["initial (initialize(42))", _num(ll["initial"]), ""],
               [f"EM, {_num(s['em_iters'])} iterations", _num(ll["em_final"]), _num(t["em"])]]
    for lr in LEARNING_RATES:
        label = f"lr={lr:g}"
        ll_rows.append([f"Adam {label}, {_num(s['adam_epochs'])} epochs", _num(ll[f"adam_{label}_final"]),
                        _num(t[f"adam {label}"])])
    ll_rows.append(["Adam lr=0.01, dynamics frozen at the truth", _num(ll["frozen_adam_final"]),
                    _num(t["adam frozen dynamics"])])
    par_rows = [
        ["drift F", _matrix(sde["true_drift"]), _matrix(em["drift"]), _num(em["drift_rel_error"]),
         _matrix(irr["drift"]), _num(irr["drift_rel_error"])],
        ["diffusion_cov Q_c", _matrix(sde["true_diffusion_cov"]), _matrix(em["diffusion_cov"]),
         _num(em["diffusion_cov_rel_error"]), _matrix(irr["diffusion_cov"]), _num(irr["diffusion_cov_rel_error"])],
    ]
    sde_rows = [
        ["log likelihood, true parameters", _num(em["loglik_true"]), _num(irr["loglik_true"])],
        ["log likelihood, initial", _num(em["loglik_initial"]), _num(irr["loglik_initial"])],
        ["log likelihood, fitted", _num(em["loglik_final"]), _num(irr["loglik_final"])],
        ["iterations", _num(em["iterations"]), f"{_num(irr['iterations'])} ({html.escape(irr['termination'])})"],
        ["wall time (s)", _num(t["sde em"]), _num(t["irregular lbfgs"])],
        ["RMSE of the learned u_k / R_k vs truth", f"{_num(em['emission_bias_rmse'])} / {_num(em['emission_cov_rmse'])}",
         ""],
    ]
    time_rows = [[html.escape(k), _num(v)] for k, v in t.items()]
    checks = {**nb["checks"]}
    check_rows = [["EM log likelihood monotone (notebook)", _check(checks["em_monotone"])],
                  ["EM final log likelihood above the true parameters' (notebook)",
                   _check(checks["em_final_above_true"])],
                  ["frozen dynamics weights and cov unchanged (np.array_equal)",
                   _check(checks["frozen_dynamics_unchanged"])]]
    settings_rows = [[html.escape(k), _num(v)] for k, v in s.items()]
    from . import __version__

    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>lgssm demo</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>lgssm demo</h1><p>lgssm {html.escape(__version__)}; {html.escape(r['mode'])} run; "
        f"total wall time {_num(t['total'])} s. Every fit uses fixed seeds; all numbers are also in "
        f"<code>results.json</code>.</p>",
        "<h2>Part 1: MAP parameter estimation for an LG-SSM using EM and SGD</h2>",
        f"<p>dynamax's notebook: state_dim {_num(s['state_dim'])}, emission_dim {_num(s['emission_dim'])}, "
        f"{_num(s['num_timesteps'])} time steps; true dynamics 0.99 x a rotation by pi/10, dynamics covariance "
        f"0.01 I. Final log likelihoods are log p(y | fitted parameters).</p>",
        _table(["model", "log likelihood", "wall time (s)"], ll_rows),
        "<h3>Checks</h3>", _table(["check", "result"], check_rows),
        "<p>Dynamics weights: true</p>", _matrix(nb["true_dynamics_weights"]),
        "<p>after the frozen fit</p>", _matrix(nb["frozen_dynamics_weights_after"]),
        *(_figure(run, n) for n in ("true_model.png", "random_model.png", "em_learning_curve.png",
                                    "fitted_model.png", "sgd_learning_curves.png", "frozen_sgd_learning_curve.png")),
        "<h2>Part 2: expectation maximization for SDE-based SSMs</h2>",
        f"<p>A damped oscillator dx = F x dt + L dW with Q_c = L L<sup>T</sup>, observed through 3-d emissions "
        f"y_k ~ N(H_k x(t_k) + u_k, R_k). EM: {_num(s['sde_num_sequences'])} sequences x "
        f"{_num(s['sde_num_timesteps'])} steps at dt = {_num(s['sde_dt'])}, per-step H_k known (frozen), u_k and "
        f"R_k learned, closed-form EM on the equivalent discrete model and F, Q_c by the matrix logarithm. "
        f"Irregular times: {_num(s['irregular_num_sequences'])} sequences x {_num(s['irregular_num_timesteps'])} "
        f"steps with exponential gaps of mean {_num(s['irregular_mean_gap'])}, constant emission parameters (H "
        f"frozen at the truth), L-BFGS with exact gradients, at most {_num(s['irregular_max_iters'])} iterations. "
        f"Errors are relative Frobenius errors ||estimate - truth|| / ||truth||.</p>",
        _table(["parameter", "true", "EM (equal steps)", "rel. error", "L-BFGS (irregular times)", "rel. error"],
               par_rows),
        _table(["", "EM (equal steps)", "L-BFGS (irregular times)"], sde_rows),
        *(_figure(run, n) for n in ("sde_em_learning_curve.png", "sde_states.png",
                                    "irregular_lbfgs_learning_curve.png")),
        "<h2>Wall time of each fit (s, time.perf_counter)</h2>", _table(["fit", "seconds"], time_rows),
        "<h2>Settings</h2>", _table(["setting", "value"], settings_rows),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------
# The run.

def run_demo(out, *, small: bool = False, quiet: bool = False) -> dict:
    """Runs both parts (``small``: the SMALL settings, else FULL) and writes the figures,
    results.json and report.html to the directory ``out``, created if needed; progress
    goes to stderr unless ``quiet``. Returns the results as written to results.json."""
    from .io import atomic_write

    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)

    settings = SMALL if small else FULL
    run_ = _Run(out, quiet)
    run_.say(f"lgssm demo ({'small' if small else 'full'} run): writing to {os.path.abspath(out)}")
    start = time.perf_counter()
    verbose = not quiet
    notebook = _notebook(run_, settings, verbose)
    sde = _sde(run_, settings, verbose)
    run_.wall_time["total"] = round(time.perf_counter() - start, 3)

    curves = {**notebook.pop("curves"), **sde.pop("curves")}
    results = _plain({"mode": "small" if small else "full", "settings": asdict(settings), "notebook": notebook,
                      "sde": sde, "wall_time_s": run_.wall_time, "curves": curves})
    with atomic_write(os.path.join(out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    report = _report(run_, results)
    with atomic_write(os.path.join(out, "report.html"), "w") as fh:
        fh.write(report)
    run_.say(f"wrote {os.path.join(out, 'results.json')} and {os.path.join(out, 'report.html')} "
             f"({run_.wall_time['total']:.1f} s)")
    return results


if __name__ == "__main__":  # python -m lgssm.demo [--out DIR] [--small] [--quiet]
    from .cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
