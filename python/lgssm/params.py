"""Parameters and parameter properties of a linear Gaussian SSM.

Names follow dynamax: ``params.initial.mean``, ``params.dynamics.weights``,
``params.emissions.cov`` and so on. Every field is a float64 NumPy array. A
parameter may carry a leading time axis (time-varying); see docs/conventions.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._checks import flag, real_array


@dataclass
class ParameterProperties:
    """How a parameter is fitted (dynamax's ``ParameterProperties``).

    Parameters
    ----------
    trainable : bool, default True
        False freezes the parameter in every fit.
    constrainer : object, optional
        Exists for dynamax compatibility and is not used.
    structure : str, default "full"
        For a covariance: ``"full"``, ``"diagonal"`` or ``"scalar"`` (c I), kept by every fit.
    constraint : lgssm.constraints.Constraint, optional
        For a trainable parameter: the entries a fit changes
        (`lgssm.constraints.pattern`, `lgssm.constraints.linear`, and for a
        covariance `lgssm.constraints.diagonal`, `equalvarcov`, `unconstrained`,
        `block_diagonal`); None (default) frees every entry. A covariance's
        constraint replaces its ``structure`` (leave it "full").
    """

    trainable: bool = True
    constrainer: Any = None
    structure: str = "full"
    constraint: Any = None


@dataclass
class ParamsLGSSMInitial:
    """The initial state's distribution, z_0 ~ N(mean, cov).

    Parameters
    ----------
    mean : array, shape (state_dim,)
        m.
    cov : array, shape (state_dim, state_dim)
        S, symmetric positive semidefinite.
    """

    mean: Any  # (state_dim,)
    cov: Any  # (state_dim, state_dim)


@dataclass
class ParamsLGSSMDynamics:
    """The dynamics, z_t ~ N(weights z_{t-1} + input_weights u_t + bias, cov).

    Each field may carry a leading (num_timesteps - 1,) axis: one entry per
    transition (time-varying; docs/conventions.md).

    Parameters
    ----------
    weights : array, shape (state_dim, state_dim)
        F.
    bias : array, shape (state_dim,)
        b.
    input_weights : array, shape (state_dim, input_dim)
        B.
    cov : array, shape (state_dim, state_dim)
        Q, symmetric positive semidefinite.
    """

    weights: Any  # (state_dim, state_dim) or (num_timesteps - 1, state_dim, state_dim)
    bias: Any  # (state_dim,) or (num_timesteps - 1, state_dim)
    input_weights: Any  # (state_dim, input_dim) or (num_timesteps - 1, state_dim, input_dim)
    cov: Any  # (state_dim, state_dim) or (num_timesteps - 1, state_dim, state_dim)


@dataclass
class ParamsLGSSMEmissions:
    """The emissions, y_t ~ N(weights z_t + input_weights u_t + bias, cov).

    Each field may carry a leading (num_timesteps,) axis: one entry per time
    step (time-varying).

    Parameters
    ----------
    weights : array, shape (emission_dim, state_dim)
        H.
    bias : array, shape (emission_dim,)
        d.
    input_weights : array, shape (emission_dim, input_dim)
        D.
    cov : array, shape (emission_dim, emission_dim)
        R, symmetric positive semidefinite.
    """

    weights: Any  # (emission_dim, state_dim) or (num_timesteps, emission_dim, state_dim)
    bias: Any  # (emission_dim,) or (num_timesteps, emission_dim)
    input_weights: Any  # (emission_dim, input_dim) or (num_timesteps, emission_dim, input_dim)
    cov: Any  # (emission_dim, emission_dim) or (num_timesteps, emission_dim, emission_dim)


@dataclass
class ParamsLGSSM:
    """The parameters of a `lgssm.LinearGaussianSSM` (dynamax's ``ParamsLGSSM``).

    The same class, with a `ParameterProperties` in every field, holds the
    properties.

    Parameters
    ----------
    initial : ParamsLGSSMInitial
        The initial state.
    dynamics : ParamsLGSSMDynamics
        The transitions.
    emissions : ParamsLGSSMEmissions
        The observations.
    """

    initial: ParamsLGSSMInitial
    dynamics: ParamsLGSSMDynamics
    emissions: ParamsLGSSMEmissions


def _default_props(group) -> Any:
    return type(group)(**{f.name: ParameterProperties() for f in dataclasses.fields(group)})


def default_props(params: ParamsLGSSM) -> ParamsLGSSM:
    """Make properties with every parameter trainable, shaped like ``params``.

    Parameters
    ----------
    params : ParamsLGSSM
        The parameters.

    Returns
    -------
    ParamsLGSSM
        A default `ParameterProperties` in every field.
    """
    return ParamsLGSSM(
        initial=_default_props(params.initial),
        dynamics=_default_props(params.dynamics),
        emissions=_default_props(params.emissions),
    )


def shapes(n: int, p: int, m: int) -> dict:
    """Give the shape of one entry of each parameter.

    Parameters
    ----------
    n : int
        state_dim.
    p : int
        emission_dim.
    m : int
        input_dim.

    Returns
    -------
    dict
        ``"initial.mean"``, ``"dynamics.weights"``, ... -> shape tuple.
    """
    return {
        "initial.mean": (n,),
        "initial.cov": (n, n),
        "dynamics.weights": (n, n),
        "dynamics.bias": (n,),
        "dynamics.input_weights": (n, m),
        "dynamics.cov": (n, n),
        "emissions.weights": (p, n),
        "emissions.bias": (p,),
        "emissions.input_weights": (p, m),
        "emissions.cov": (p, p),
    }


def _array(name: str, value, entry_shape: tuple, per_step: bool) -> np.ndarray:
    """``value`` as float64, checked to be one entry of ``entry_shape`` or (with
    ``per_step``) a stack of them."""
    a = real_array(name, value)
    if a.shape == entry_shape or (per_step and a.shape[1:] == entry_shape and a.ndim == len(entry_shape) + 1):
        return a
    expected = f"{entry_shape}" + (f" or (num_steps, {', '.join(map(str, entry_shape))})" if per_step else "")
    raise ValueError(f"{name}: expected shape {expected}, got {a.shape}")


def groups(name: str, value, names: tuple) -> list:
    """Get the groups ``names`` of a parameter or property dataclass.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : object
        The dataclass, as from ``model.initialize()``.
    names : tuple of str
        The group names, e.g. ``("initial", "dynamics", "emissions")``.

    Returns
    -------
    list
        The groups, in the order of ``names``.

    Raises
    ------
    ValueError
        Naming ``name``, if ``value`` lacks one of the groups (None or another object).
    """
    missing = [g for g in names if not hasattr(value, g)]
    if missing:
        raise ValueError(
            f"{name}: expected the dataclass with groups {', '.join(names)} returned by "
            f"model.initialize(), got {type(value).__name__}"
        )
    return [getattr(value, g) for g in names]


def param_groups(params) -> list[tuple[str, Any]]:
    """List every group of a parameter or property dataclass, whatever the model kind.

    Parameters
    ----------
    params : dataclass
        As from ``model.initialize()``.

    Returns
    -------
    list of (str, object)
        (name, group) in field order.

    Raises
    ------
    ValueError
        If ``params`` is not a dataclass.
    """
    if not dataclasses.is_dataclass(params):
        raise ValueError(f"params: expected the parameter dataclass of model.initialize(), got {type(params).__name__}")
    return [(f.name, getattr(params, f.name)) for f in dataclasses.fields(params)]


def field_names(group) -> list[str]:
    """List the entry names of one group of `param_groups`.

    Parameters
    ----------
    group : dataclass
        One group, e.g. ``params.dynamics``.

    Returns
    -------
    list of str
        ``mean``, ``cov``, ``weights``, ... in field order.
    """
    return [f.name for f in dataclasses.fields(group)]


def core_conditional(prefix: str, group, shapes: dict) -> _core.LinearGaussianParams:
    """Convert one conditional (dynamics or emissions) for the C++ core, checking its shapes.

    Parameters
    ----------
    prefix : str
        ``"dynamics"`` or ``"emissions"``.
    group : ParamsLGSSMDynamics or ParamsLGSSMEmissions
        The conditional's parameters.
    shapes : dict
        From `shapes`.

    Returns
    -------
    lgssm._core.LinearGaussianParams
        Each field a (num_entries, rows, cols) stack (the bias a column).

    Raises
    ------
    ValueError
        Naming the parameter whose shape or values are wrong.
    """
    out = _core.LinearGaussianParams()
    for name in ("weights", "bias", "input_weights", "cov"):
        key = f"{prefix}.{name}"
        a = _array(key, getattr(group, name, None), shapes[key], per_step=True)
        stack = a[None] if a.ndim == len(shapes[key]) else a
        if name == "bias":
            stack = stack[:, :, None]
        setattr(out, name, np.ascontiguousarray(stack))
    return out


def core_initial(initial: ParamsLGSSMInitial, shapes: dict) -> tuple[np.ndarray, np.ndarray]:
    """Check the initial state's parameters and convert them to float64.

    Parameters
    ----------
    initial : ParamsLGSSMInitial
        The initial state.
    shapes : dict
        From `shapes`.

    Returns
    -------
    mean : array, shape (state_dim,)
        The mean.
    cov : array, shape (state_dim, state_dim)
        The covariance.

    Raises
    ------
    ValueError
        Naming the parameter whose shape or values are wrong.
    """
    return (
        _array("initial.mean", getattr(initial, "mean", None), shapes["initial.mean"], per_step=False),
        _array("initial.cov", getattr(initial, "cov", None), shapes["initial.cov"], per_step=False),
    )


def initialization_factor(initialization, state_dim: int) -> np.ndarray:
    """The factor A of the diffuse part P_inf = A A^T of an initialization.

    Parameters
    ----------
    initialization : {"known", "diffuse"} or array, shape (state_dim, q)
        ``"known"``: no diffuse part; ``"diffuse"``: all directions (A = I); an array: A.
    state_dim : int
        The model's state dimension.

    Returns
    -------
    array, shape (state_dim, q)
        A, float64 (q = 0 for ``"known"``).

    Raises
    ------
    ValueError
        If ``initialization`` is another string, or an array of the wrong shape or not finite.
    """
    if isinstance(initialization, str):
        if initialization == "known":
            return np.zeros((state_dim, 0))
        if initialization == "diffuse":
            return np.eye(state_dim)
        raise ValueError(
            f'initialization: expected "known", "diffuse" or an array (state_dim, q), got {initialization!r}'
        )
    a = real_array("initialization", initialization)
    if a.ndim != 2 or a.shape[0] != state_dim or not np.isfinite(a).all():
        raise ValueError(
            f"initialization: expected a finite array of shape (state_dim = {state_dim}, q), "
            f"got shape {a.shape}" + ("" if np.isfinite(a).all() else " with non-finite entries")
        )
    return np.ascontiguousarray(a, dtype=np.float64)


def stationary_initialization(weights, cov) -> np.ndarray:
    """The stationary covariance P of z_t = F z_{t-1} + noise(Q): P = F P F^T + Q.

    Solved by the doubling algorithm in the C++ core (a sum of semidefinite terms, so P
    is semidefinite); use it as ``initial_covariance`` of a stationary model, or of the
    stationary block of a model whose other states are diffuse (docs/initialization.md).
    It is computed once: a fit does not track it as F and Q change.

    Parameters
    ----------
    weights : array, shape (state_dim, state_dim)
        F, stable (all eigenvalues inside the unit circle).
    cov : array, shape (state_dim, state_dim)
        Q, symmetric positive semidefinite.

    Returns
    -------
    array, shape (state_dim, state_dim)
        P.

    Raises
    ------
    ValueError
        If F is not square and stable or Q not a covariance of F's size.
    """
    f = np.atleast_2d(real_array("weights", weights))
    q = np.atleast_2d(real_array("cov", cov))
    return np.asarray(_core.stationary_initial(f, q))


def to_core(
    params: ParamsLGSSM, state_dim: int, emission_dim: int, input_dim: int, diffuse: np.ndarray | None = None
) -> _core.Params:
    """Check ``params`` against the model's dimensions and convert them for the C++ core.

    Parameters
    ----------
    params : ParamsLGSSM
        The parameters.
    state_dim, emission_dim, input_dim : int
        The model's dimensions.
    diffuse : array, shape (state_dim, q), optional
        The factor A of the diffuse initial part P_inf = A A^T (`initialization_factor`);
        None or q = 0: a known initial distribution.

    Returns
    -------
    lgssm._core.Params
        The validated parameters, each entry a (num_entries, rows, cols) stack.

    Raises
    ------
    ValueError
        Naming the parameter whose shape or values are wrong (e.g. a covariance
        that is not symmetric positive semidefinite).
    """
    table = shapes(state_dim, emission_dim, input_dim)
    initial, dynamics, emissions = groups("params", params, ("initial", "dynamics", "emissions"))
    core = _core.Params(
        *core_initial(initial, table),
        core_conditional("dynamics", dynamics, table),
        core_conditional("emissions", emissions, table),
        np.zeros((state_dim, 0)) if diffuse is None else diffuse,
    )
    core.validate()
    return core


_STRUCTURES = {
    "full": _core.CovStructure.full,
    "diagonal": _core.CovStructure.diagonal,
    "scalar": _core.CovStructure.scalar,
}


def core_structure(name: str, prop: ParameterProperties):
    """Convert a covariance's structure to the core's ``CovStructure``.

    Parameters
    ----------
    name : str
        The parameter's name, for the error message.
    prop : ParameterProperties
        Its properties.

    Returns
    -------
    lgssm._core.CovStructure
        ``full``, ``diagonal`` or ``scalar``.

    Raises
    ------
    ValueError
        If ``prop.structure`` is not one of those names.
    """
    structure = getattr(prop, "structure", None)
    if not isinstance(structure, str) or structure not in _STRUCTURES:
        raise ValueError(f"props.{name}.structure: expected one of {sorted(_STRUCTURES)}, got {structure!r}")
    return _STRUCTURES[structure]


def project_covariance(cov, structure: str) -> np.ndarray:
    """The matrix of a covariance structure nearest to ``cov``, as the M-step projects.

    The nearest in the Frobenius norm: (cov + cov^T) / 2 for "full", the diagonal
    of ``cov`` for "diagonal", the mean of that diagonal times I for "scalar" (the
    C++ core's ``lgssm::project``).

    Parameters
    ----------
    cov : array_like
        (dim, dim), or a stack (num_steps, dim, dim) projected entry by entry.
    structure : {"full", "diagonal", "scalar"}
        The structure, as ``ParameterProperties.structure`` names it.

    Returns
    -------
    numpy.ndarray
        The projection, shaped like ``cov``.

    Raises
    ------
    ValueError
        When ``structure`` is none of the three, or ``cov`` is neither a square
        matrix nor a stack of them.
    """
    if not isinstance(structure, str) or structure not in _STRUCTURES:
        raise ValueError(f"structure: expected one of {sorted(_STRUCTURES)}, got {structure!r}")
    a = real_array("cov", cov)
    if a.ndim == 2:
        return np.asarray(_core.project_covariance(a, _STRUCTURES[structure]))
    if a.ndim == 3:
        return np.stack([_core.project_covariance(c, _STRUCTURES[structure]) for c in a])
    raise ValueError(f"cov: expected shape (dim, dim) or (num_steps, dim, dim), got shape {a.shape}")


def trainable(name: str, prop) -> bool:
    """Read ``prop.trainable``, which must be a bool.

    Parameters
    ----------
    name : str
        The parameter's name, for the error message.
    prop : ParameterProperties
        Its properties.

    Returns
    -------
    bool
        Whether the parameter is fitted.

    Raises
    ------
    ValueError
        If ``prop`` is not a `ParameterProperties` or ``trainable`` not a bool.
    """
    if not hasattr(prop, "trainable"):
        raise ValueError(f"props.{name}: expected a ParameterProperties, got {type(prop).__name__}")
    return flag(f"props.{name}.trainable", prop.trainable)


def core_constraint(name: str, prop):
    """The core's form of ``prop.constraint`` (None when there is none).

    Parameters
    ----------
    name : str
        The parameter's name, for error messages.
    prop : ParameterProperties
        Its properties.

    Returns
    -------
    lgssm._core.Affine or None
        The constraint's ``fixed`` and ``design``.

    Raises
    ------
    ValueError
        If the constraint is not a `lgssm.constraints.Constraint`.
    """
    from .constraints import Constraint

    c = getattr(prop, "constraint", None)
    if c is None:
        return None
    if not isinstance(c, Constraint):
        raise ValueError(
            f"props.{name}.constraint: expected an lgssm.constraints.Constraint "
            f"(lgssm.constraints.pattern or linear) or None, got {type(c).__name__}"
        )
    return c.to_core()


def core_initial_props(props) -> _core.InitialProps:
    """Convert the initial state's properties for the C++ core.

    Parameters
    ----------
    props : ParamsLGSSM or ParamsCTSSM
        Properties with an ``initial`` group.

    Returns
    -------
    lgssm._core.InitialProps
        Trainable flags and the covariance structure.

    Raises
    ------
    ValueError
        If a property is missing or invalid.
    """
    out = _core.InitialProps()
    (initial,) = groups("props", props, ("initial",))
    out.mean = trainable("initial.mean", getattr(initial, "mean", None))
    out.cov = trainable("initial.cov", getattr(initial, "cov", None))
    out.cov_structure = core_structure("initial.cov", initial.cov)
    out.mean_constraint = core_constraint("initial.mean", initial.mean)
    out.cov_constraint = core_constraint("initial.cov", initial.cov)
    return out


def core_conditional_props(prefix: str, group) -> _core.ConditionalProps:
    """Convert one conditional's properties for the C++ core.

    Parameters
    ----------
    prefix : str
        ``"dynamics"`` or ``"emissions"``, for error messages.
    group : ParamsLGSSMDynamics or ParamsLGSSMEmissions
        Holding a `ParameterProperties` per field.

    Returns
    -------
    lgssm._core.ConditionalProps
        Trainable flags and the covariance structure.

    Raises
    ------
    ValueError
        If a property is missing or invalid.
    """
    out = _core.ConditionalProps()
    for name in ("weights", "bias", "input_weights", "cov"):
        setattr(out, name, trainable(f"{prefix}.{name}", getattr(group, name, None)))
    out.cov_structure = core_structure(f"{prefix}.cov", group.cov)
    for name in ("weights", "bias", "input_weights", "cov"):
        setattr(out, f"{name}_constraint", core_constraint(f"{prefix}.{name}", getattr(group, name)))
    return out


def props_to_core(props: ParamsLGSSM) -> _core.ParamProps:
    """Convert parameter properties for the C++ core.

    Parameters
    ----------
    props : ParamsLGSSM
        A `ParameterProperties` in every field.

    Returns
    -------
    lgssm._core.ParamProps
        The core's properties.

    Raises
    ------
    ValueError
        If a property is missing or invalid.
    """
    out = _core.ParamProps()
    _, dynamics, emissions = groups("props", props, ("initial", "dynamics", "emissions"))
    out.initial = core_initial_props(props)
    out.dynamics = core_conditional_props("dynamics", dynamics)
    out.emissions = core_conditional_props("emissions", emissions)
    return out


def from_core(core: _core.Params, like: ParamsLGSSM) -> ParamsLGSSM:
    """Convert the C++ core's parameters back, shaped like ``like``.

    Parameters
    ----------
    core : lgssm._core.Params
        The core's parameters.
    like : ParamsLGSSM
        A parameter given without a time axis comes back without one.

    Returns
    -------
    ParamsLGSSM
        Float64 NumPy arrays.
    """

    return ParamsLGSSM(
        initial=ParamsLGSSMInitial(mean=np.array(core.initial_mean), cov=np.array(core.initial_cov)),
        dynamics=conditional_from_core(core.dynamics, like.dynamics, ParamsLGSSMDynamics),
        emissions=conditional_from_core(core.emissions, like.emissions, ParamsLGSSMEmissions),
    )


def stack_params(samples: list[ParamsLGSSM]) -> ParamsLGSSM:
    """Stack parameters of one shape into one whose fields have a leading (num_samples,) axis.

    Parameters
    ----------
    samples : list of ParamsLGSSM
        At least one, all shaped alike.

    Returns
    -------
    ParamsLGSSM
        Field by field, ``np.stack`` of the samples' arrays.
    """

    def group(name: str):
        like = getattr(samples[0], name)
        return type(like)(
            **{f.name: np.stack([getattr(getattr(s, name), f.name) for s in samples]) for f in dataclasses.fields(like)}
        )

    return ParamsLGSSM(initial=group("initial"), dynamics=group("dynamics"), emissions=group("emissions"))


def conditional_from_core(src: _core.LinearGaussianParams, like, cls):
    """Convert a conditional from the core's stacks, each shaped like its counterpart in ``like``.

    Parameters
    ----------
    src : lgssm._core.LinearGaussianParams
        The core's (num_entries, rows, cols) stacks.
    like : ParamsLGSSMDynamics or ParamsLGSSMEmissions
        The template for the shapes.
    cls : type
        The dataclass to build.

    Returns
    -------
    ParamsLGSSMDynamics or ParamsLGSSMEmissions
        An instance of ``cls``.
    """

    def shaped(name: str, stack: np.ndarray, template) -> np.ndarray:
        a = stack[:, :, 0] if name == "bias" else stack  # (K, rows, 1) -> (K, rows)
        return a[0] if np.ndim(template) < a.ndim else a

    return cls(
        **{
            name: shaped(name, np.array(getattr(src, name)), getattr(like, name))
            for name in ("weights", "bias", "input_weights", "cov")
        }
    )
