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
    """Read emissions (and inputs, times) from a CSV, NPY or NPZ file.

    The formats are described in the docstring of `lgssm.io`.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension (``.csv``, ``.tsv``, ``.npy``, ``.npz``) gives the format.
    sequence_column : str or int, optional
        CSV only: the column (name or 0-based index) grouping rows into sequences.
    input_columns : str or list, optional
        CSV only: the input columns, a comma-separated string or a list of names,
        indices or glob patterns.
    emission_columns : str or list, optional
        CSV only: the emission columns, as ``input_columns``; default every column
        not otherwise used.
    times_column : str or int, optional
        CSV only: the column of observation times.
    header : bool, optional
        CSV only: whether the first row is a header; None detects it.

    Returns
    -------
    Data
        Unpacks as ``(emissions, inputs)``: emissions a (num_timesteps, emission_dim)
        array, a (num_sequences, num_timesteps, emission_dim) NaN-padded array
        (NPY/NPZ) or a list of (num_timesteps_i, emission_dim) arrays (CSV with a
        sequence column); inputs the same layout with input_dim columns, or None.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataError
        A `ValueError` naming the file (and line and column) when it cannot be read,
        its format is unknown, or a CSV-only option is given for NPY/NPZ.
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
