"""Models to and from JSON: the format of docs/json-format.md (``save_model``, ``load_model``)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from .._docstrings import shared
from ..params import field_names, param_groups
from ._text import read_text
from .atomic import atomic_write
from .errors import ModelFileError
from .kinds import kind_named, kind_names, kind_of

FORMAT = "lgssm-model"
VERSION = 1


def _floats(a: np.ndarray):
    """Nested lists of Python floats (repr round-trips float64 exactly), with
    "NaN", "Infinity" and "-Infinity" as strings since JSON has no such numbers."""
    if a.ndim == 0:
        x = float(a)
        if math.isfinite(x):
            return x
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    return [_floats(x) for x in a]


_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


_MAX_DIMS = 3  # a parameter is at most a (num_steps, rows, cols) stack


def _unfloat(value, where: str, depth: int = 0):
    if isinstance(value, list):
        if depth >= _MAX_DIMS:
            raise ModelFileError(
                f"{where}: expected an array of at most {_MAX_DIMS} dimensions, got lists nested deeper"
            )
        return [_unfloat(v, where, depth + 1) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ModelFileError(f"{where}: expected numbers, got {json.dumps(value)[:40]}")
    if isinstance(value, str):
        if value not in _NONFINITE:
            raise ModelFileError(f"{where}: expected a number, got the string {value!r}")
        return _NONFINITE[value]
    return float(value)


def _jsonable(value, where: str):
    """Metadata as JSON: numbers, strings, bools, None, lists, dicts and arrays."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating, np.ndarray)):
        return _floats(np.asarray(value, dtype=np.float64))
    raise ValueError(f"{where}: cannot store a {type(value).__name__} in a model file")


def model_to_json(model, params, props=None, metadata: dict | None = None) -> dict:
    """Make the JSON document (a dict) that `save_model` writes.

    Parameters
    ----------
    model : LinearGaussianSSM or ContinuousTimeSSM
        A model of a registered kind.
    params : ParamsLGSSM or ParamsCTSSM
        Its parameters.
    props : ParamsLGSSM or ParamsCTSSM, optional
        Their properties; None for those of ``model.initialize``.
    metadata : dict, optional
        Stored under ``"metadata"`` (arrays become nested lists).

    Returns
    -------
    dict
        The document of docs/json-format.md.

    Raises
    ------
    ValueError
        If the model's kind is not registered or the metadata holds something JSON cannot.
    """
    kind = kind_of(model)
    if props is None:
        props = model.initialize(0)[1]
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind.name,
        "dims": {d: int(getattr(model, d)) for d in kind.dims},
        "options": {o: _jsonable(getattr(model, o), f"options.{o}") for o in kind.options},
        "params": {},
        "props": {},
    }
    for group, values in param_groups(params):
        doc["params"][group] = {
            f: _floats(np.asarray(getattr(values, f), dtype=np.float64)) for f in field_names(values)
        }
    for group, values in param_groups(props):
        doc["props"][group] = {}
        for f in field_names(values):
            prop = getattr(values, f)
            entry = {"trainable": bool(prop.trainable), "structure": str(prop.structure)}
            c = getattr(prop, "constraint", None)
            if c is not None:
                entry["constraint"] = {
                    "shape": list(c.shape),
                    "fixed": _floats(c.fixed),
                    "design": _floats(c.design),
                    "names": list(c.names),
                }
            doc["props"][group][f] = entry
    if metadata:
        doc["metadata"] = _jsonable(metadata, "metadata")
    return doc


def save_model(path, model, params, props=None, *, metadata: dict | None = None) -> None:
    """Save a model, its parameters and properties to a JSON file, atomically.

    The format is that of docs/json-format.md; float64 values are written with
    ``repr``, so that a save/load round trip is exact.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    model : LinearGaussianSSM or ContinuousTimeSSM
        A model of a registered kind.
    params : ParamsLGSSM or ParamsCTSSM
        Its parameters.
    props : ParamsLGSSM or ParamsCTSSM, optional
        Their properties; None for those of ``model.initialize``.
    metadata : dict, optional
        E.g. how the model was fitted: stored as given (arrays become nested lists)
        and ignored by `load_model`.

    Raises
    ------
    ValueError
        If the model's kind is not registered or the metadata holds something JSON cannot.
    """
    text = _pretty(model_to_json(model, params, props, metadata))
    with atomic_write(path, "w") as fh:
        fh.write(text)
        fh.write("\n")


