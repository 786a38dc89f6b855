"""Online inference: the Kalman filter's state for streams and the fixed-lag smoother.

``LinearGaussianSSM.filter_init``, ``filter_step``, ``predict_step`` and
``fixed_lag_smoother`` make and advance these objects; the numerics are those of
the batch filter and smoother (the C++ core's ``lgssm/streaming.hpp``), run one
observation at a time. Step t uses emission entry t and dynamics entry t - 1 of
per-step parameters, and u_t drives the transition into step t and the emission
at step t (the time index of :doc:`../conventions`), so stepping through a
sequence gives exactly what ``filter`` and ``smoother`` give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._checks import count, memory, real_array

__all__ = ["Stream", "FilterState", "FixedLagSmoother"]

_NO_INPUT = np.zeros(0)  # the core reads an empty input as zeros
_FLOAT64 = np.dtype(np.float64)


def vector(name: str, value, size: int, optional: bool = False) -> np.ndarray:
    """One step's data as a 1-D float64 array (the core checks its length and values).

    Parameters
    ----------
    name : str
        The argument's name, for the messages.
    value : array_like, shape (size,)
        The values; None when ``optional`` (then zeros).
    size : int
        The expected length, for the messages.
    optional : bool, default False
        Whether None is allowed.

    Returns
    -------
    numpy.ndarray
        ``value`` itself when it is already a 1-D float64 array (no copy), or a converted copy.

    Raises
    ------
    ValueError
        If ``value`` is not real or not one-dimensional.
    """
    if type(value) is np.ndarray and value.dtype is _FLOAT64 and value.ndim == 1:
        return value
    if value is None and optional:
        return _NO_INPUT
    a = real_array(name, value)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected shape ({size},), got shape {a.shape}")
    return a


class Stream:
    """The steps taken and log p(y) so far: what `FilterState` and `FixedLagSmoother` both report."""

    __slots__ = ()
    _core: Any  # the C++ object (a slot of the subclasses)

    @property
    def num_timesteps(self) -> int:
        """The number of steps taken, which is the index t of the next step."""
        return self._core.num_timesteps

    @property
    def marginal_loglik(self) -> float:
        """The log likelihood log p(y_{0:t-1}) over the observed entries of the t steps taken (0 before the first)."""
        return self._core.marginal_loglik


class FilterState(Stream):
    """The Kalman filter's state between the observations of a stream.

    Made by ``LinearGaussianSSM.filter_init`` and advanced in place by
    ``filter_step`` and ``predict_step`` (which return it too, so that
    ``state, ll = model.filter_step(params, state, y_t)`` reads as in JAX). After t
    steps it holds the filtered moments of z_{t-1} given y_{0:t-1}, the number of
    steps t (the index of the next step) and log p(y_{0:t-1}), with the workspaces
    of a step. ``copy.copy(state)`` is an independent snapshot; states pickle.

    Parameters
    ----------
    core : lgssm._core.FilterState
        The C++ state.
    """

    __slots__ = ("_core", "_params", "_core_params")

    def __init__(self, core: Any):
        self._core = core
        self._params: Any = None  # the ParamsLGSSM last stepped with and their core copy
        self._core_params: Any = None

    @property
    def filtered_mean(self) -> np.ndarray:
        """E[z_{t-1} | y_{0:t-1}], shape (state_dim,); ``initial.mean`` before the first step."""
        return self._core.filtered_mean

    @property
    def filtered_covariance(self) -> np.ndarray:
        """Cov[z_{t-1} | y_{0:t-1}], shape (state_dim, state_dim); ``initial.cov`` before the first step."""
        return self._core.filtered_covariance

    def _converted(self, model, params) -> Any:
        """The core's parameters of ``params``, converted (and validated) once per params object.

        Parameters
        ----------
        model : LinearGaussianSSM
            The model of ``params``.
        params : ParamsLGSSM
            The parameters of this step.

        Returns
        -------
        lgssm._core.Params
            The converted parameters; the same object while ``params`` is the same
            object, so arrays of ``params`` changed in place are not seen: pass a new
            ``ParamsLGSSM`` (e.g. from ``dataclasses.replace``) to change them.
        """
        if params is not self._params:
            self._core_params = model.core_params(params)
            self._params = params
        return self._core_params

    def __copy__(self) -> FilterState:
        """Return an independent copy of the state.

        Returns
        -------
        FilterState
            The copy.
        """
        return FilterState(self._core.__copy__())

    def __deepcopy__(self, memo) -> FilterState:
        """Return an independent copy of the state.

        Parameters
        ----------
        memo : dict
            ``copy.deepcopy``'s memo.

        Returns
        -------
        FilterState
            The copy.
        """
        return self.__copy__()

    def __getstate__(self):
        """Return what pickling keeps: the C++ state.

        Returns
        -------
        lgssm._core.FilterState
            The C++ state (it pickles as its dimensions, step count, log likelihood and moments).
        """
        return self._core

    def __setstate__(self, core):
        """Restore a pickled state.

        Parameters
        ----------
        core : lgssm._core.FilterState
            What ``__getstate__`` returned.
        """
        self.__init__(core)

    def __repr__(self) -> str:
        return f"FilterState(num_timesteps={self.num_timesteps}, state_dim={self._core.state_dim})"


class FixedLagSmoother(Stream):
    """The fixed-lag smoother of a stream: smoothed moments over the last ``lag`` + 1 steps.

    Made by ``LinearGaussianSSM.fixed_lag_smoother``. After ``step`` observes y_t
    it holds p(z_s | y_{0:t}) for the window s = max(0, t - lag) .. t, exactly what
    ``smoother`` returns for y_{0:t} at those steps: each step runs the filter's
    step, then the batch smoother's backward recursion over the window (O(lag
    state_dim^3) per step, memory O(lag state_dim^2)).

    Parameters
    ----------
    core : lgssm._core.FixedLagSmoother
        The C++ smoother.
    emission_dim, input_dim : int
        The model's dimensions, for the messages.
    """

    __slots__ = ("_core", "_emission_dim", "_input_dim")

    def __init__(self, core: Any, emission_dim: int, input_dim: int):
        self._core = core
        self._emission_dim = emission_dim
        self._input_dim = input_dim

    def step(self, emission, input=None) -> tuple[np.ndarray, np.ndarray]:
        """Observe the next step t and return the smoothed moments of z_{t-lag}.

        Parameters
        ----------
        emission : array, shape (emission_dim,)
            y_t, NaN where missing (all NaN: a step without observation).
        input : array, shape (input_dim,), optional
            u_t; None means zeros.

        Returns
        -------
        mean : array, shape (state_dim,)
            E[z_{t-lag} | y_{0:t}] (of z_0 while t < lag).
        covariance : array, shape (state_dim, state_dim)
            Cov[z_{t-lag} | y_{0:t}].

        Raises
        ------
        ValueError
            If ``emission`` or ``input`` has the wrong shape or infinite values.
        """
        self._core.step(
            vector("emission", emission, self._emission_dim), vector("input", input, self._input_dim, optional=True)
        )
        return self._core.lagged_mean, self._core.lagged_covariance

    @property
    def lag(self) -> int:
        """The lag L: the steps smoothed behind the latest observation."""
        return self._core.lag

    @property
    def window_start(self) -> int:
        """The first step s0 = max(0, t - lag) of the window."""
        return self._core.window_start

    @property
    def smoothed_means(self) -> np.ndarray:
        """E[z_s | y_{0:t}] for s = window_start .. t, shape (window_size, state_dim)."""
        return self._core.smoothed_means

    @property
    def smoothed_covariances(self) -> np.ndarray:
        """Cov[z_s | y_{0:t}] for s = window_start .. t, shape (window_size, state_dim, state_dim)."""
        return self._core.smoothed_covariances

    def __copy__(self) -> FixedLagSmoother:
        """Return an independent copy of the smoother.

        Returns
        -------
        FixedLagSmoother
            The copy.
        """
        return FixedLagSmoother(self._core.__copy__(), self._emission_dim, self._input_dim)

    def __repr__(self) -> str:
        return f"FixedLagSmoother(lag={self.lag}, num_timesteps={self.num_timesteps})"


def filter_init(model, params) -> FilterState:
    """Start a stream for ``model``: ``LinearGaussianSSM.filter_init``."""
    state = FilterState(None)
    # The converted params stay alive in `state` while they are used: the core may key its cached
    # emission factors on their address (no per-step comparison of values).
    state._core = _core.filter_init(state._converted(model, params), False)
    return state


def fixed_lag_smoother(model, params, lag) -> FixedLagSmoother:
    """Make a fixed-lag smoother for ``model``: ``LinearGaussianSSM.fixed_lag_smoother``."""
    lag = count("lag", lag, 0)
    n = model.state_dim
    memory("lag", lag, (lag + 1) * (4 * n * n + 3 * n), "the smoother's window of lag + 1 steps")
    core = _core.FixedLagSmoother(model.core_params(params), lag)
    return FixedLagSmoother(core, model.emission_dim, model.input_dim)


def checked_state(state) -> FilterState:
    """Return ``state`` if it is a `FilterState`, else raise a ValueError naming it."""
    if type(state) is not FilterState:
        raise ValueError(f"state: expected the FilterState of model.filter_init(params), got {type(state).__name__}")
    return state


def filter_step(model, params, state, emission, input=None) -> tuple[FilterState, float]:
    """Advance ``state`` by one observation: ``LinearGaussianSSM.filter_step``."""
    core = checked_state(state)._converted(model, params)
    y = vector("emission", emission, model.emission_dim)
    ll = _core.filter_step(core, state._core, y, vector("input", input, model.input_dim, optional=True))
    return state, ll


def predict_step(model, params, state, input=None) -> FilterState:
    """Advance ``state`` by one step without observation: ``LinearGaussianSSM.predict_step``."""
    core = checked_state(state)._converted(model, params)
    _core.predict_step(core, state._core, vector("input", input, model.input_dim, optional=True))
    return state
