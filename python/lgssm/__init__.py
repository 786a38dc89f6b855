"""lgssm: exact, fast inference and learning for linear Gaussian state-space models."""
from . import optimizers, utils
from ._core import InvalidArgument
from .models import FitSummary, LinearGaussianSSM, PosteriorLGSSMFiltered, PosteriorLGSSMSmoothed
from .params import (ParameterProperties, ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions,
                     ParamsLGSSMInitial)

__all__ = [
    "FitSummary", "InvalidArgument", "LinearGaussianSSM", "ParameterProperties", "ParamsLGSSM",
    "ParamsLGSSMDynamics", "ParamsLGSSMEmissions", "ParamsLGSSMInitial", "PosteriorLGSSMFiltered",
    "PosteriorLGSSMSmoothed", "optimizers", "utils",
]
__version__ = "0.1.0"
