"""The ``lgssm`` command line.

    lgssm fit DATA --state-dim N [--method em|sgd|lbfgs] [--iters K] [--learning-rate LR]
              [--freeze NAME ...] [--emission-cov full|diagonal|scalar] [--init MODEL.json]
              [--times COLUMN] [--seed S] --out MODEL.json
    lgssm smooth MODEL.json DATA --out OUT.npz|OUT.csv
    lgssm forecast MODEL.json DATA --steps K [--forecast-dt DT] --out OUT.npz|OUT.csv
    lgssm simulate MODEL.json --steps T [--num-sequences N] [--seed S] [--dt DT] --out OUT.npz|OUT.csv
    lgssm loglik MODEL.json DATA [--out OUT.npz|OUT.csv]

``fit`` remembers in the model file the CSV columns it used (emissions, inputs,
times, sequence ids; docs/json-format.md), and smooth, forecast and loglik use
them for CSV data unless the options say otherwise. When neither
``--emission-columns`` nor ``--times`` is given and the first emission column is
named like a time index (year, time, t, date, ...) and holds increasing
integers, ``fit`` does not fit it as an emission: evenly spaced, it is left out;
unevenly spaced, it becomes the observation times. Either way one line on
stderr says so.

Continuous-time data carry observation times (``--times COLUMN`` for CSV, an
array ``times`` in .npz); ``fit`` then fits ``lgssm.ContinuousTimeSSM`` (EM or
L-BFGS), and the other commands pass the times to it. ``--forecast-dt`` and
``--dt`` space the forecast and simulation times of such models.

DATA is CSV, NPY or NPZ (see ``lgssm.io.read_data``); models are JSON
(docs/json-format.md). Exit codes: 0 success, 1 numerical failure, 2 usage
error or bad input; errors are one line on stderr. Outputs are written
atomically and only on success.

More commands: ``register_command(name, help, add_arguments, run)``; a module
``lgssm.demo`` defining ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``
becomes ``lgssm demo`` without changes here.

Call ``main(argv)`` to run in-process; it returns the exit code.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import io
from ._batch import padded_lengths
from ._checks import memory, require_observed
from .params import field_names, param_groups

EXIT_OK, EXIT_NUMERICAL, EXIT_USAGE = 0, 1, 2

DATA_SUFFIXES = (".csv", ".tsv", ".npy", ".npz")
RESULT_SUFFIXES = (".npz", ".csv", ".tsv")
STRUCTURES = ("full", "diagonal", "scalar")
METHODS = ("em", "sgd", "lbfgs")
DEFAULT_ITERS = {"em": 50, "sgd": 50, "lbfgs": 1000}  # the Python API's defaults
METHOD_LABELS = {"em": "EM", "sgd": "SGD", "lbfgs": "L-BFGS"}


class CommandError(Exception):
    """A failure reported as one line on stderr with exit code ``code``."""

    code = EXIT_USAGE


class NumericalFailure(CommandError):
    code = EXIT_NUMERICAL


# ---------------------------------------------------------------------------
# The command registry.

@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}
PLUGINS = {"demo": "lgssm.demo"}  # subcommands provided by optional modules


def register_command(name: str, help: str, add_arguments, run) -> None:
    """Adds ``lgssm NAME``: ``add_arguments(parser)`` declares its options,
    ``run(args)`` does the work and returns an exit code (or raises)."""
    COMMANDS[name] = Command(name, help, add_arguments, run)


def _load_plugins():
    for name, module in PLUGINS.items():
        if name in COMMANDS:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if found:
            mod = importlib.import_module(module)
            register_command(name, getattr(mod, "HELP", ""), mod.add_arguments, mod.run)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = _Parser(prog="lgssm", description="Linear Gaussian state-space models: fit, smooth, forecast, "
                                               "simulate and evaluate from the command line.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"lgssm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries on stderr")
        p.set_defaults(run=cmd.run)
    return parser


def main(argv=None) -> int:
    """Runs the command line ``argv`` (default: sys.argv[1:]) and returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    prog = f"lgssm {args.command}"
    try:
        code = args.run(args)
        return EXIT_OK if code is None else int(code)
    except CommandError as err:
        return _fail(prog, str(err), err.code)
    except FileNotFoundError as err:
        return _fail(prog, f"no such file: {err.filename}", EXIT_USAGE)
    except (IsADirectoryError, NotADirectoryError, PermissionError) as err:
        return _fail(prog, f"{err.strerror}: {err.filename}", EXIT_USAGE)
    except ValueError as err:  # io.DataError, io.ModelFileError, lgssm.InvalidArgument
        return _fail(prog, str(err), EXIT_USAGE)
    except MemoryError as err:
        return _fail(prog, f"out of memory{': ' + str(err) if str(err) else ''}; no output written (try "
                           f"smaller inputs)", EXIT_USAGE)
    except (RuntimeError, ArithmeticError, np.linalg.LinAlgError) as err:
        return _fail(prog, f"numerical failure: {err}", EXIT_NUMERICAL)
    except OSError as err:
        return _fail(prog, f"{err.strerror or err}: {err.filename or ''}".rstrip(": "), EXIT_NUMERICAL)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted; no output written", 130)


