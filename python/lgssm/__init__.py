"""lgssm: exact, fast inference and learning for linear Gaussian state-space models."""
from . import utils
from ._core import InvalidArgument
from .models import LinearGaussianSSM, PosteriorLGSSMFiltered, PosteriorLGSSMSmoothed
from .params import (ParameterProperties, ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions,
                     ParamsLGSSMInitial)

__all__ = [
    "InvalidArgument", "LinearGaussianSSM", "ParameterProperties", "ParamsLGSSM",
    "ParamsLGSSMDynamics", "ParamsLGSSMEmissions", "ParamsLGSSMInitial", "PosteriorLGSSMFiltered",
    "PosteriorLGSSMSmoothed", "utils",
]
__version__ = "0.1.0"
