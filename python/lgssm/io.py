"""Reading data, saving and loading models, writing results; every write is atomic.

Data (``read_data``): one row per time step, from

- CSV (``.csv``; ``.tsv`` for tab-separated): a header row is optional and
  detected (the first row is a header when one of its cells is neither empty nor
  a number). Columns are referred to by header name or by 0-based index. Empty
  and ``nan`` cells are missing emissions. An optional sequence column groups
  the rows into sequences, in order of first appearance; optional input columns
  give the inputs; an optional times column gives observation times
  (continuous-time models).
- NPY (``.npy``): emissions of shape (num_timesteps, emission_dim), or
  (num_sequences, num_timesteps, emission_dim) padded at the end with NaN rows.
- NPZ (``.npz``): key ``emissions`` as for NPY, optional ``inputs`` of shape
  (num_timesteps, input_dim) or (num_sequences, num_timesteps, input_dim), and
  optional ``times`` of shape (num_timesteps,) or (num_sequences, num_timesteps);
  other keys (e.g. the ``states`` of ``lgssm simulate``) are ignored.

Models (``save_model``/``load_model``): the JSON format of docs/json-format.md,
float64 values written with ``repr`` so that a save/load round trip is exact.

Every file is written to a temporary file in the target's directory, flushed,
fsynced and then renamed over the target (``os.replace``), so an interrupted
write leaves either the old file or the new one, never a partial file.

Text files (CSV and JSON) are UTF-8, with or without a byte-order mark; other
encodings, binary data and NUL bytes are errors. CSV numbers are decimal
(``1.5``, ``-2e3``; no digit separators such as ``1_000``); a comma at the end of
every row (header included) is ignored rather than read as an empty column. The
arrays of .npy/.npz files must be as large as their headers declare, and fit in memory.

Errors in files are ``DataError`` / ``ModelFileError`` (both ``ValueError``)
with a one-line message naming the file and what is wrong.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import fnmatch
import json
import math
import os
import re
import secrets
import zipfile
import zlib
from dataclasses import dataclass
from io import StringIO
from typing import Callable

import numpy as np

from ._batch import padded_lengths
from ._checks import memory
from .params import field_names, param_groups

FORMAT = "lgssm-model"
VERSION = 1

__all__ = [
    "Data", "DataError", "FORMAT", "ModelFileError", "ModelKind", "VERSION", "atomic_write", "kind_of",
    "load_model", "read_data", "register_kind", "save_model", "write_arrays",
]


class DataError(ValueError):
    """A data file that cannot be read as emissions (message names file, line and column)."""


class ModelFileError(ValueError):
    """A model file that is not valid lgssm JSON (message names the file and what is wrong)."""


# ---------------------------------------------------------------------------
# Atomic writes.

@contextlib.contextmanager
def atomic_write(path, mode: str = "w"):
    """Yields a file object (text for ``mode="w"``, binary for ``"wb"``) whose
    contents replace ``path`` only when the block ends without an exception:
    the data goes to a temporary file in the same directory, which is flushed,
    fsynced and renamed over ``path``. On an exception the temporary file is
    removed and ``path`` is left as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode: expected 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for an ordinary new file
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"could not create a temporary file next to {path}")
    try:
        with (open(fd, "w", encoding="utf-8", newline="") if mode == "w" else open(fd, "wb")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# ---------------------------------------------------------------------------
# Model kinds: how a model object maps to the JSON header.

@dataclass(frozen=True)
class ModelKind:
    """A model class as stored in a model file.

    ``name`` is the file's "kind"; ``model_class`` returns the class (a callable,
    so that a class the installed lgssm lacks costs nothing until it is needed);
    ``dims`` and ``options`` are the constructor arguments stored under "dims"
    and "options" (read back from attributes of the same names). Parameters and
    their properties are whatever ``model.initialize()`` returns: dataclasses of
    groups of arrays, walked field by field, so a kind with other parameter
    names (``dynamics.drift``, ``dynamics.diffusion_cov``) needs no other code.
    """

    name: str
    model_class: Callable[[], type]
    dims: tuple = ("state_dim", "emission_dim", "input_dim")
    options: tuple = ()


_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> None:
    """Adds (or replaces) a model kind for ``save_model`` / ``load_model``."""
    _KINDS[kind.name] = kind


def _lgssm_attr(name: str) -> Callable[[], type]:
    def get():
        import lgssm  # at call time: lgssm imports this module

        return getattr(lgssm, name)
    return get


register_kind(ModelKind("discrete", _lgssm_attr("LinearGaussianSSM"),
                        options=("has_dynamics_bias", "has_emissions_bias")))
register_kind(ModelKind("continuous", _lgssm_attr("ContinuousTimeSSM"), options=("has_emissions_bias",)))


def kind_of(model) -> ModelKind:
    """The registered kind of ``model``: the one whose class is the most derived
    class ``model`` is an instance of."""
    best = None
    for kind in _KINDS.values():
        cls = kind.model_class()
        if isinstance(model, cls) and (best is None or issubclass(cls, best[1])):
            best = (kind, cls)
    if best is None:
        raise ValueError(f"model: expected one of the model classes {sorted(_KINDS)}, got {type(model).__name__}")
    return best[0]


# ---------------------------------------------------------------------------
# Models to and from JSON.

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
            raise ModelFileError(f"{where}: expected an array of at most {_MAX_DIMS} dimensions, got lists nested "
                                 f"deeper")
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
    """The JSON document (a dict) of ``save_model``."""
    kind = kind_of(model)
    if props is None:
        props = model.initialize(0)[1]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind.name,
        "dims": {d: int(getattr(model, d)) for d in kind.dims},
        "options": {o: _jsonable(getattr(model, o), f"options.{o}") for o in kind.options},
        "params": {},
        "props": {},
    }
    for group, values in param_groups(params):
        doc["params"][group] = {f: _floats(np.asarray(getattr(values, f), dtype=np.float64))
                                for f in field_names(values)}
    for group, values in param_groups(props):
        doc["props"][group] = {}
        for f in field_names(values):
            prop = getattr(values, f)
            doc["props"][group][f] = {"trainable": bool(prop.trainable), "structure": str(prop.structure)}
    if metadata:
        doc["metadata"] = _jsonable(metadata, "metadata")
    return doc


