"""The DATA argument of the commands: options, reading, per-sequence arrays, checks against a model."""

from __future__ import annotations

import argparse
import os

import numpy as np

from .. import io
from .._batch import padded_lengths
from .errors import CommandError

DATA_SUFFIXES = (".csv", ".tsv", ".npy", ".npz")


def add_data_arguments(p: argparse.ArgumentParser, times_help: str):
    p.add_argument(
        "data",
        metavar="DATA",
        help="emissions: .csv/.tsv (one row per time step), .npy "
        "(num_timesteps, emission_dim) or NaN-padded (num_sequences, num_timesteps, emission_dim), "
        "or .npz (arrays 'emissions', optional 'inputs' and 'times'); NaN or empty = missing",
    )
    g = p.add_argument_group("CSV columns")
    g.add_argument(
        "--sequence-column",
        metavar="NAME",
        help="column of sequence ids; rows are grouped into sequences in order of first appearance",
    )
    g.add_argument("--input-columns", metavar="A,B", help="comma-separated input columns (default: no inputs)")
    g.add_argument(
        "--emission-columns",
        metavar="A,B",
        help="comma-separated emission columns or glob patterns (default: every other column)",
    )
    g.add_argument("--times", metavar="COLUMN", help=times_help)
    hdr = g.add_mutually_exclusive_group()
    hdr.add_argument(
        "--header",
        dest="header",
        action="store_const",
        const=True,
        default=None,
        help="the first row is a header (default: detected)",
    )
    hdr.add_argument("--no-header", dest="header", action="store_const", const=False, help="there is no header row")


_COLUMN_OPTIONS = {
    "sequence": "sequence_column",
    "inputs": "input_columns",
    "emissions": "emission_columns",
    "times": "times",
    "header": "header",
}  # metadata.data.columns key -> option attribute


def read_data_file(args, remembered: dict | None = None) -> io.Data:
    """The DATA file; for CSV, each column option not given is taken from ``remembered``
    (the columns a model was fitted on)."""
    ext = os.path.splitext(args.data)[1].lower()
    if ext not in DATA_SUFFIXES:
        raise CommandError(
            f"DATA: unknown format {ext or '(no extension)'!r} for {args.data} (expected {', '.join(DATA_SUFFIXES)})"
        )
    csv_options = {
        "--sequence-column": args.sequence_column,
        "--input-columns": args.input_columns,
        "--emission-columns": args.emission_columns,
        "--times": args.times,
    }
    if ext in (".npy", ".npz"):
        used = [k for k, v in csv_options.items() if v is not None]
        if used:
            hint = "; put times in the .npz array 'times'" if used[0] == "--times" else ""
            raise CommandError(f"{used[0]} applies to CSV data only, not {args.data}{hint}")
    options = {attr: getattr(args, attr) for attr in _COLUMN_OPTIONS.values()}
    from_model = []
    if ext in (".csv", ".tsv") and remembered:
        for key, attr in _COLUMN_OPTIONS.items():
            if options[attr] is None and remembered.get(key) is not None:
                options[attr] = remembered[key]
                from_model.append(key)
    try:
        return io.read_data(
            args.data,
            sequence_column=options["sequence_column"],
            input_columns=options["input_columns"],
            emission_columns=options["emission_columns"],
            times_column=options["times"],
            header=options["header"],
        )
    except io.DataError as err:
        if not from_model or "column" not in str(err):
            raise
        raise io.DataError(
            f"{err} (columns {', '.join(k for k in from_model if k != 'header')} as remembered by "
            f"{args.model}; give the column options to override them)"
        ) from None


def sequences(data: io.Data):
    """The data as lists of per-sequence arrays (emissions, inputs or None, times or None), padding removed."""
    y = data.emissions
    if isinstance(y, list):
        return list(y), data.inputs, data.times
    if y.ndim == 2:
        return [y], None if data.inputs is None else [data.inputs], None if data.times is None else [data.times]
    lengths = padded_lengths(y)
    ys = [np.ascontiguousarray(seq[:n]) for seq, n in zip(y, lengths)]
    us = None if data.inputs is None else [np.ascontiguousarray(u[:n]) for u, n in zip(data.inputs, lengths)]
    ts = None if data.times is None else [np.ascontiguousarray(t[:n]) for t, n in zip(data.times, lengths)]
    return ys, us, ts


def check_model_data(model, model_path: str, ys, us, data_path: str):
    p = ys[0].shape[1]
    if p != model.emission_dim:
        raise CommandError(f"{data_path}: {p} emission columns, but {model_path} has emission_dim {model.emission_dim}")
    m = 0 if us is None else us[0].shape[1]
    if m != model.input_dim:
        if us is None:
            raise CommandError(
                f"{data_path}: no inputs, but {model_path} has input_dim {model.input_dim} (give "
                f"them with --input-columns for CSV or an 'inputs' array in .npz)"
            )
        raise CommandError(f"{data_path}: {m} input columns, but {model_path} has input_dim {model.input_dim}")


def time_kwargs(model, model_path: str, ts) -> dict:
    """The ``times=`` keyword of a continuous-time model's methods (empty for a discrete one)."""
    kind = io.kind_of(model).name
    if kind == "discrete":
        if ts is not None:
            raise CommandError(f"--times: {model_path} is a discrete-time model, which takes no observation times")
        return {}
    if ts is None:
        raise CommandError(
            f"{model_path} is a {kind}-time model: give observation times with --times COLUMN "
            f"(CSV) or a 'times' array (.npz)"
        )
    return {"times": ts}


def sequence_ids(data: io.Data, count: int):
    return list(data.sequence_ids) if data.sequence_ids is not None else [str(i) for i in range(count)]


def add_model_data_arguments(p):
    p.add_argument("model", metavar="MODEL.json", help="a model written by 'lgssm fit'")
    add_data_arguments(p, "column of observation times (continuous-time models)")


_COLUMN_TYPES = {
    "emissions": (list, "a list of column names"),
    "inputs": (list, "a list of column names"),
    "times": (str, "a column name"),
    "sequence": (str, "a column name"),
    "header": (bool, "true or false"),
}


def _remembered_columns(path: str) -> dict | None:
    """metadata.data.columns of a model file written by ``lgssm fit`` (None when absent)."""
    data = io.read_metadata(path).get("data")
    columns = data.get("columns") if isinstance(data, dict) else None
    if columns is None:
        return None
    if not isinstance(columns, dict):
        raise io.ModelFileError(f"{path}: metadata.data.columns must be an object")
    for key, value in columns.items():
        kind, what = _COLUMN_TYPES.get(key, (None, None))
        if kind is None:
            raise io.ModelFileError(
                f"{path}: unknown key 'metadata.data.columns.{key}' (expected {', '.join(_COLUMN_TYPES)})"
            )
        ok = value is None or (
            isinstance(value, kind) and (not isinstance(value, list) or all(isinstance(v, str) for v in value))
        )
        if not ok:
            raise io.ModelFileError(
                f"{path}: metadata.data.columns.{key} must be {what} or null, got {str(value)[:40]}"
            )
    return columns


def load_model_and_data(args):
    model, params, _ = io.load_model(args.model)
    data = read_data_file(args, _remembered_columns(args.model))
    ys, us, ts = sequences(data)
    check_model_data(model, args.model, ys, us, args.data)
    return model, params, data, ys, us, ts, time_kwargs(model, args.model, ts)
