"""Data from CSV (and tab-separated) files: header detection, column selection, sequences, times."""

from __future__ import annotations

import csv
import fnmatch
import math
import re
from io import StringIO

import numpy as np

from ._text import read_text
from .data import Data
from .errors import DataError

_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SPECIAL = {
    "nan": math.nan,
    "+nan": math.nan,
    "-nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}


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
    text = read_text(path, DataError)
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


def read_csv(path, delimiter, sequence_column, input_columns, emission_columns, times_column, header) -> Data:
    """The data of a CSV file; the options are those of ``read_data`` (``input_columns`` and
    ``emission_columns`` as lists)."""
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
            raise DataError(
                f"{path}: column {names[clash[0]]!r} cannot be both an emission column and "
                f"a sequence, times or input column"
            )
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
            raise DataError(
                f"{path}: line {line}, {label(c)}: {cell!r} is not allowed "
                f"({'values must be finite' if math.isinf(x) else role[c] + ' cannot be missing'})"
            )
        return x

    role = {c: "an input" for c in ucols}
    if tcol is not None:
        role[tcol] = "a time"
    groups: dict[str, list] = {}
    for line, row in data:
        if len(row) != ncols:
            raise DataError(f"{path}: line {line}: {len(row)} cells, expected {ncols} (as in line {first_line})")
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
    for items in groups.values():
        ys.append(np.array([it[1] for it in items], dtype=np.float64).reshape(len(items), len(ycols)))
        us.append(np.array([it[2] for it in items], dtype=np.float64).reshape(len(items), len(ucols)))
        if tcol is not None:
            t = np.array([it[3] for it in items])
            bad = np.flatnonzero(np.diff(t) <= 0)
            if bad.size:
                i = int(bad[0])
                raise DataError(
                    f"{path}: line {items[i + 1][0]}, {label(tcol)}: times must increase within "
                    f"a sequence, got {items[i][3]!r} then {items[i + 1][3]!r}"
                )
            ts.append(t)
    ycol_names = [names[c] for c in ycols]
    ucol_names = [names[c] for c in ucols] if ucols else None
    if seq is None:
        return Data(ys[0], us[0] if ucols else None, ts[0] if ts else None, None, ycol_names, ucol_names)
    return Data(ys, us if ucols else None, ts if ts else None, list(groups), ycol_names, ucol_names)


def _numbered(reader):
    for row in reader:
        yield reader.line_num, row
