"""Writing named result arrays as .npz, .npy or a CSV table, atomically."""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import numpy as np

from .atomic import atomic_write


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
    """Write named arrays to ``path``, atomically, in the format of its extension.

    - ``.npz``: all arrays (``np.savez``);
    - ``.npy``: exactly one array;
    - ``.csv`` (``.tsv``): a table with a header row, one row per entry of the
      first axis, which every array must share (num_rows, ...). A 1-D array is
      one column ``name``; an array (num_rows, d1, d2, ...) becomes columns
      ``name_i_j...``. Numbers are written with ``repr`` (exact), NaN as
      ``nan``; string arrays (e.g. sequence ids) are written as they are.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    **arrays : array
        The arrays by name.

    Raises
    ------
    ValueError
        If no array is given, a ``.npy`` file gets more than one, the arrays of a
        CSV table differ in their first axis, or the extension is unknown.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if not arrays:
        raise ValueError("write_arrays: expected at least one array")
    values: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    if ext == ".npz":
        with atomic_write(path, "wb") as fh:
            np.savez(fh, **values)
    elif ext == ".npy":
        if len(values) != 1:
            raise ValueError(
                f"{path}: a .npy file holds one array, got {len(values)} ({', '.join(values)}); use .npz or .csv"
            )
        with atomic_write(path, "wb") as fh:
            np.save(fh, next(iter(values.values())), allow_pickle=False)
    elif ext in (".csv", ".tsv"):
        rows = [v.shape[0] if v.ndim else None for v in values.values()]
        if None in rows or len(set(rows)) != 1:
            raise ValueError(
                f"{path}: every array in a CSV table needs the same first axis (rows), got shapes "
                + ", ".join(f"{k} {v.shape}" for k, v in values.items())
            )
        num_rows = int(next(iter(values.values())).shape[0])
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