def _fail(prog: str, message: str, code: int) -> int:
    message = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def _note(args, message: str):
    if not args.quiet:
        print(message, file=sys.stderr)


def _warn(args, message: str):
    """A warning: one line on stderr, shown even with --quiet."""
    print(f"lgssm {args.command}: warning: " + "; ".join(l.strip() for l in message.splitlines() if l.strip()),
          file=sys.stderr)


def _renamed(err: ValueError, name: str, option: str) -> Exception:
    """``err`` with the library's argument ``name`` replaced by the command-line ``option`` that gave it."""
    message = str(err)
    return CommandError(option + message[len(name):]) if message.startswith(name + ":") else err


# ---------------------------------------------------------------------------
# Shared options and helpers.

def _add_data_arguments(p: argparse.ArgumentParser, times_help: str):
    p.add_argument("data", metavar="DATA", help="emissions: .csv/.tsv (one row per time step), .npy "
                   "(num_timesteps, emission_dim) or NaN-padded (num_sequences, num_timesteps, emission_dim), "
                   "or .npz (arrays 'emissions', optional 'inputs' and 'times'); NaN or empty = missing")
    g = p.add_argument_group("CSV columns")
    g.add_argument("--sequence-column", metavar="NAME", help="column of sequence ids; rows are grouped into "
                   "sequences in order of first appearance")
    g.add_argument("--input-columns", metavar="A,B", help="comma-separated input columns (default: no inputs)")
    g.add_argument("--emission-columns", metavar="A,B", help="comma-separated emission columns or glob "
                   "patterns (default: every other column)")
    g.add_argument("--times", metavar="COLUMN", help=times_help)
    hdr = g.add_mutually_exclusive_group()
    hdr.add_argument("--header", dest="header", action="store_const", const=True, default=None,
                     help="the first row is a header (default: detected)")
    hdr.add_argument("--no-header", dest="header", action="store_const", const=False, help="there is no header row")


_COLUMN_OPTIONS = {"sequence": "sequence_column", "inputs": "input_columns", "emissions": "emission_columns",
                   "times": "times", "header": "header"}  # metadata.data.columns key -> option attribute


def _read(args, remembered: dict | None = None) -> io.Data:
    """The DATA file; for CSV, each column option not given is taken from ``remembered``
    (the columns a model was fitted on)."""
    ext = os.path.splitext(args.data)[1].lower()
    if ext not in DATA_SUFFIXES:
        raise CommandError(f"DATA: unknown format {ext or '(no extension)'!r} for {args.data} "
                           f"(expected {', '.join(DATA_SUFFIXES)})")
    csv_options = {"--sequence-column": args.sequence_column, "--input-columns": args.input_columns,
                   "--emission-columns": args.emission_columns, "--times": args.times}
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
        return io.read_data(args.data, sequence_column=options["sequence_column"],
                            input_columns=options["input_columns"], emission_columns=options["emission_columns"],
                            times_column=options["times"], header=options["header"])
    except io.DataError as err:
        if not from_model or "column" not in str(err):
            raise
        raise io.DataError(f"{err} (columns {', '.join(k for k in from_model if k != 'header')} as remembered by "
                           f"{args.model}; give the column options to override them)") from None