def save_model(path, model, params, props=None, *, metadata: dict | None = None) -> None:
    """Writes ``model``, ``params`` and ``props`` (default: those of
    ``model.initialize``) to ``path`` as JSON (docs/json-format.md), atomically.
    ``metadata`` (e.g. how the model was fitted) is stored as given and ignored
    by ``load_model``; arrays in it become nested lists."""
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


def _unexpected(mapping: dict, allowed, where: str, file: str):
    extra = sorted(set(mapping) - set(allowed))
    if extra:
        raise ModelFileError(f"{file}: unknown key {where + extra[0]!r} (expected {', '.join(where + a for a in allowed)})")


def model_from_json(doc, file: str = "<model>"):
    """``(model, params, props)`` from a JSON document (as ``load_model``)."""
    if not isinstance(doc, dict):
        raise ModelFileError(f"{file}: expected a JSON object at the top level, got {type(doc).__name__}")
    fmt = _expect(doc, "format", str, "", file)
    if fmt != FORMAT:
        raise ModelFileError(f"{file}: \"format\" must be {FORMAT!r}, got {fmt!r}")
    version = _expect(doc, "version", int, "", file)
    if version > VERSION or version < 1:
        raise ModelFileError(f"{file}: format version {version} is not supported (this lgssm reads versions 1 to "
                             f"{VERSION}{'; upgrade lgssm' if version > VERSION else ''})")
    name = _expect(doc, "kind", str, "", file)
    if name not in _KINDS:
        raise ModelFileError(f"{file}: unknown \"kind\" {name!r} (expected one of {', '.join(sorted(_KINDS))})")
    kind = _KINDS[name]
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
    core_check = getattr(model, "_core_params", None)
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
                _unexpected(prop, ("trainable", "structure"), where, file)
                current = getattr(template, f)
                trainable = _expect(prop, "trainable", bool, where, file) if "trainable" in prop else current.trainable
                structure = _expect(prop, "structure", str, where, file) if "structure" in prop else current.structure
                if structure not in ("full", "diagonal", "scalar"):
                    raise ModelFileError(f"{file}: {where}structure must be 'full', 'diagonal' or 'scalar', "
                                         f"got {structure!r}")
                setattr(template, f, dataclasses.replace(current, trainable=trainable, structure=structure))
    return model, params, props


def load_model(path):
    """``(model, params, props)`` from a model file written by ``save_model``."""
    path = os.fspath(path)
    return model_from_json(_read_json(path), path)


