"""lgssm.plot: each function returns a Figure and writes a non-empty PNG (Agg backend)."""

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lgssm import LinearGaussianSSM, plot  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def example():
    model = LinearGaussianSSM(2, 3)
    params, _ = model.initialize(1)
    states, emissions = model.sample(params, 2, 30)
    emissions[5, 1] = np.nan
    return model, params, states, emissions


def assert_png(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_emissions_and_forecast(tmp_path, example):
    model, params, _, emissions = example
    fig = plot.plot_emissions_and_forecast(
        model, params, emissions, num_forecast_timesteps=10, path=tmp_path / "forecast.png"
    )
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "forecast.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["observed", "smoothed", "forecast"]
    assert ax.get_xlim() == (0.0, 39.0)
    with pytest.raises(ValueError, match=r"emissions: expected one sequence"):
        plot.plot_emissions_and_forecast(model, params, emissions[None])


def test_learning_curves_on_given_axes(tmp_path):
    fig, (left, right) = plt.subplots(1, 2)
    got = plot.plot_learning_curves(
        {"EM": -1 / np.arange(1, 20), "SGD": -2 / np.arange(1, 30)},
        true_value=0.0,
        ax=right,
        path=tmp_path / "curves.png",
    )
    assert got is fig and len(right.lines) == 3 and not left.lines
    assert_png(tmp_path / "curves.png")
    with pytest.raises(ValueError, match="curves"):
        plot.plot_learning_curves([1, 2, 3])


def test_states(tmp_path, example):
    model, params, states, emissions = example
    post = model.smoother(params, emissions)
    fig = plot.plot_states(states, post.smoothed_means, post.smoothed_covariances, path=tmp_path / "states.png")
    assert isinstance(fig, Figure) and len(fig.axes[0].collections) == 2  # one band per state dimension
    assert_png(tmp_path / "states.png")
    stds = np.sqrt(np.diagonal(post.smoothed_covariances, axis1=1, axis2=2))
    fig = plot.plot_states(None, post.smoothed_means, stds)
    assert len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="true_states: expected shape"):
        plot.plot_states(states[:5], post.smoothed_means)


def test_matplotlib_is_imported_lazily():
    code = "import sys, lgssm.plot, lgssm.cli, lgssm.io; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
