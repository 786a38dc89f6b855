"""Plots in the style of dynamax's LG-SSM notebooks (matplotlib, imported on first use).

Each function draws on ``ax`` (a new figure when None), returns the matplotlib
Figure, and with ``path=`` also saves it there (atomically; the format follows
the extension). Headless use: ``matplotlib.use("Agg")`` or ``MPLBACKEND=Agg``.
"""

from __future__ import annotations

import os

import numpy as np

from ._docstrings import shared

__all__ = ["plot_emissions_and_forecast", "plot_learning_curves", "plot_states"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("lgssm.plot needs matplotlib: pip install matplotlib") from None
    return plt


def _axes(ax, figsize):
    if ax is None:
        fig, ax = _pyplot().subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _finish(fig, path):
    if path is not None:
        from .io import atomic_write

        ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, format=ext, bbox_inches="tight")
    return fig


def _one_sequence(name: str, a, dim: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(
            f"{name}: expected one sequence, an array of shape (num_timesteps, {dim}), got shape {a.shape}"
        )
    return a


@shared
def plot_emissions_and_forecast(
    model,
    params,
    emissions,
    num_forecast_timesteps: int = 50,
    spc: float = 4,
    ax=None,
    inputs=None,
    forecast_inputs=None,
    path=None,
):
    """Plot emissions with their smoothed reconstruction and a forecast.

    The observed emissions (dashed black), their smoothed reconstruction
    E[y_t | y] with a +-2 std band, and the forecast E[y_{T+k} | y] (dotted)
    with its +-2 std band after a vertical divider at t = num_timesteps.
    Emission dimension i is shifted up by ``spc * i``.

    Parameters
    ----------
    model : LinearGaussianSSM
        The model.
    params : ParamsLGSSM
        Its parameters.
    emissions : array, shape (num_timesteps, emission_dim)
        One sequence, NaN where missing.
    num_forecast_timesteps : int, default 50
        The forecast's horizon (0: none).
    spc : float, default 4
        The vertical offset between emission dimensions.
    %(figure)s
    inputs : array, shape (num_timesteps, input_dim), optional
        As for ``model.forecast``.
    forecast_inputs : array, shape (num_forecast_timesteps, input_dim), optional
        As for ``model.forecast``.
    %(figure_path)s

    Returns
    -------
    %(figure_returns)s

    Raises
    ------
    ValueError
        If ``emissions`` is not one 2-D sequence.
    ImportError
        If matplotlib is not installed.
    """
    y = _one_sequence("emissions", emissions, "emission_dim")
    num_timesteps, emission_dim = y.shape
    k = int(num_forecast_timesteps)
    smoothed, smoothed_std = model.posterior_predictive(params, y, inputs)
    fig, ax = _axes(ax, (10, max(3.0, 0.6 * emission_dim + 2)))
    t, tf = np.arange(num_timesteps), num_timesteps + np.arange(k)
    if k > 0:
        _, _, fmeans, fcovs = model.forecast(params, y, k, inputs, forecast_inputs)
        fstd = np.sqrt(np.maximum(np.diagonal(fcovs, axis1=-2, axis2=-1), 0.0))
    for i in range(emission_dim):
        off = spc * i
        ax.plot(t, y[:, i] + off, "--k", label="observed" if i == 0 else None)
        line = ax.plot(t, smoothed[:, i] + off, label="smoothed" if i == 0 else None)[0]
        color = line.get_color()
        ax.fill_between(
            t,
            off + smoothed[:, i] - 2 * smoothed_std[:, i],
            off + smoothed[:, i] + 2 * smoothed_std[:, i],
            color=color,
            alpha=0.25,
        )
        if k > 0:
            ax.plot(tf, fmeans[:, i] + off, ":", color=color, label="forecast" if i == 0 else None)
            ax.fill_between(
                tf, off + fmeans[:, i] - 2 * fstd[:, i], off + fmeans[:, i] + 2 * fstd[:, i], color=color, alpha=0.25
            )
    if k > 0:
        ax.axvline(num_timesteps, color="k", linestyle="-", linewidth=1)
    ax.set_xlim(0, max(num_timesteps + k - 1, 1))
    ax.set_xlabel("time")
    ax.set_ylabel(f"emissions (offset {spc:g} per dimension)" if spc else "emissions")
    ax.legend(loc="upper left")
    return _finish(fig, path)


@shared
def plot_learning_curves(
    curves: dict,
    true_value=None,
    ax=None,
    xlabel: str = "iteration",
    ylabel: str = "marginal log likelihood",
    path=None,
):
    """Plot learning curves, one line per entry of ``curves``.

    Parameters
    ----------
    curves : dict
        Label -> 1-D array, e.g. the second value returned by ``fit_em``.
    true_value : float, optional
        E.g. the log likelihood under the true parameters, as a dashed horizontal line.
    %(figure)s
    xlabel : str, default "iteration"
        The x axis label.
    ylabel : str, default "marginal log likelihood"
        The y axis label.
    %(figure_path)s

    Returns
    -------
    %(figure_returns)s

    Raises
    ------
    ValueError
        If ``curves`` is not a non-empty dict of 1-D arrays.
    ImportError
        If matplotlib is not installed.
    """
    if not isinstance(curves, dict) or not curves:
        raise ValueError(f"curves: expected a non-empty dict of label -> 1-D array, got {type(curves).__name__}")
    fig, ax = _axes(ax, (6, 4))
    for label, values in curves.items():
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(f"curves[{label!r}]: expected a 1-D array, got shape {v.shape}")
        ax.plot(np.arange(len(v)), v, label=str(label))
    if true_value is not None:
        ax.axhline(float(true_value), color="k", linestyle="--", label="true")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    return _finish(fig, path)


@shared
def plot_states(true_states, smoothed_means, smoothed_stds=None, ax=None, spc: float = 4, path=None):
    """Plot true latent states and smoothed means with +-2 std bands.

    State dimension i is shifted up by ``spc * i``.

    Parameters
    ----------
    true_states : array, shape (num_timesteps, state_dim), or None
        Drawn dashed black; None to omit.
    smoothed_means : array, shape (num_timesteps, state_dim)
        E.g. ``smoother(...).smoothed_means``.
    smoothed_stds : array, shape (num_timesteps, state_dim) or (num_timesteps, state_dim, state_dim), optional
        Standard deviations, or the smoothed covariances; None for no bands.
    %(figure)s
    spc : float, default 4
        The vertical offset between state dimensions.
    %(figure_path)s

    Returns
    -------
    %(figure_returns)s

    Raises
    ------
    ValueError
        If the arrays are not one sequence each or their shapes disagree.
    ImportError
        If matplotlib is not installed.
    """
    m = _one_sequence("smoothed_means", smoothed_means, "state_dim")
    z = None if true_states is None else _one_sequence("true_states", true_states, "state_dim")
    if z is not None and z.shape != m.shape:
        raise ValueError(f"true_states: expected shape {m.shape} like smoothed_means, got {z.shape}")
    s = None
    if smoothed_stds is not None:
        s = np.asarray(smoothed_stds, dtype=np.float64)
        if s.ndim == 3:
            s = np.sqrt(np.maximum(np.diagonal(s, axis1=-2, axis2=-1), 0.0))
        if s.shape != m.shape:
            raise ValueError(
                f"smoothed_stds: expected shape {m.shape} (or covariances {m.shape + m.shape[-1:]}), "
                f"got {np.shape(smoothed_stds)}"
            )
    fig, ax = _axes(ax, (10, max(3.0, 0.8 * m.shape[1] + 2)))
    t = np.arange(m.shape[0])
    for i in range(m.shape[1]):
        off = spc * i
        if z is not None:
            ax.plot(t, z[:, i] + off, "--k", label="true" if i == 0 else None)
        line = ax.plot(t, m[:, i] + off, label="smoothed" if i == 0 else None)[0]
        if s is not None:
            ax.fill_between(
                t, off + m[:, i] - 2 * s[:, i], off + m[:, i] + 2 * s[:, i], color=line.get_color(), alpha=0.25
            )
    ax.set_xlim(0, max(m.shape[0] - 1, 1))
    ax.set_xlabel("time")
    ax.set_ylabel(f"states (offset {spc:g} per dimension)" if spc else "states")
    ax.legend(loc="upper left")
    return _finish(fig, path)