_TIME_NAMES = re.compile(r"(year|years|yr|time|times|t|date|day|days|month|week|quarter|period|timestamp|step|"
                         r"steps|index|idx)", re.IGNORECASE)


def _time_like_column(args, data: io.Data) -> tuple[io.Data, str | None]:
    """(data, name of the times column or None). When the user chose neither emission
    columns nor times and the first emission column looks like a time index (named
    like one, increasing integers, no missing values), it is taken out of the
    emissions: evenly spaced, it is dropped; unevenly spaced, it becomes the
    observation times. Says which on stderr."""
    names, unchanged = data.emission_columns, (data, args.times)
    if (args.emission_columns is not None or args.times is not None or not names or len(names) < 2
            or not _TIME_NAMES.fullmatch(names[0])):
        return unchanged
    ys = data.emissions if isinstance(data.emissions, list) else [data.emissions]
    columns = [y[:, 0] for y in ys]
    if not all(np.all(np.isfinite(c)) and np.all(c == np.round(c)) and np.all(np.diff(c) > 0) for c in columns):
        return unchanged
    steps = np.concatenate([np.diff(c) for c in columns])
    if steps.size == 0:
        return unchanged
    rest = [np.ascontiguousarray(y[:, 1:]) for y in ys]
    single = not isinstance(data.emissions, list)
    if np.all(steps == steps[0]):
        times, times_column = None, None
        _warn(args, f"column {names[0]!r} holds evenly spaced increasing integers (a time index?): not fitted as "
                    f"an emission; give --emission-columns to fit it")
    else:
        times, times_column = (columns[0] if single else columns), names[0]
        _warn(args, f"column {names[0]!r} holds unevenly spaced increasing integers: used as the observation "
                    f"times (--times {names[0]}), so a continuous-time model is fitted; give --emission-columns "
                    f"to fit it as an emission instead")
    return io.Data(rest[0] if single else rest, data.inputs, times, data.sequence_ids, names[1:],
                   data.input_columns), times_column


def _sequences(data: io.Data):
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


def _check_out(path: str | None, suffixes, option: str = "--out") -> str | None:
    """Checks an output path before any work is done."""
    if path is None:
        return None
    ext = os.path.splitext(path)[1].lower()
    if ext not in suffixes:
        raise CommandError(f"{option}: unknown format {ext or '(no extension)'!r} for {path} "
                           f"(expected {' or '.join(suffixes)})")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{option}: {path} is a directory")
    return path


def _check_model_data(model, model_path: str, ys, us, data_path: str):
    p = ys[0].shape[1]
    if p != model.emission_dim:
        raise CommandError(f"{data_path}: {p} emission columns, but {model_path} has emission_dim "
                           f"{model.emission_dim}")
    m = 0 if us is None else us[0].shape[1]
    if m != model.input_dim:
        if us is None:
            raise CommandError(f"{data_path}: no inputs, but {model_path} has input_dim {model.input_dim} (give "
                               f"them with --input-columns for CSV or an 'inputs' array in .npz)")
        raise CommandError(f"{data_path}: {m} input columns, but {model_path} has input_dim {model.input_dim}")


def _time_kwargs(model, model_path: str, ts) -> dict:
    """The ``times=`` keyword of a continuous-time model's methods (empty for a discrete one)."""
    kind = io.kind_of(model).name
    if kind == "discrete":
        if ts is not None:
            raise CommandError(f"--times: {model_path} is a discrete-time model, which takes no observation times")
        return {}
    if ts is None:
        raise CommandError(f"{model_path} is a {kind}-time model: give observation times with --times COLUMN "
                           f"(CSV) or a 'times' array (.npz)")
    return {"times": ts}


