"""lgssm: exact, fast inference and learning for linear Gaussian state-space models."""

from . import constraints, continuous, diagnostics, io, optimizers, priors, streaming, structural, utils
from ._core import InvalidArgument
from ._core import __version__ as __version__  # the version: CMakeLists.txt's project(VERSION)
from .continuous import ContinuousTimeSSM, ParamsCTDynamics, ParamsCTSSM
from .diagnostics import FitResult, compare
from .models import (
    FitSummary,
    LinearGaussianConjugateSSM,
    LinearGaussianSSM,
    PosteriorLGSSMFiltered,
    PosteriorLGSSMSmoothed,
)
from .params import (
    ParameterProperties,
    ParamsLGSSM,
    ParamsLGSSMDynamics,
    ParamsLGSSMEmissions,
    ParamsLGSSMInitial,
    stationary_initialization,
)

__all__ = [
    "ContinuousTimeSSM",
    "ParamsCTDynamics",
    "ParamsCTSSM",
    "compare",
    "constraints",
    "continuous",
    "diagnostics",
    "io",
    "FitResult",
    "FitSummary",
    "InvalidArgument",
    "LinearGaussianConjugateSSM",
    "LinearGaussianSSM",
    "ParameterProperties",
    "ParamsLGSSM",
    "ParamsLGSSMDynamics",
    "ParamsLGSSMEmissions",
    "ParamsLGSSMInitial",
    "PosteriorLGSSMFiltered",
    "PosteriorLGSSMSmoothed",
    "optimizers",
    "priors",
    "stationary_initialization",
    "streaming",
    "structural",
    "utils",
]

if "jax" in __import__("sys").modules:  # JAX is loaded already: register the parameters as pytrees (as lgssm.jax does)
    from . import jax as _jax  # noqa: F401