def _pretty(value, depth: int = 0) -> str:
    """JSON with objects indented and each innermost list (a matrix row) on one line."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_pretty(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
        return "[\n" + ",\n".join(inner + _pretty(v, depth + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False)


def _expect(doc: dict, key: str, kind: type, where: str, file: str):
    if key not in doc:
        raise ModelFileError(f"{file}: missing key {where + key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ModelFileError(f"{file}: {where + key!r} must be {_TYPE_NAMES[kind]}, got {json.dumps(value)[:40]}")
    return value


_TYPE_NAMES = {dict: "an object", str: "a string", int: "an integer", bool: "true or false", list: "a list"}


def _constraint(doc, where: str, file: str):
    """A props entry's ``constraint`` object: shape, fixed (vec), design (rows), names."""
    from ..constraints import linear

    if not isinstance(doc, dict):
        raise ModelFileError(f"{file}: {where + 'constraint'!r} must be an object, got {json.dumps(doc)[:40]}")
    keys = ("shape", "fixed", "design", "names")
    _unexpected(doc, keys, where + "constraint.", file)
    shape, fixed, design, names = (_expect(doc, k, list, where + "constraint.", file) for k in keys)
    try:
        return linear(np.reshape(np.asarray(fixed, dtype=float), shape, order="F"), design, names)
    except (ValueError, TypeError) as err:
        raise ModelFileError(f"{file}: {where}constraint: {err}") from None


def _unexpected(mapping: dict, allowed, where: str, file: str):
    extra = sorted(set(mapping) - set(allowed))
    if extra:
        raise ModelFileError(
            f"{file}: unknown key {where + extra[0]!r} (expected {', '.join(where + a for a in allowed)})"
        )