def _ids(data: io.Data, count: int):
    return list(data.sequence_ids) if data.sequence_ids is not None else [str(i) for i in range(count)]


def _write_results(path: str, single: bool, ids, index, per_step: dict, per_sequence: dict | None = None):
    """Writes per-step results (dict name -> list of (num_steps_i, ...) arrays, one per sequence).

    ``.npz``: arrays (num_steps, ...) for a single sequence, else NaN-padded
    (num_sequences, max_num_steps, ...) with ``sequence_ids`` and ``sequence_lengths``;
    ``per_sequence`` values (one per sequence) are added as they are.
    CSV: one row per step of every sequence; columns ``sequence`` (several
    sequences only), ``t`` (the step index or time), then the arrays' columns.
    """
    lengths = [len(x) for x in index]
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        out = {}
        if single:
            out["t"] = index[0]
            out.update({k: v[0] for k, v in per_step.items()})
            out.update({k: v[0] for k, v in (per_sequence or {}).items()})
        else:
            out["sequence_ids"] = np.array(ids)
            out["sequence_lengths"] = np.array(lengths)
            out["t"] = _pad(index)
            out.update({k: _pad(v) for k, v in per_step.items()})
            out.update({k: np.asarray(v) for k, v in (per_sequence or {}).items()})
        io.write_arrays(path, **out)
        return
    table = {}
    if not single:
        table["sequence"] = np.array([i for i, n in zip(ids, lengths) for _ in range(n)])
    table["t"] = np.concatenate(index)
    table.update({k: np.concatenate(v) for k, v in per_step.items()})
    io.write_arrays(path, **table)


def _pad(items) -> np.ndarray:
    longest = max(len(x) for x in items)
    out = []
    for x in items:
        x = np.asarray(x, dtype=np.float64)
        width = [(0, longest - len(x))] + [(0, 0)] * (x.ndim - 1)
        out.append(np.pad(x, width, constant_values=np.nan))
    return np.stack(out)


def _step_index(ys, ts):
    """Per sequence, the times (continuous-time data) or the step indices 0, 1, ..."""
    if ts is not None:
        return [np.asarray(t, dtype=np.float64) for t in ts]
    return [np.arange(len(y), dtype=np.int64) for y in ys]


def _stds(covs) -> np.ndarray:
    return np.sqrt(np.maximum(np.diagonal(np.asarray(covs), axis1=-2, axis2=-1), 0.0))


# ---------------------------------------------------------------------------
# lgssm fit

def _fit_arguments(p):
    _add_data_arguments(p, "column of observation times: fits a continuous-time model (lgssm.ContinuousTimeSSM)")
    p.add_argument("--state-dim", type=int, metavar="N", help="latent state dimension (required unless --init)")
    p.add_argument("--method", choices=METHODS, default="em", help="em (default), sgd (Adam) or lbfgs")
    p.add_argument("--iters", type=int, metavar="K", help="EM iterations, SGD epochs or L-BFGS iterations "
                   f"(default: {', '.join(f'{k} {v}' for k, v in DEFAULT_ITERS.items())})")
    p.add_argument("--learning-rate", type=float, metavar="LR", help="Adam learning rate (--method sgd; default 1e-3)")
    p.add_argument("--batch-size", type=int, default=1, metavar="B", help="sequences per Adam step (--method sgd)")
    p.add_argument("--tolerance", type=float, default=0.0, help="EM stops when the relative change of the log "
                   "likelihood is at most this (default 0: run all iterations)")
    p.add_argument("--freeze", action="append", metavar="NAME", nargs="+", default=[],
                   help="parameters kept at their initial values, e.g. dynamics.weights or a whole group "
                   "(initial, dynamics, emissions); repeatable or comma-separated")
    p.add_argument("--emission-cov", choices=STRUCTURES, help="structure of emissions.cov kept by the fit "
                   "(default: full, or as in --init)")
    p.add_argument("--init", metavar="MODEL.json", help="start from this model (and its frozen parameters)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialization and of SGD (default 0)")
    p.add_argument("--out", required=True, metavar="MODEL.json", help="where to write the fitted model")


