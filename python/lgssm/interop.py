"""Parameters to and from dynamax.

dynamax's ``ParamsLGSSM`` holds the same numbers as lgssm's under the same names
(initial.mean, initial.cov; dynamics and emissions weights, bias, input_weights,
cov), as JAX arrays. These two functions convert between them; they need JAX and
dynamax (the ``peers`` extra), which lgssm itself never imports otherwise.
"""

from __future__ import annotations

import numpy as np

from .params import ParamsLGSSM, ParamsLGSSMDynamics, ParamsLGSSMEmissions, ParamsLGSSMInitial

_FIELDS = ("weights", "bias", "input_weights", "cov")


def _dynamax_inference():
    try:
        import jax.numpy as jnp
        from dynamax.linear_gaussian_ssm import inference
    except ImportError as err:
        raise ImportError(
            f"lgssm.interop needs JAX and dynamax ({err}); install them with pip install 'lgssm[peers]'"
        ) from err
    return jnp, inference


def to_dynamax(params: ParamsLGSSM):
    """Convert lgssm's parameters to dynamax's ``ParamsLGSSM``.

    Parameters
    ----------
    params : ParamsLGSSM
        lgssm's parameters.

    Returns
    -------
    dynamax.linear_gaussian_ssm.ParamsLGSSM
        The same numbers as JAX arrays in JAX's default float type (enable
        ``jax_enable_x64`` for float64).

    Raises
    ------
    ImportError
        If JAX or dynamax is not installed.
    """
    jnp, dx = _dynamax_inference()

    def group(src, cls):
        return cls(**{k: jnp.asarray(getattr(src, k)) for k in _FIELDS})

    return dx.ParamsLGSSM(
        initial=dx.ParamsLGSSMInitial(mean=jnp.asarray(params.initial.mean), cov=jnp.asarray(params.initial.cov)),
        dynamics=group(params.dynamics, dx.ParamsLGSSMDynamics),
        emissions=group(params.emissions, dx.ParamsLGSSMEmissions),
    )


def from_dynamax(params) -> ParamsLGSSM:
    """Convert dynamax's ``ParamsLGSSM`` to lgssm's.

    Parameters
    ----------
    params : dynamax.linear_gaussian_ssm.ParamsLGSSM
        dynamax's parameters.

    Returns
    -------
    ParamsLGSSM
        The same numbers as float64 NumPy arrays.
    """

    def group(src, cls):
        return cls(**{k: np.asarray(getattr(src, k), dtype=np.float64) for k in _FIELDS})

    return ParamsLGSSM(
        initial=ParamsLGSSMInitial(
            mean=np.asarray(params.initial.mean, dtype=np.float64), cov=np.asarray(params.initial.cov, dtype=np.float64)
        ),
        dynamics=group(params.dynamics, ParamsLGSSMDynamics),
        emissions=group(params.emissions, ParamsLGSSMEmissions),
    )
