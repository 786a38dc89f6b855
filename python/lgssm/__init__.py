"""lgssm: exact, fast inference and learning for linear Gaussian state-space models."""
from . import optimizers, priors, utils
from ._core import InvalidArgument
from .models import FitSummary, LinearGaussianConjugateSSM, LinearGaussianSSM, PosteriorLGSSMFiltered, PosteriorLGSSMSmoothed
from .params import (ParameterProperties, ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions,
                     ParamsLGSSMInitial)

__all__ = [
    "FitSummary", "InvalidArgument", "LinearGaussianConjugateSSM", "LinearGaussianSSM", "ParameterProperties", "ParamsLGSSM",
    "ParamsLGSSMDynamics", "ParamsLGSSMEmissions", "ParamsLGSSMInitial", "PosteriorLGSSMFiltered",
    "PosteriorLGSSMSmoothed", "optimizers", "priors", "utils",
]
__version__ = "0.1.0"