@shared
def model_from_json(doc, file: str = "<model>"):
    """Rebuild ``(model, params, props)`` from a JSON document, as `load_model` does.

    Parameters
    ----------
    doc : dict
        The parsed JSON document.
    file : str, default "<model>"
        The file name for error messages.

    Returns
    -------
    %(model_params_props)s

    Raises
    ------
    ModelFileError
        A `ValueError` naming the file and what is wrong.
    """
    if not isinstance(doc, dict):
        raise ModelFileError(f"{file}: expected a JSON object at the top level, got {type(doc).__name__}")
    fmt = _expect(doc, "format", str, "", file)
    if fmt != FORMAT:
        raise ModelFileError(f'{file}: "format" must be {FORMAT!r}, got {fmt!r}')
    version = _expect(doc, "version", int, "", file)
    if version > VERSION or version < 1:
        raise ModelFileError(
            f"{file}: format version {version} is not supported (this lgssm reads versions 1 to "
            f"{VERSION}{'; upgrade lgssm' if version > VERSION else ''})"
        )
    name = _expect(doc, "kind", str, "", file)
    kind = kind_named(name)
    if kind is None:
        raise ModelFileError(f'{file}: unknown "kind" {name!r} (expected one of {", ".join(kind_names())})')
    cls = kind.model_class()
    _unexpected(doc, ("format", "version", "kind", "dims", "options", "params", "props", "metadata"), "", file)

    dims = _expect(doc, "dims", dict, "", file)
    _unexpected(dims, kind.dims, "dims.", file)
    args = {d: _expect(dims, d, int, "dims.", file) for d in kind.dims}
    options = doc.get("options", {})
    if not isinstance(options, dict):
        raise ModelFileError(f"{file}: 'options' must be an object")
    _unexpected(options, kind.options, "options.", file)
    args.update(options)
    try:
        model = cls(**args)
        params, props = model.initialize(0)  # templates: the classes and the shapes of each entry
    except (ValueError, TypeError) as err:
        raise ModelFileError(f"{file}: dims/options: {err}") from None

    doc_params = _expect(doc, "params", dict, "", file)
    _unexpected(doc_params, [g for g, _ in param_groups(params)], "params.", file)
    for group, template in param_groups(params):
        values = _expect(doc_params, group, dict, "params.", file)
        _unexpected(values, field_names(template), f"params.{group}.", file)
        for f in field_names(template):
            where = f"params.{group}.{f}"
            raw = _expect(values, f, list, f"params.{group}.", file)
            try:
                a = np.array(_unfloat(raw, f"{file}: {where}"), dtype=np.float64)
            except ValueError as err:
                if isinstance(err, ModelFileError):
                    raise
                raise ModelFileError(f"{file}: {where}: not a rectangular array of numbers") from None
            entry = np.shape(getattr(template, f))
            if a.shape != entry and a.shape[1:] != entry:
                expected = f"{entry} or (num_steps, {', '.join(map(str, entry))})"
                raise ModelFileError(f"{file}: {where}: expected shape {expected}, got {a.shape}")
            setattr(template, f, a)
    core_check = getattr(model, "core_params", None)
    if core_check is not None:
        try:
            core_check(params)
        except ValueError as err:
            raise ModelFileError(f"{file}: params: {err}") from None

    doc_props = doc.get("props")
    if doc_props is not None:
        if not isinstance(doc_props, dict):
            raise ModelFileError(f"{file}: 'props' must be an object")
        _unexpected(doc_props, [g for g, _ in param_groups(props)], "props.", file)
        for group, template in param_groups(props):  # missing groups, entries and keys keep the defaults
            if group not in doc_props:
                continue
            values = _expect(doc_props, group, dict, "props.", file)
            _unexpected(values, field_names(template), f"props.{group}.", file)
            for f in field_names(template):
                if f not in values:
                    continue
                prop = _expect(values, f, dict, f"props.{group}.", file)
                where = f"props.{group}.{f}."
                _unexpected(prop, ("trainable", "structure", "constraint"), where, file)
                current = getattr(template, f)
                trainable = _expect(prop, "trainable", bool, where, file) if "trainable" in prop else current.trainable
                structure = _expect(prop, "structure", str, where, file) if "structure" in prop else current.structure
                if structure not in ("full", "diagonal", "scalar"):
                    raise ModelFileError(
                        f"{file}: {where}structure must be 'full', 'diagonal' or 'scalar', got {structure!r}"
                    )
                constraint = (
                    _constraint(prop["constraint"], where, file) if "constraint" in prop else current.constraint
                )
                setattr(
                    template,
                    f,
                    dataclasses.replace(current, trainable=trainable, structure=structure, constraint=constraint),
                )
    return model, params, props


@shared
def load_model(path):
    """Load ``(model, params, props)`` from a model file written by `save_model`.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.

    Returns
    -------
    %(model_params_props)s

    Raises
    ------
    ModelFileError
        A `ValueError` naming the file and what is wrong.
    """
    path = os.fspath(path)
    return model_from_json(_read_json(path), path)


def read_metadata(path) -> dict:
    """Read the ``"metadata"`` object of a model file.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.

    Returns
    -------
    dict
        The metadata, ``{}`` when there is none.

    Raises
    ------
    ModelFileError
        If the file is not valid JSON.
    """
    doc = _read_json(os.fspath(path))
    return doc.get("metadata", {}) if isinstance(doc, dict) else {}


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ModelFileError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _read_json(path: str):
    """The JSON document in ``path`` (UTF-8, optional byte-order mark). NaN/Infinity
    literals stay strings; a repeated key, deep nesting or a bad encoding is a ModelFileError."""
    text = read_text(path, ModelFileError)
    try:
        return json.loads(text, parse_constant=lambda c: c, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except ModelFileError as err:
        raise ModelFileError(f"{path}: not a valid model file: {err}") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not a valid model file: JSON nested too deeply") from None
    except ValueError as err:  # e.g. an integer beyond Python's digit limit
        raise ModelFileError(f"{path}: not valid JSON: {err}") from None
