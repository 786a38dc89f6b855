"""The code in docs/guide.md and the README's Python example runs as written."""

import pathlib
import re

import matplotlib
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


@pytest.mark.parametrize(
    "path",
    [
        "docs/guide.md",
        "docs/bayesian.md",
        "docs/diagnostics.md",
        "docs/initialization.md",
        "docs/continuous-time.md",
        "docs/structural-models.md",
        "README.md",
    ],
)
def test_python_examples_run(path, tmp_path, monkeypatch):
    if path in ("docs/diagnostics.md", "docs/initialization.md", "docs/structural-models.md"):  # statsmodels data
        pytest.importorskip("statsmodels", exc_type=ImportError, reason="statsmodels (extra `peers`) is missing")
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in python_blocks(path):
        if "lgssm.jax" not in block:  # those need the jax extra; test_jax.py runs them
            exec(compile(block, f"{path}", "exec"), namespace)
