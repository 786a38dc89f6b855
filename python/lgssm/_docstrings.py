"""Docstring sections shared by several functions, written once.

A docstring line ``%(name)s`` is replaced by the snippet ``name`` below, indented
like that line (scipy's ``doccer`` does the same), by the decorator ``shared``.
"""

from __future__ import annotations

_SNIPPETS = {
    "emissions": """\
emissions : array, shape (num_timesteps, emission_dim) or (num_sequences, num_timesteps, emission_dim), or list
    The observations, NaN where missing: one sequence, a NaN-padded batch, or a list of
    (num_timesteps_i, emission_dim) arrays.""",
    "inputs": """\
inputs : array, shape (num_timesteps, input_dim) or (num_sequences, num_timesteps, input_dim), or list, optional
    The inputs, laid out like ``emissions``; None means zeros.""",
    "times": """\
times : array, shape (num_timesteps,) or (num_sequences, num_timesteps), or list, optional
    The observation times, strictly increasing per sequence, laid out like the
    emissions without their last axis. Give ``times`` or ``dt``.
dt : float, optional
    A uniform step between observations (times 0, dt, 2 dt, ...).""",
    "jax_sequence": """\
model : lgssm.LinearGaussianSSM
    The model.
params : ParamsLGSSM
    Its parameters, a pytree of arrays (JAX arrays, tracers, NumPy arrays).
emissions : array, shape (num_timesteps, emission_dim)
    One sequence, NaN where missing (``jax.vmap`` for a batch).
inputs : array, shape (num_timesteps, input_dim), optional
    The inputs; None means zeros.""",
    "jax_no_derivative_raises": """\
ValueError
    If an array has the wrong shape (at trace time).
TypeError
    Under ``jax.grad`` (no derivative; see `lgssm.jax.marginal_log_prob`).""",
    "data_raises": """\
ValueError
    If the parameters or data have the wrong shape or are not real numbers.""",
    "times_raises": """\
ValueError
    If neither or both of ``times`` and ``dt`` are given, the times are not
    one per step, or the parameters or data are invalid.""",
    "progress": """\
verbose : bool, default True
    Show a progress bar on stderr.""",
    "summary": """\
return_summary : bool, default False
    Also return a `FitSummary`.""",
    "fit_raises": """\
ValueError
    If an option is out of range, no emission is observed, or the
    parameters, properties or data are invalid.""",
    "figure": """\
ax : matplotlib.axes.Axes, optional
    Where to draw; None for a new figure.""",
    "figure_path": """\
path : str or os.PathLike, optional
    Also save the figure there (atomically; the extension gives the format).""",
    "figure_returns": """\
matplotlib.figure.Figure
    The figure drawn on.""",
    "model_params_props": """\
model : LinearGaussianSSM or ContinuousTimeSSM
    The model.
params : ParamsLGSSM or ParamsCTSSM
    Its parameters.
props : ParamsLGSSM or ParamsCTSSM
    Their properties.""",
    "adam": """\
learning_rate : float, default 1e-3
    The step size.
b1 : float, default 0.9
    The decay rate of the first-moment estimate.
b2 : float, default 0.999
    The decay rate of the second-moment estimate.
eps : float, default 1e-8
    Added to the root of the second moment.""",
    "em_references": """\
.. [1] R. H. Shumway and D. S. Stoffer, "An approach to time series smoothing and
   forecasting using the EM algorithm", *J. Time Series Analysis* 3(4), 1982.""",
    "squarem_reference": """\
.. [2] R. Varadhan and C. Roland, "Simple and globally convergent methods for
   accelerating the convergence of any EM algorithm", *Scand. J. Statist.* 35(2), 2008.""",
}


def _fill(doc: str) -> str:
    lines = []
    for line in doc.split("\n"):
        stripped = line.strip()
        if stripped.startswith("%(") and stripped.endswith(")s"):
            indent = line[: len(line) - len(line.lstrip())]
            lines += [indent + s if s else s for s in _SNIPPETS[stripped[2:-2]].split("\n")]
        else:
            lines.append(line)
    return "\n".join(lines)


def shared(obj):
    """Fill the ``%(name)s`` lines of ``obj``'s docstring (a decorator; None under -OO stays None)."""
    if obj.__doc__:
        obj.__doc__ = _fill(obj.__doc__)
    return obj