def _fit(args) -> int:
    import lgssm

    out = _check_out(args.out, (".json",))
    if args.iters is not None and args.iters < 0:
        raise CommandError(f"--iters: expected an integer >= 0, got {args.iters}")
    if args.learning_rate is not None and args.method != "sgd":
        raise CommandError("--learning-rate applies to --method sgd only")
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise CommandError(f"--learning-rate: expected a positive number, got {args.learning_rate}")
    if args.state_dim is None and args.init is None:
        raise CommandError("--state-dim N is required (or start from a model with --init)")
    if args.state_dim is not None and args.state_dim < 1:
        raise CommandError(f"--state-dim: expected an integer >= 1, got {args.state_dim}")
    data, times_column = _time_like_column(args, _read(args))
    ys, us, ts = _sequences(data)
    require_observed(args.data, ys)
    emission_dim, input_dim = ys[0].shape[1], 0 if us is None else us[0].shape[1]

    if args.init is not None:
        model, params, props = io.load_model(args.init)
        if args.state_dim is not None and args.state_dim != model.state_dim:
            raise CommandError(f"--state-dim {args.state_dim} differs from the state_dim {model.state_dim} "
                               f"of --init {args.init}")
        _check_model_data(model, args.init, ys, us, args.data)
    else:
        cls = lgssm.ContinuousTimeSSM if ts is not None else lgssm.LinearGaussianSSM
        try:
            model = cls(args.state_dim, emission_dim, input_dim)
        except ValueError as err:
            raise _renamed(err, "state_dim", "--state-dim") from None
        params, props = model.initialize(args.seed)
    extra = _time_kwargs(model, args.init or "the model", ts)

    if args.emission_cov is not None:
        props.emissions.cov.structure = args.emission_cov
        params.emissions.cov = _project(params.emissions.cov, args.emission_cov)
    _freeze(props, args.freeze)

    method, label = args.method, METHOD_LABELS[args.method]
    if not hasattr(model, f"fit_{method}"):
        raise CommandError(f"--method {method}: not available for {type(model).__name__} (use "
                           f"{' or '.join(m for m in METHODS if hasattr(model, f'fit_{m}'))})")
    iters = DEFAULT_ITERS[method] if args.iters is None else args.iters
    verbose = not args.quiet
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method == "em":
            fitted, history, summary = model.fit_em(params, props, ys, inputs=us, num_iters=iters, verbose=verbose,
                                                    tolerance=args.tolerance, return_summary=True, **extra)
        elif method == "sgd":
            lr = 1e-3 if args.learning_rate is None else args.learning_rate
            fitted, history, summary = model.fit_sgd(params, props, ys, inputs=us, optimizer=lgssm.optimizers.adam(lr),
                                                     batch_size=args.batch_size, num_epochs=iters, key=args.seed,
                                                     verbose=verbose, return_summary=True, **extra)
        else:
            fitted, history, summary = model.fit_lbfgs(params, props, ys, inputs=us, max_iters=iters, verbose=verbose,
                                                       return_summary=True, **extra)
    for w in caught:
        if not re.match(r".* stopped: ", str(w.message)):  # a numerical failure is reported below
            _warn(args, str(w.message))
    if summary.termination == "numerical_failure":
        reason = summary.message.split("; returning")[0]  # the library returns the last good parameters; we write none
        raise NumericalFailure(f"{label} failed: {reason}; no model written (try fewer --iters, "
                               f"--emission-cov diagonal, or another --method)")
    loglik = float(np.sum(model.marginal_log_prob(fitted, ys, inputs=us, **extra)))
    if not math.isfinite(loglik):
        raise NumericalFailure(f"{label} ended with a log likelihood of {loglik}; no model written")
    metadata = {
        "lgssm_version": lgssm.__version__,
        "fit": {"method": method, "iterations": summary.iterations, "termination": summary.termination,
                "message": summary.message, "seed": args.seed,
                "history_kind": "loss" if method == "sgd" else "marginal_loglik", "history": np.asarray(history)},
        "data": {"path": args.data, "num_sequences": len(ys), "num_timesteps": [len(y) for y in ys],
                 "columns": _columns(args, data, times_column)},
        "marginal_loglik": loglik,
    }
    io.save_model(out, model, fitted, props, metadata=metadata)
    _note(args, f"{label}: {summary.iterations} iterations ({summary.termination}); marginal log likelihood "
                f"{loglik:.6g}; wrote {out}")
    return EXIT_OK


