"""``read_data``: emissions (and inputs, times) from a CSV, NPY or NPZ file."""

from __future__ import annotations

import os

from .csv_data import read_csv
from .data import Data
from .errors import DataError
from .npy_data import read_npy, read_npz


def _columns_list(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    return [str(c) for c in value]


def read_data(
    path,
    *,
    sequence_column=None,
    input_columns=None,
    emission_columns=None,
    times_column=None,
    header: bool | None = None,
) -> Data:
    """Emissions (and inputs) from a CSV, NPY or NPZ file; see the docstring of ``lgssm.io``.

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
        return read_csv(
            path,
            "\t" if ext == ".tsv" else ",",
            sequence_column,
            _columns_list(input_columns),
            _columns_list(emission_columns),
            times_column,
            header,
        )
    csv_only = {
        "sequence_column": sequence_column,
        "input_columns": input_columns,
        "emission_columns": emission_columns,
        "times_column": times_column,
    }
    used = [k for k, v in csv_only.items() if v is not None]
    if ext == ".npy":
        if used:
            raise DataError(f"{path}: {used[0]} applies to CSV files only")
        return read_npy(path)
    if ext == ".npz":
        if used:
            raise DataError(
                f"{path}: {used[0]} applies to CSV files only; an NPZ file has keys 'emissions', 'inputs' and 'times'"
            )
        return read_npz(path)
    raise DataError(f"{path}: unknown data format {ext or '(no extension)'!r} (expected .csv, .tsv, .npy or .npz)")
