"""The optimizers of ``fit_sgd``: Adam in C++ (`adam`), or any optax optimizer.

`adam` gives the settings of the C++ Adam, the fast path. An optax
``GradientTransformation`` (``optax.adam``, ``sgd``, ``adamw``, ``chain(...)``,
learning-rate schedules) is stepped from the C++ driver instead: lgssm's exact
gradients of the minibatch loss over the unconstrained parameters feed its
``update``, run by JAX in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

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


class OptaxUpdate:
    """One step of an optax optimizer as the C++ SGD driver calls it: ``(grad, x) -> x``.

    The optimizer's state starts at ``optimizer.init(x)`` on the first call and is
    kept between calls; each step is ``x + updates`` for ``updates, state =
    optimizer.update(grad, state, x, value=loss)`` (optax's ``with_extra_args_support``
    passes ``value``, the minibatch loss, on to the transformations that take it, for
    example ``optax.contrib.reduce_on_plateau``). It runs jit-compiled with JAX's
    64-bit mode enabled for the step only, so the iterates stay float64 whatever the
    caller's JAX setting.

    Parameters
    ----------
    optimizer : optax.GradientTransformation
        The optimizer.

    Raises
    ------
    ImportError
        If JAX or optax cannot be imported (the extra ``lgssm[jax]``).
    """

    def __init__(self, optimizer: Any):
        try:
            import jax
            import optax
        except ImportError as err:
            raise ImportError(f"an optax optimizer needs JAX and optax: pip install 'lgssm[jax]' ({err})") from None
        self._jax = jax
        transformation = optax.with_extra_args_support(optimizer)
        self._init = transformation.init
        self._state: Any = None

        def step(grad, state, x, loss):
            updates, state = transformation.update(grad, state, x, value=loss)
            return x + updates, state

        self._step = jax.jit(step)

    def __call__(self, grad: np.ndarray, x: np.ndarray, loss: float) -> np.ndarray:
        """Take one step from ``x`` against the gradient ``grad`` of the minibatch loss ``loss``.

        Parameters
        ----------
        grad : array, shape (num_unconstrained,)
            The minibatch loss's gradient at ``x``.
        x : array, shape (num_unconstrained,)
            The unconstrained parameters.
        loss : float
            The minibatch loss at ``x``.

        Returns
        -------
        array, shape (num_unconstrained,)
            The parameters after the step, float64.
        """
        jnp = self._jax.numpy
        with self._jax.enable_x64(True):
            x = jnp.asarray(x, dtype=jnp.float64)
            if self._state is None:
                self._state = self._init(x)
            x, self._state = self._step(jnp.asarray(grad, dtype=jnp.float64), self._state, x, loss)
            return np.asarray(x, dtype=np.float64)


def core_step(optimizer: Any) -> tuple[_core.AdamOptions, Callable | None]:
    """The C++ SGD driver's settings of ``fit_sgd``'s ``optimizer`` argument.

    Parameters
    ----------
    optimizer : Adam, optax.GradientTransformation or None
        From `adam` (None for ``adam()``), or an optax optimizer.

    Returns
    -------
    adam : lgssm._core.AdamOptions
        The C++ Adam's settings (the defaults for an optax optimizer, which replaces it).
    update : OptaxUpdate or None
        The optax optimizer's step; None for Adam in C++.

    Raises
    ------
    ValueError
        If ``optimizer`` is neither.
    """
    if optimizer is None or isinstance(optimizer, Adam):
        return (optimizer or adam()).core_options(), None
    if callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None)):
        return _core.AdamOptions(), OptaxUpdate(optimizer)
    raise ValueError(
        "optimizer: expected lgssm.optimizers.adam(...) or an optax GradientTransformation, "
        f"got {type(optimizer).__name__}"
    )