def read_metadata(path) -> dict:
    """The "metadata" object of a model file ({} when there is none)."""
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
    text = _read_text(path, ModelFileError)
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


def _read_text(path: str, error: type) -> str:
    """The text of ``path``: UTF-8 with an optional byte-order mark (removed). An empty
    file, another encoding or binary data raises ``error`` naming the file."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.strip():
        raise error(f"{path}: no data (the file is empty)")
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
                      (b"\xfe\xff", "UTF-16")):
        if raw.startswith(bom):
            raise error(f"{path}: {name} text; expected UTF-8 (save the file as UTF-8)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise error(f"{path}: binary data (a NUL byte at offset {nul}); expected UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise error(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}; a Latin-1 or other "
                    f"8-bit file? save it as UTF-8)") from None


# ---------------------------------------------------------------------------
# Data.

class Data(tuple):
    """What ``read_data`` returns: unpacks as ``(emissions, inputs)`` and also has

    - ``times``: None, or observation times shaped like emissions without the
      last axis ((num_timesteps,), (num_sequences, num_timesteps) or a list);
    - ``sequence_ids``: None, or the CSV sequence column's values, one per sequence;
    - ``emission_columns`` / ``input_columns``: CSV column names (None otherwise).
    """

    def __new__(cls, emissions, inputs, times=None, sequence_ids=None, emission_columns=None, input_columns=None):
        self = super().__new__(cls, (emissions, inputs))
        self.times = times
        self.sequence_ids = sequence_ids
        self.emission_columns = emission_columns
        self.input_columns = input_columns
        return self

    @property
    def emissions(self):
        return self[0]

    @property
    def inputs(self):
        return self[1]


def _columns_list(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    return [str(c) for c in value]


def read_data(path, *, sequence_column=None, input_columns=None, emission_columns=None, times_column=None,
              header: bool | None = None) -> Data:
    """Emissions (and inputs) from a CSV, NPY or NPZ file; see the module docstring.

    Returns ``Data``, which unpacks as ``(emissions, inputs)``: emissions are a
    (num_timesteps, emission_dim) array, a (num_sequences, num_timesteps,
    emission_dim) NaN-padded array (NPY/NPZ) or a list of (num_timesteps_i,
    emission_dim) arrays (CSV with a sequence column); inputs have the same
    layout with input_dim columns, or are None.

    CSV only: ``sequence_column`` (name or 0-based index), ``input_columns`` and
    ``emission_columns`` (comma-separated string or list of names, indices or
    glob patterns; emissions default to every column not otherwise used),
    ``times_column``, and ``header`` (None: detect).
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    if ext in (".csv", ".tsv"):
        return _read_csv(path, "\t" if ext == ".tsv" else ",", sequence_column, _columns_list(input_columns),
                         _columns_list(emission_columns), times_column, header)
    csv_only = {"sequence_column": sequence_column, "input_columns": input_columns,
                "emission_columns": emission_columns, "times_column": times_column}
    used = [k for k, v in csv_only.items() if v is not None]
    if ext == ".npy":
        if used:
            raise DataError(f"{path}: {used[0]} applies to CSV files only")
        return Data(_emissions_array(_load_npy(path), path, "emissions"), None)
    if ext == ".npz":
        if used:
            raise DataError(f"{path}: {used[0]} applies to CSV files only; an NPZ file has keys "
                            f"'emissions', 'inputs' and 'times'")
        return _read_npz(path)
    raise DataError(f"{path}: unknown data format {ext or '(no extension)'!r} (expected .csv, .tsv, .npy or .npz)")


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_npy(fh, size: int, where: str) -> np.ndarray:
    """The numeric array in an open .npy stream of ``size`` bytes, checked against its
    header before anything is allocated: a truncated file or one whose header declares
    more data than it holds (or than fits in memory) is a DataError."""
    try:
        version = np.lib.format.read_magic(fh)
        if version not in _NPY_HEADERS:
            raise DataError(f"{where}: .npy format version {version[0]}.{version[1]} is not supported "
                            f"(expected 1.0 or 2.0)")
        shape, fortran_order, dtype = _NPY_HEADERS[version](fh)
    except DataError:
        raise
    except (ValueError, TypeError, EOFError, OSError, SyntaxError) as err:
        raise DataError(f"{where}: not a readable .npy file ({err})") from None
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise DataError(f"{where}: expected numbers, got an array of dtype {dtype}")
    if any(d < 0 for d in shape):
        raise DataError(f"{where}: not a readable .npy file (negative dimension in shape {shape})")
    count = math.prod(shape)
    try:
        memory(where, f"shape {shape}", count, "the array declared in its header", "a smaller array")
    except ValueError as err:
        raise DataError(str(err)) from None
    need, have = count * dtype.itemsize, size - fh.tell()
    if need > have:
        raise DataError(f"{where}: truncated: the header declares shape {shape} ({need} bytes of data), "
                        f"but the file holds {max(have, 0)}")
    a = np.empty(count, dtype=dtype)
    buffer, done = a.view(np.uint8), 0
    while done < need:
        got = fh.readinto(buffer[done:])
        if not got:
            raise DataError(f"{where}: truncated: expected {need} bytes of data, got {done}")
        done += got
    return a.reshape(shape, order="F" if fortran_order else "C")


