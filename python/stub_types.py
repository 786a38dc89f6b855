"""Rewrites the stub nanobind generates for lgssm._core (_core.pyi, in place) so
that it names real types: NumPy arrays as ``NDArray[numpy.float64]`` (nanobind
writes ``Annotated[NDArray[numpy.float64], dict(shape=..., order=...)]`` for
Eigen types, ``Annotated[NDArray, dict(float64)]`` for NumPy arrays and the
MatrixSeries caster's name ``numpy.ndarray[float64]``), and the module's
``__version__``. Run by the build after stub generation."""

import re
import sys

ARRAY = "NDArray[numpy.float64]"


def rewrite(text: str) -> str:
    text = re.sub(r"Annotated\[NDArray(?:\[numpy\.float64\])?, dict\((?:[^()]|\([^()]*\))*\)\]", ARRAY, text)
    text = text.replace("numpy.ndarray[float64]", ARRAY)
    if text.count("Annotated") == 1:  # only its import is left
        text = re.sub(r"from typing import Annotated\n", "", text)
        text = re.sub(r"(from typing import .*)\bAnnotated, ", r"\1", text)
        text = re.sub(r"(from typing import .*), Annotated\b", r"\1", text)
    if "from numpy.typing import NDArray" not in text:
        text = "from numpy.typing import NDArray\n" + text
    if "import numpy\n" not in text:
        text = "import numpy\n" + text
    if "\n__version__: str" not in text:
        text = text.rstrip("\n") + "\n\n__version__: str\n"
    return text


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path) as fh:
        text = fh.read()
    with open(path, "w") as fh:
        fh.write(rewrite(text))
