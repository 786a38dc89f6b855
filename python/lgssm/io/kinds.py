"""Model kinds: which model classes a model file can hold, and how each maps to the JSON header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ModelKind:
    """A model class as stored in a model file.

    Parameters and their properties are whatever ``model.initialize()``
    returns: dataclasses of groups of arrays, walked field by field, so a kind
    with other parameter names (``dynamics.drift``, ``dynamics.diffusion_cov``)
    needs no other code.

    Parameters
    ----------
    name : str
        The file's ``"kind"``.
    model_class : callable
        Returns the class (a callable, so that a class the installed lgssm lacks
        costs nothing until it is needed).
    dims : tuple of str, default ("state_dim", "emission_dim", "input_dim")
        The constructor arguments stored under ``"dims"`` (read back from the
        model's attributes of the same names).
    options : tuple of str, default ()
        The constructor arguments stored under ``"options"``.
    """

    name: str
    model_class: Callable[[], type]
    dims: tuple = ("state_dim", "emission_dim", "input_dim")
    options: tuple = ()


_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> None:
    """Register (add or replace) a model kind for `save_model` and `load_model`.

    Parameters
    ----------
    kind : ModelKind
        The kind, replacing one of the same name.
    """
    _KINDS[kind.name] = kind


def _lgssm_attr(name: str) -> Callable[[], type]:
    def get():
        import lgssm  # at call time: lgssm imports this module

        return getattr(lgssm, name)

    return get


register_kind(
    ModelKind(
        "discrete",
        _lgssm_attr("LinearGaussianSSM"),
        options=("has_dynamics_bias", "has_emissions_bias", "initialization"),
    )
)
register_kind(ModelKind("continuous", _lgssm_attr("ContinuousTimeSSM"), options=("has_emissions_bias",)))


def kind_of(model) -> ModelKind:
    """Find the registered kind of ``model``: the most derived class it is an instance of.

    Parameters
    ----------
    model : object
        A model, e.g. a `lgssm.LinearGaussianSSM`.

    Returns
    -------
    ModelKind
        Its kind.

    Raises
    ------
    ValueError
        If no registered kind's class matches.
    """
    best = None
    for kind in _KINDS.values():
        cls = kind.model_class()
        if isinstance(model, cls) and (best is None or issubclass(cls, best[1])):
            best = (kind, cls)
    if best is None:
        raise ValueError(f"model: expected one of the model classes {sorted(_KINDS)}, got {type(model).__name__}")
    return best[0]


def kind_named(name: str) -> ModelKind | None:
    """The registered kind called ``name`` (a model file's "kind"), or None."""
    return _KINDS.get(name)


def kind_names() -> list[str]:
    """The names of the registered kinds, sorted."""
    return sorted(_KINDS)
