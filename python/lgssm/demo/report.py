"""report.html: every number of a demo run in tables (formatted by ``format_number``), figures embedded."""

from __future__ import annotations

import html

import numpy as np

from .. import __version__
from .._notebook import LEARNING_RATES
from ._session import Session
from .settings import FIGURES


def format_number(x) -> str:
    """How every number appears in report.html: 6 significant digits for floats."""
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.6g}"


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
    head = (
        "<tr>"
        + "".join(
            f'<th class="label">{html.escape(h)}</th>' if i == 0 else f"<th>{html.escape(h)}</th>"
            for i, h in enumerate(header)
        )
        + "</tr>"
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="label">{c}</td>' if i == 0 else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def _figure(run: Session, name: str) -> str:
    return (
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{run.images[name]}">'
        f"<figcaption><b>{html.escape(name)}</b>: {html.escape(FIGURES[name])}</figcaption></figure>"
    )


def _check(value: bool) -> str:
    return f'<span class="{"ok" if value else "bad"}">{_num(value)}</span>'


def render_report(run: Session, r: dict) -> str:
    nb, sde, t = r["notebook"], r["sde"], r["wall_time_s"]
    em, irr = sde["em"], sde["irregular"]
    s = r["settings"]
    ll = nb["loglik"]
    ll_rows = [
        ["true parameters", _num(ll["true"]), ""],
        ["initial (initialize(42))", _num(ll["initial"]), ""],
        [f"EM, {_num(s['em_iters'])} iterations", _num(ll["em_final"]), _num(t["em"])],
    ]
    for lr in LEARNING_RATES:
        label = f"lr={lr:g}"
        ll_rows.append(
            [
                f"Adam {label}, {_num(s['adam_epochs'])} epochs",
                _num(ll[f"adam_{label}_final"]),
                _num(t[f"adam {label}"]),
            ]
        )
    ll_rows.append(
        ["Adam lr=0.01, dynamics frozen at the truth", _num(ll["frozen_adam_final"]), _num(t["adam frozen dynamics"])]
    )
    par_rows = [
        [
            "drift F",
            _matrix(sde["true_drift"]),
            _matrix(em["drift"]),
            _num(em["drift_rel_error"]),
            _matrix(irr["drift"]),
            _num(irr["drift_rel_error"]),
        ],
        [
            "diffusion_cov Q_c",
            _matrix(sde["true_diffusion_cov"]),
            _matrix(em["diffusion_cov"]),
            _num(em["diffusion_cov_rel_error"]),
            _matrix(irr["diffusion_cov"]),
            _num(irr["diffusion_cov_rel_error"]),
        ],
    ]
    sde_rows = [
        ["log likelihood, true parameters", _num(em["loglik_true"]), _num(irr["loglik_true"])],
        ["log likelihood, initial", _num(em["loglik_initial"]), _num(irr["loglik_initial"])],
        ["log likelihood, fitted", _num(em["loglik_final"]), _num(irr["loglik_final"])],
        ["iterations", _num(em["iterations"]), f"{_num(irr['iterations'])} ({html.escape(irr['termination'])})"],
        ["wall time (s)", _num(t["sde em"]), _num(t["irregular lbfgs"])],
        [
            "RMSE of the learned u_k / R_k vs truth",
            f"{_num(em['emission_bias_rmse'])} / {_num(em['emission_cov_rmse'])}",
            "",
        ],
    ]
    time_rows = [[html.escape(k), _num(v)] for k, v in t.items()]
    checks = {**nb["checks"]}
    check_rows = [
        ["EM log likelihood monotone (notebook)", _check(checks["em_monotone"])],
        ["EM final log likelihood above the true parameters' (notebook)", _check(checks["em_final_above_true"])],
        ["frozen dynamics weights and cov unchanged (np.array_equal)", _check(checks["frozen_dynamics_unchanged"])],
    ]
    settings_rows = [[html.escape(k), _num(v)] for k, v in s.items()]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>lgssm demo</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>lgssm demo</h1><p>lgssm {html.escape(__version__)}; {html.escape(r['mode'])} run; "
        f"total wall time {_num(t['total'])} s. Every fit uses fixed seeds; all numbers are also in "
        f"<code>results.json</code>.</p>",
        "<h2>Part 1: MAP parameter estimation for an LG-SSM using EM and SGD</h2>",
        f"<p>dynamax's notebook: state_dim {_num(s['state_dim'])}, emission_dim {_num(s['emission_dim'])}, "
        f"{_num(s['num_timesteps'])} time steps; true dynamics 0.99 x a rotation by pi/10, dynamics covariance "
        f"0.01 I. Final log likelihoods are log p(y | fitted parameters).</p>",
        _table(["model", "log likelihood", "wall time (s)"], ll_rows),
        "<h3>Checks</h3>",
        _table(["check", "result"], check_rows),
        "<p>Dynamics weights: true</p>",
        _matrix(nb["true_dynamics_weights"]),
        "<p>after the frozen fit</p>",
        _matrix(nb["frozen_dynamics_weights_after"]),
        *(
            _figure(run, n)
            for n in (
                "true_model.png",
                "random_model.png",
                "em_learning_curve.png",
                "fitted_model.png",
                "sgd_learning_curves.png",
                "frozen_sgd_learning_curve.png",
            )
        ),
        "<h2>Part 2: expectation maximization for SDE-based SSMs</h2>",
        f"<p>A damped oscillator dx = F x dt + L dW with Q_c = L L<sup>T</sup>, observed through 3-d emissions "
        f"y_k ~ N(H_k x(t_k) + u_k, R_k). EM: {_num(s['sde_num_sequences'])} sequences x "
        f"{_num(s['sde_num_timesteps'])} steps at dt = {_num(s['sde_dt'])}, per-step H_k known (frozen), u_k and "
        f"R_k learned, closed-form EM on the equivalent discrete model and F, Q_c by the matrix logarithm. "
        f"Irregular times: {_num(s['irregular_num_sequences'])} sequences x {_num(s['irregular_num_timesteps'])} "
        f"steps with exponential gaps of mean {_num(s['irregular_mean_gap'])}, constant emission parameters (H "
        f"frozen at the truth), L-BFGS with exact gradients, at most {_num(s['irregular_max_iters'])} iterations. "
        f"Errors are relative Frobenius errors ||estimate - truth|| / ||truth||.</p>",
        _table(
            ["parameter", "true", "EM (equal steps)", "rel. error", "L-BFGS (irregular times)", "rel. error"], par_rows
        ),
        _table(["", "EM (equal steps)", "L-BFGS (irregular times)"], sde_rows),
        *(
            _figure(run, n)
            for n in ("sde_em_learning_curve.png", "sde_states.png", "irregular_lbfgs_learning_curve.png")
        ),
        "<h2>Wall time of each fit (s, time.perf_counter)</h2>",
        _table(["fit", "seconds"], time_rows),
        "<h2>Settings</h2>",
        _table(["setting", "value"], settings_rows),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
