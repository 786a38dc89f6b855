"""Optimizer settings for ``fit_sgd`` (the optimizer itself runs in C++)."""

from __future__ import annotations

from dataclasses import dataclass

from . import _core
from ._docstrings import shared
from ._fitting import core_options


@shared
@dataclass(frozen=True)
class Adam:
    """The settings of Adam, with optax's defaults.

    Parameters
    ----------
    %(adam)s

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: a method for stochastic optimization", ICLR 2015.
    """

    learning_rate: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def core_options(self) -> _core.AdamOptions:
        """Make the C++ core's options of these settings.

        Returns
        -------
        lgssm._core.AdamOptions
            The same four settings, for the core's SGD options.
        """
        return core_options(_core.AdamOptions, learning_rate=self.learning_rate, b1=self.b1, b2=self.b2, eps=self.eps)


@shared
def adam(learning_rate: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Adam:
    """Make Adam's settings, as ``optax.adam(learning_rate, b1, b2, eps)``.

    Parameters
    ----------
    %(adam)s

    Returns
    -------
    Adam
        For ``fit_sgd(optimizer=...)``.
    """
    return Adam(float(learning_rate), float(b1), float(b2), float(eps))