def _load_npy(path: str) -> np.ndarray:
    with open(path, "rb") as fh:
        return _read_npy(fh, os.fstat(fh.fileno()).st_size, path)


def _numeric(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected numbers, got an array of dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def _emissions_array(a, path: str, key: str) -> np.ndarray:
    where = f"{path}" if key == "emissions" and path.endswith(".npy") else f"{path}: {key}"
    a = _numeric(np.asarray(a), where)
    if a.ndim not in (2, 3) or a.shape[-1] < 1 or a.shape[-2] < 1 or (a.ndim == 3 and a.shape[0] < 1):
        raise DataError(f"{where}: expected shape (num_timesteps, emission_dim) or (num_sequences, num_timesteps, "
                        f"emission_dim), got {a.shape}" + (" (reshape a single series to (num_timesteps, 1))"
                                                            if a.ndim == 1 else ""))
    if np.isinf(a).any():
        idx = tuple(int(i) for i in np.argwhere(np.isinf(a))[0])
        raise DataError(f"{where}: expected finite values or NaN (missing), got {a[idx]} at index {idx}")
    return a


def _npz_arrays(path: str, names: tuple) -> dict:
    """The arrays ``names`` (those present) of a .npz file, each checked as by ``_read_npy``;
    a missing 'emissions' is an error."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4]: zf.getinfo(n) for n in zf.namelist() if n.endswith(".npy")}
            if "emissions" not in members:
                raise DataError(f"{path}: no array named 'emissions' (found {', '.join(members) or 'none'})")
            out = {}
            for name in names:
                if name in members:
                    with zf.open(members[name]) as fh:
                        out[name] = _read_npy(fh, members[name].file_size, f"{path}: {name}")
            return out
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise DataError(f"{path}: not a readable .npz file ({err})") from None


def _read_npz(path: str) -> Data:
    arrays = _npz_arrays(path, ("emissions", "inputs", "times"))
    y = _emissions_array(arrays["emissions"], path, "emissions")
    u = _numeric(arrays["inputs"], f"{path}: inputs") if "inputs" in arrays else None
    t = _numeric(arrays["times"], f"{path}: times") if "times" in arrays else None
    lengths = padded_lengths(y) if y.ndim == 3 else [y.shape[0]]
    if u is not None:
        if u.ndim != y.ndim or u.shape[:-1] != y.shape[:-1]:
            raise DataError(f"{path}: inputs: expected shape {y.shape[:-1] + ('input_dim',)} to match emissions, "
                            f"got {u.shape}".replace("'input_dim'", "input_dim"))
        for b, (useq, n) in enumerate(zip(u if u.ndim == 3 else [u], lengths)):
            bad = np.argwhere(~np.isfinite(useq[:n]))
            if bad.size:
                idx = ((b,) if u.ndim == 3 else ()) + tuple(int(i) for i in bad[0])
                raise DataError(f"{path}: inputs: expected finite values (inputs cannot be missing), "
                                f"got {u[idx]} at index {idx}")
    if t is not None:
        if t.shape != y.shape[:-1]:
            raise DataError(f"{path}: times: expected shape {y.shape[:-1]} to match emissions, got {t.shape}")
        for b, (tseq, n) in enumerate(zip(t if t.ndim == 2 else [t], lengths)):
            _check_times(tseq[:n], f"{path}: times" + (f" of sequence {b}" if t.ndim == 2 else ""))
    return Data(y, u, times=t)


def _check_times(t: np.ndarray, where: str):
    if not np.all(np.isfinite(t)):
        raise DataError(f"{where}: expected finite values, got {t[~np.isfinite(t)][0]}")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        i = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise DataError(f"{where}: expected strictly increasing times, got {t[i]!r} then {t[i + 1]!r}")


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SPECIAL = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf, "+inf": math.inf,
            "-inf": -math.inf, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


def _parse_number(cell: str) -> float | None:
    """A CSV cell as a float: a decimal number, nan or inf (any case); None otherwise.
    Stricter than ``float``, which also reads '1_000' as 1000 and non-ASCII digits."""
    if _DECIMAL.fullmatch(cell):
        return float(cell)
    return _SPECIAL.get(cell.lower())


def _is_number(cell: str) -> bool:
    return _parse_number(cell) is not None


def _csv_rows(path: str, delimiter: str) -> list:
    """(line number, stripped cells) of every non-blank row. When every row ends with an
    empty cell (a comma at the end of each line), that cell is dropped."""
    text = _read_text(path, DataError)
    reader = csv.reader(StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = [(line, [c.strip() for c in row]) for line, row in _numbered(reader) if any(c.strip() for c in row)]
    except csv.Error as err:
        raise DataError(f"{path}: line {reader.line_num}: not readable as CSV ({err})") from None
    if not rows:
        raise DataError(f"{path}: no data (every line is blank)")
    if len(rows[0][1]) > 1 and all(len(r) == len(rows[0][1]) and r[-1] == "" for _, r in rows):
        rows = [(line, r[:-1]) for line, r in rows]
    return rows


def _read_csv(path, delimiter, sequence_column, input_columns, emission_columns, times_column, header) -> Data:
    rows = _csv_rows(path, delimiter)
    first_line, first = rows[0]
    # A sequence column given by index may hold non-numeric ids in a file without a header.
    seq_index = int(sequence_column) if str(sequence_column).isdigit() else None
    if header is None:
        header = any(cell and not _is_number(cell) and i != seq_index for i, cell in enumerate(first))
    ncols = len(first)
    names = first if header else [str(i) for i in range(ncols)]
    data = rows[1:] if header else rows
    if header and len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: line {first_line}: column name {dup!r} appears twice in the header")
    if not data:
        raise DataError(f"{path}: no data rows after the header")

    def resolve(ref, option: str) -> int:
        ref = str(ref).strip()
        if ref in names:
            return names.index(ref)
        if ref.isdigit() and int(ref) < ncols:
            return int(ref)
        raise DataError(f"{path}: {option}: no column {ref!r} (columns: {', '.join(names)})")

    def resolve_many(refs, option: str) -> list[int]:
        out = []
        for ref in refs:
            if any(ch in ref for ch in "*?[") and ref not in names:
                matched = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, ref)]
                if not matched:
                    raise DataError(f"{path}: {option}: no column matches {ref!r} (columns: {', '.join(names)})")
                out.extend(matched)
            else:
                out.append(resolve(ref, option))
        return out

    seq = resolve(sequence_column, "sequence column") if sequence_column is not None else None
    tcol = resolve(times_column, "times column") if times_column is not None else None
    ucols = resolve_many(input_columns, "input columns") if input_columns else []
    used = {c for c in (seq, tcol) if c is not None} | set(ucols)
    if emission_columns:
        ycols = resolve_many(emission_columns, "emission columns")
        clash = sorted(used & set(ycols))
        if clash:
            raise DataError(f"{path}: column {names[clash[0]]!r} cannot be both an emission column and "
                            f"a sequence, times or input column")
    else:
        ycols = [i for i in range(ncols) if i not in used]
    if not ycols:
        raise DataError(f"{path}: no emission columns (every column is a sequence, times or input column)")

    def label(c):
        return f"column {c + 1} ({names[c]!r})" if header else f"column {c + 1}"

    def number(line, c, cell, missing_ok):
        if cell == "":
            if missing_ok:
                return math.nan
            raise DataError(f"{path}: line {line}, {label(c)}: empty cell ({role[c]} cannot be missing)")
        x = _parse_number(cell)
        if x is None:
            hint = " (digit separators such as '_' are not allowed)" if "_" in cell else ""
            raise DataError(f"{path}: line {line}, {label(c)}: {cell[:40]!r} is not a number{hint}")
        if math.isinf(x) or (math.isnan(x) and not missing_ok):
            raise DataError(f"{path}: line {line}, {label(c)}: {cell!r} is not allowed "
                            f"({'values must be finite' if math.isinf(x) else role[c] + ' cannot be missing'})")
        return x

    role = {c: "an input" for c in ucols}
    if tcol is not None:
        role[tcol] = "a time"
    groups: dict[str, list] = {}
    for line, row in data:
        if len(row) != ncols:
            raise DataError(f"{path}: line {line}: {len(row)} cells, expected {ncols} "
                            f"(as in line {first_line})")
        key = ""
        if seq is not None:
            key = row[seq]
            if key == "":
                raise DataError(f"{path}: line {line}, {label(seq)}: empty sequence id")
        y = [number(line, c, row[c], True) for c in ycols]
        u = [number(line, c, row[c], False) for c in ucols]
        t = number(line, tcol, row[tcol], False) if tcol is not None else None
        groups.setdefault(key, []).append((line, y, u, t))

    ys, us, ts = [], [], []
    for key, items in groups.items():
        ys.append(np.array([it[1] for it in items], dtype=np.float64).reshape(len(items), len(ycols)))
        us.append(np.array([it[2] for it in items], dtype=np.float64).reshape(len(items), len(ucols)))
        if tcol is not None:
            t = np.array([it[3] for it in items])
            bad = np.flatnonzero(np.diff(t) <= 0)
            if bad.size:
                i = int(bad[0])
                raise DataError(f"{path}: line {items[i + 1][0]}, {label(tcol)}: times must increase within "
                                f"a sequence, got {items[i][3]!r} then {items[i + 1][3]!r}")
            ts.append(t)
    ycol_names = [names[c] for c in ycols]
    ucol_names = [names[c] for c in ucols] if ucols else None
    if seq is None:
        return Data(ys[0], us[0] if ucols else None, ts[0] if ts else None, None, ycol_names, ucol_names)
    return Data(ys, us if ucols else None, ts if ts else None, list(groups), ycol_names, ucol_names)


def _numbered(reader):
    for row in reader:
        yield reader.line_num, row


# ---------------------------------------------------------------------------
# Results.

def _column_names(name: str, shape: tuple) -> list[str]:
    if not shape:
        return [name]
    return [name + "".join(f"_{i}" for i in idx) for idx in np.ndindex(*shape)]


def _cell(x) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    return "nan" if math.isnan(x) else repr(x)


def write_arrays(path, **arrays) -> None:
    """Writes named arrays to ``path``, atomically; the format follows the extension:

    - ``.npz``: all arrays (``np.savez``);
    - ``.npy``: exactly one array;
    - ``.csv`` (``.tsv``): a table with a header row, one row per entry of the
      first axis, which every array must share (num_rows, ...). A 1-D array is
      one column ``name``; an array (num_rows, d1, d2, ...) becomes columns
      ``name_i_j...``. Numbers are written with ``repr`` (exact), NaN as
      ``nan``; string arrays (e.g. sequence ids) are written as they are.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if not arrays:
        raise ValueError("write_arrays: expected at least one array")
    values = {k: np.asarray(v) for k, v in arrays.items()}
    if ext == ".npz":
        with atomic_write(path, "wb") as fh:
            np.savez(fh, **values)
    elif ext == ".npy":
        if len(values) != 1:
            raise ValueError(f"{path}: a .npy file holds one array, got {len(values)} ({', '.join(values)}); "
                             f"use .npz or .csv")
        with atomic_write(path, "wb") as fh:
            np.save(fh, next(iter(values.values())), allow_pickle=False)
    elif ext in (".csv", ".tsv"):
        rows = {k: v.shape[0] if v.ndim else None for k, v in values.items()}
        if None in rows.values() or len(set(rows.values())) != 1:
            raise ValueError(f"{path}: every array in a CSV table needs the same first axis (rows), got shapes "
                             + ", ".join(f"{k} {v.shape}" for k, v in values.items()))
        num_rows = next(iter(rows.values()))
        header, flat = [], []
        for k, v in values.items():
            header += _column_names(k, v.shape[1:])
            flat.append(v.reshape(num_rows, -1) if v.ndim > 1 else v.reshape(num_rows, 1))
        with atomic_write(path, "w") as fh:
            writer = csv.writer(fh, delimiter="\t" if ext == ".tsv" else ",", lineterminator="\n")
            writer.writerow(header)
            for r in range(num_rows):
                writer.writerow([_cell(x) for block in flat for x in block[r]])
    else:
        raise ValueError(f"{path}: unknown output format {ext or '(no extension)'!r} (expected .npz, .npy or .csv)")