def _columns(args, data: io.Data, times_column) -> dict | None:
    """What the model file remembers of the CSV columns (None for NPY/NPZ data)."""
    if data.emission_columns is None:
        return None
    return {"emissions": list(data.emission_columns), "inputs": data.input_columns, "times": times_column,
            "sequence": args.sequence_column, "header": args.header}


def _project(cov, structure: str) -> np.ndarray:
    """``cov`` (or each entry of a stack) made diagonal or scalar, for a fit that keeps that structure."""
    cov = np.asarray(cov, dtype=np.float64)
    if structure == "full":
        return cov
    d = np.diagonal(cov, axis1=-2, axis2=-1)
    if structure == "scalar":
        d = np.broadcast_to(d.mean(axis=-1, keepdims=True), d.shape)
    return d[..., :, None] * np.eye(cov.shape[-1])


def _freeze(props, names):
    groups = {g: field_names(v) for g, v in param_groups(props)}
    valid = [g for g in groups] + [f"{g}.{f}" for g, fs in groups.items() for f in fs]
    for name in (n.strip() for chunk in names for item in chunk for n in item.split(",") if n.strip()):
        if name not in valid:
            raise CommandError(f"--freeze: unknown parameter {name!r} (expected one of {', '.join(valid)})")
        group, _, field = name.partition(".")
        for f in ([field] if field else groups[group]):
            getattr(getattr(props, group), f).trainable = False


# ---------------------------------------------------------------------------
# lgssm smooth / forecast / loglik

def _model_data_arguments(p):
    p.add_argument("model", metavar="MODEL.json", help="a model written by 'lgssm fit'")
    _add_data_arguments(p, "column of observation times (continuous-time models)")


_COLUMN_TYPES = {"emissions": (list, "a list of column names"), "inputs": (list, "a list of column names"),
                 "times": (str, "a column name"), "sequence": (str, "a column name"), "header": (bool, "true or false")}


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
            raise io.ModelFileError(f"{path}: unknown key 'metadata.data.columns.{key}' (expected "
                                    f"{', '.join(_COLUMN_TYPES)})")
        ok = value is None or (isinstance(value, kind) and (kind is not list or all(isinstance(v, str) for v in value)))
        if not ok:
            raise io.ModelFileError(f"{path}: metadata.data.columns.{key} must be {what} or null, got "
                                    f"{str(value)[:40]}")
    return columns


def _load(args):
    model, params, _ = io.load_model(args.model)
    data = _read(args, _remembered_columns(args.model))
    ys, us, ts = _sequences(data)
    _check_model_data(model, args.model, ys, us, args.data)
    return model, params, data, ys, us, ts, _time_kwargs(model, args.model, ts)


def _smooth_arguments(p):
    _model_data_arguments(p)
    p.add_argument("--out", required=True, metavar="OUT", help="results (.npz or .csv): smoothed_means, "
                   "smoothed_stds, smoothed_covariances, emission_means, emission_stds (posterior predictive)")


