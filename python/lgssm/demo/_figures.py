"""The learning-curve figure of both parts of the demo."""

from __future__ import annotations

import numpy as np

from ..plot import plot_learning_curves


def curve_figure(curves: dict, true_value, xlabel: str, ylim=None, title=None):
    fig = plot_learning_curves({k: np.asarray(v) for k, v in curves.items()}, true_value=true_value, xlabel=xlabel)
    ax = fig.axes[0]
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