def _smooth(args) -> int:
    out = _check_out(args.out, RESULT_SUFFIXES)
    model, params, data, ys, us, ts, extra = _load(args)
    post = model.smoother(params, ys, inputs=us, **extra)
    em_means, em_stds = model.posterior_predictive(params, ys, inputs=us, **extra)
    lls = np.array([p.marginal_loglik for p in post], dtype=np.float64)
    if not np.all(np.isfinite(lls)):
        raise NumericalFailure(f"the log likelihood of sequence {int(np.flatnonzero(~np.isfinite(lls))[0])} is "
                               f"{lls[~np.isfinite(lls)][0]}; no output written")
    per_step = {
        "smoothed_means": [p.smoothed_means for p in post],
        "smoothed_stds": [_stds(p.smoothed_covariances) for p in post],
        "smoothed_covariances": [p.smoothed_covariances for p in post],
        "emission_means": list(em_means),
        "emission_stds": list(em_stds),
    }
    single = isinstance(data.emissions, np.ndarray) and data.emissions.ndim == 2
    _write_results(out, single, _ids(data, len(ys)), _step_index(ys, ts), per_step, {"marginal_loglik": lls})
    _note(args, f"smoothed {len(ys)} sequence(s); wrote {out}")
    return EXIT_OK


def _forecast_arguments(p):
    _model_data_arguments(p)
    p.add_argument("--steps", type=int, required=True, metavar="K", help="number of steps to forecast past the "
                   "end of each sequence (inputs over the horizon are taken as zero)")
    p.add_argument("--forecast-dt", type=float, metavar="DT", help="continuous-time models: the time between "
                   "forecasts, which are at t_last + DT, t_last + 2 DT, ...")
    p.add_argument("--out", required=True, metavar="OUT", help="results (.npz or .csv): means, covariances, "
                   "emission_means, emission_covariances, emission_stds of the K future steps")


def _forecast(args) -> int:
    out = _check_out(args.out, RESULT_SUFFIXES)
    if args.steps < 1:
        raise CommandError(f"--steps: expected an integer >= 1, got {args.steps}")
    model, params, data, ys, us, ts, extra = _load(args)
    memory("--steps", args.steps, len(ys) * args.steps * (model.state_dim + model.emission_dim + 1) ** 2,
           "the forecast means and covariances", "fewer --steps")
    if extra:  # continuous time: forecasts at given future times
        if args.forecast_dt is None or not args.forecast_dt > 0:
            raise CommandError(f"--forecast-dt DT: a positive time between forecasts is needed to forecast the "
                               f"continuous-time model {args.model}")
        index = [t[-1] + args.forecast_dt * np.arange(1, args.steps + 1) for t in ts]
        means, covs, em_means, em_covs = model.forecast(params, ys, forecast_times=index, inputs=us, **extra)
    else:
        if args.forecast_dt is not None:
            raise CommandError(f"--forecast-dt applies to continuous-time models; {args.model} is discrete-time")
        index = [np.arange(len(y), len(y) + args.steps, dtype=np.int64) for y in ys]
        means, covs, em_means, em_covs = model.forecast(params, ys, args.steps, inputs=us)
    for name, arr in (("means", means), ("emission_covariances", em_covs)):
        if not all(np.all(np.isfinite(a)) for a in arr):
            raise NumericalFailure(f"forecast {name} are not finite; no output written")
    per_step = {"means": list(means), "covariances": list(covs), "emission_means": list(em_means),
                "emission_covariances": list(em_covs), "emission_stds": [_stds(c) for c in em_covs]}
    single = isinstance(data.emissions, np.ndarray) and data.emissions.ndim == 2
    _write_results(out, single, _ids(data, len(ys)), index, per_step)
    _note(args, f"forecast {args.steps} steps of {len(ys)} sequence(s); wrote {out}")
    return EXIT_OK


def _loglik_arguments(p):
    _model_data_arguments(p)
    p.add_argument("--out", metavar="OUT", help="also write the per-sequence values (.npz or .csv)")


def _loglik(args) -> int:
    out = _check_out(args.out, RESULT_SUFFIXES)
    model, params, data, ys, us, ts, extra = _load(args)
    lls = np.atleast_1d(np.asarray(model.marginal_log_prob(params, ys, inputs=us, **extra), dtype=np.float64))
    total = float(np.sum(lls))
    if not math.isfinite(total):
        raise NumericalFailure(f"the log likelihood is {total} (overflow or an ill-conditioned model)")
    if out is not None:
        io.write_arrays(out, sequence=np.array(_ids(data, len(ys))), marginal_loglik=lls)
    print(repr(total))
    return EXIT_OK


# ---------------------------------------------------------------------------
# lgssm simulate

def _simulate_arguments(p):
    p.add_argument("model", metavar="MODEL.json", help="a model written by 'lgssm fit'")
    p.add_argument("--steps", type=int, required=True, metavar="T", help="time steps per sequence")
    p.add_argument("--num-sequences", type=int, metavar="N", help="number of sequences; outputs then have a "
                   "leading (num_sequences,) axis (default: one sequence without that axis)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--dt", type=float, metavar="DT", help="continuous-time models: the time between steps "
                   "(the output then has 'times')")
    p.add_argument("--out", required=True, metavar="OUT", help="states and emissions (.npz or .csv; the .npz is "
                   "valid DATA for the other commands); inputs, if the model has any, are zero and written too")


def _simulate(args) -> int:
    out = _check_out(args.out, RESULT_SUFFIXES)
    if args.steps < 1:
        raise CommandError(f"--steps: expected an integer >= 1, got {args.steps}")
    if args.num_sequences is not None and args.num_sequences < 1:
        raise CommandError(f"--num-sequences: expected an integer >= 1, got {args.num_sequences}")
    model, params, _ = io.load_model(args.model)
    rng = np.random.default_rng(args.seed)
    count = 1 if args.num_sequences is None else args.num_sequences
    memory("--steps", args.steps, count * args.steps * (model.state_dim + model.emission_dim + model.input_dim + 1),
           f"{count} sequence(s) of states, emissions and inputs", "fewer --steps or --num-sequences")
    inputs = np.zeros((args.steps, model.input_dim))
    if io.kind_of(model).name == "discrete":
        if args.dt is not None:
            raise CommandError(f"--dt applies to continuous-time models; {args.model} is discrete-time")
        times = None
        draws = [model.sample(params, rng, args.steps, inputs=inputs) for _ in range(count)]
    else:
        if args.dt is None or not args.dt > 0:
            raise CommandError(f"--dt DT: a positive time step is needed to simulate the continuous-time model "
                               f"{args.model}")
        times = args.dt * np.arange(args.steps, dtype=np.float64)
        draws = [model.sample(params, rng, times=times, inputs=inputs) for _ in range(count)]
    arrays = {"states": [np.asarray(d[0]) for d in draws], "emissions": [np.asarray(d[1]) for d in draws]}
    if model.input_dim:
        arrays["inputs"] = [inputs] * count
    if times is not None:
        arrays["times"] = [times] * count
    if not all(np.all(np.isfinite(e)) for e in arrays["emissions"]):
        raise NumericalFailure("the simulated emissions are not finite (unstable dynamics?); no output written")
    if out.endswith(".npz"):
        if args.num_sequences is None:
            io.write_arrays(out, **{k: v[0] for k, v in arrays.items()})
        else:
            io.write_arrays(out, **{k: np.stack(v) for k, v in arrays.items()})
    else:
        arrays.pop("times", None)  # the t column holds them
        index = np.arange(args.steps, dtype=np.int64) if times is None else times
        _write_results(out, args.num_sequences is None, [str(i) for i in range(count)], [index] * count, arrays)
    _note(args, f"simulated {count} sequence(s) of {args.steps} steps; wrote {out}")
    return EXIT_OK


register_command("fit", "fit a model to data (EM, SGD or L-BFGS) and write it as JSON", _fit_arguments, _fit)
register_command("smooth", "smoothed states and emissions given data", _smooth_arguments, _smooth)
register_command("forecast", "forecast states and emissions past the end of the data", _forecast_arguments,
                 _forecast)
register_command("simulate", "sample states and emissions from a model", _simulate_arguments, _simulate)
register_command("loglik", "print the marginal log likelihood log p(data)", _loglik_arguments, _loglik)
# 'lgssm demo' comes from the optional module lgssm.demo (see PLUGINS), or register_command("demo", ...) here.


if __name__ == "__main__":
    sys.exit(main())
