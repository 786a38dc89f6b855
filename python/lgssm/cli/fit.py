"""``lgssm fit``: fits a model to data (EM, SGD or L-BFGS) and writes it as JSON."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np

from .. import ContinuousTimeSSM, LinearGaussianSSM, __version__, io
from .._checks import require_observed
from ..optimizers import adam
from ..params import field_names, param_groups, project_covariance
from ._data import add_data_arguments, check_model_data, read_data_file, sequences, time_kwargs
from ._messages import note, warn
from ._results import check_out
from .diagnose import REPORT_SUFFIXES, fit_result, write_report
from .errors import EXIT_OK, CommandError, NumericalFailure, check_at_least

STRUCTURES = ("full", "diagonal", "scalar")
METHODS = ("em", "sgd", "lbfgs")
DEFAULT_ITERS = {"em": 50, "sgd": 50, "lbfgs": 1000}  # the Python API's defaults
METHOD_LABELS = {"em": "EM", "sgd": "SGD", "lbfgs": "L-BFGS"}


def add_arguments(p):
    add_data_arguments(p, "column of observation times: fits a continuous-time model (lgssm.ContinuousTimeSSM)")
    p.add_argument("--state-dim", type=int, metavar="N", help="latent state dimension (required unless --init)")
    p.add_argument("--method", choices=METHODS, default="em", help="em (default), sgd (Adam) or lbfgs")
    p.add_argument(
        "--iters",
        type=int,
        metavar="K",
        help="EM iterations, SGD epochs or L-BFGS iterations "
        f"(default: {', '.join(f'{k} {v}' for k, v in DEFAULT_ITERS.items())})",
    )
    p.add_argument("--learning-rate", type=float, metavar="LR", help="Adam learning rate (--method sgd; default 1e-3)")
    p.add_argument("--batch-size", type=int, default=1, metavar="B", help="sequences per Adam step (--method sgd)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="EM stops when the relative change of the log likelihood is at most this (default 0: run all iterations)",
    )
    p.add_argument(
        "--freeze",
        action="append",
        metavar="NAME",
        nargs="+",
        default=[],
        help="parameters kept at their initial values, e.g. dynamics.weights or a whole group "
        "(initial, dynamics, emissions); repeatable or comma-separated",
    )
    p.add_argument(
        "--emission-cov",
        choices=STRUCTURES,
        help="structure of emissions.cov kept by the fit (default: full, or as in --init)",
    )
    p.add_argument(
        "--constraints",
        metavar="FILE.json",
        help="element-wise constraints: a JSON object from parameter name (e.g. emissions.weights) to a "
        'pattern (nested lists of numbers, fixed, and names, free; equal names tied) or {"fixed", "design", "names"}',
    )
    p.add_argument("--init", metavar="MODEL.json", help="start from this model (and its frozen parameters)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialization and of SGD (default 0)")
    p.add_argument("--out", required=True, metavar="MODEL.json", help="where to write the fitted model")
    p.add_argument(
        "--report",
        metavar="REPORT",
        help="also write the fit's summary: .txt (the table of parameters, criteria and residual tests) or .json",
    )


def run(args) -> int:
    out = check_out(args.out, (".json",))
    report = None if args.report is None else check_out(args.report, REPORT_SUFFIXES, "--report")
    check_at_least("--iters", args.iters, 0)
    if args.learning_rate is not None and args.method != "sgd":
        raise CommandError("--learning-rate applies to --method sgd only")
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise CommandError(f"--learning-rate: expected a positive number, got {args.learning_rate}")
    if args.state_dim is None and args.init is None:
        raise CommandError("--state-dim N is required (or start from a model with --init)")
    check_at_least("--state-dim", args.state_dim, 1)
    data, times_column = _time_like_column(args, read_data_file(args))
    ys, us, ts = sequences(data)
    require_observed(args.data, ys)
    if report is not None and ts is not None:
        raise CommandError("--report: the summary is available for discrete-time models only (no --times)")
    emission_dim, input_dim = ys[0].shape[1], 0 if us is None else us[0].shape[1]

    if args.init is not None:
        model, params, props = io.load_model(args.init)
        if args.state_dim is not None and args.state_dim != model.state_dim:
            raise CommandError(
                f"--state-dim {args.state_dim} differs from the state_dim {model.state_dim} of --init {args.init}"
            )
        check_model_data(model, args.init, ys, us, args.data)
    else:
        cls = ContinuousTimeSSM if ts is not None else LinearGaussianSSM
        try:
            model = cls(args.state_dim, emission_dim, input_dim)
        except ValueError as err:
            raise _renamed(err, "state_dim", "--state-dim") from None
        params, props = model.initialize(args.seed)
    extra = time_kwargs(model, args.init or "the model", ts)

    if args.emission_cov is not None:
        props.emissions.cov.structure = args.emission_cov
        params.emissions.cov = project_covariance(params.emissions.cov, args.emission_cov)
    _freeze(props, args.freeze)
    if args.constraints is not None:
        _constrain(props, args.constraints)

    method, label = args.method, METHOD_LABELS[args.method]
    if not hasattr(model, f"fit_{method}"):
        raise CommandError(
            f"--method {method}: not available for {type(model).__name__} (use "
            f"{' or '.join(m for m in METHODS if hasattr(model, f'fit_{m}'))})"
        )
    iters = DEFAULT_ITERS[method] if args.iters is None else args.iters
    verbose = not args.quiet
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method == "em":
            fitted, history, summary = model.fit_em(
                params,
                props,
                ys,
                inputs=us,
                num_iters=iters,
                verbose=verbose,
                tolerance=args.tolerance,
                return_summary=True,
                **extra,
            )
        elif method == "sgd":
            lr = 1e-3 if args.learning_rate is None else args.learning_rate
            fitted, history, summary = model.fit_sgd(
                params,
                props,
                ys,
                inputs=us,
                optimizer=adam(lr),
                batch_size=args.batch_size,
                num_epochs=iters,
                key=args.seed,
                verbose=verbose,
                return_summary=True,
                **extra,
            )
        else:
            fitted, history, summary = model.fit_lbfgs(
                params, props, ys, inputs=us, max_iters=iters, verbose=verbose, return_summary=True, **extra
            )
    for w in caught:
        if not re.match(r".* stopped: ", str(w.message)):  # a numerical failure is reported below
            warn(args, str(w.message))
    if summary.termination == "numerical_failure":
        reason = summary.message.split("; returning")[0]  # the library returns the last good parameters; we write none
        raise NumericalFailure(
            f"{label} failed: {reason}; no model written (try fewer --iters, "
            f"--emission-cov diagonal, or another --method)"
        )
    loglik = float(np.sum(model.marginal_log_prob(fitted, ys, inputs=us, **extra)))
    if not math.isfinite(loglik):
        raise NumericalFailure(f"{label} ended with a log likelihood of {loglik}; no model written")
    metadata = {
        "lgssm_version": __version__,
        "fit": {
            "method": method,
            "iterations": summary.iterations,
            "termination": summary.termination,
            "message": summary.message,
            "seed": args.seed,
            "history_kind": "loss" if method == "sgd" else "marginal_loglik",
            "history": np.asarray(history),
        },
        "data": {
            "path": args.data,
            "num_sequences": len(ys),
            "num_timesteps": [len(y) for y in ys],
            "columns": _columns(args, data, times_column),
        },
        "marginal_loglik": loglik,
    }
    result = None
    if report is not None:
        result = fit_result(model, fitted, props, ys, us, 0, fit_summary=summary)
        result.summary()  # everything computed before any file is written
    io.save_model(out, model, fitted, props, metadata=metadata)
    if report is not None and result is not None:
        write_report(report, result)
    note(
        args,
        f"{label}: {summary.iterations} iterations ({summary.termination}); marginal log likelihood "
        f"{loglik:.6g}; wrote {out}",
    )
    return EXIT_OK


def _renamed(err: ValueError, name: str, option: str) -> Exception:
    """``err`` with the library's argument ``name`` replaced by the command-line ``option`` that gave it."""
    message = str(err)
    return CommandError(option + message[len(name) :]) if message.startswith(name + ":") else err


_TIME_NAMES = re.compile(
    r"(year|years|yr|time|times|t|date|day|days|month|week|quarter|period|timestamp|step|"
    r"steps|index|idx)",
    re.IGNORECASE,
)


def _time_like_column(args, data: io.Data) -> tuple[io.Data, str | None]:
    """(data, name of the times column or None). When the user chose neither emission
    columns nor times and the first emission column looks like a time index (named
    like one, increasing integers, no missing values), it is taken out of the
    emissions: evenly spaced, it is dropped; unevenly spaced, it becomes the
    observation times. Says which on stderr."""
    names, unchanged = data.emission_columns, (data, args.times)
    if (
        args.emission_columns is not None
        or args.times is not None
        or not names
        or len(names) < 2
        or not _TIME_NAMES.fullmatch(names[0])
    ):
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
        warn(
            args,
            f"column {names[0]!r} holds evenly spaced increasing integers (a time index?): not fitted as "
            f"an emission; give --emission-columns to fit it",
        )
    else:
        times, times_column = (columns[0] if single else columns), names[0]
        warn(
            args,
            f"column {names[0]!r} holds unevenly spaced increasing integers: used as the observation "
            f"times (--times {names[0]}), so a continuous-time model is fitted; give --emission-columns "
            f"to fit it as an emission instead",
        )
    return io.Data(
        rest[0] if single else rest, data.inputs, times, data.sequence_ids, names[1:], data.input_columns
    ), times_column


def _columns(args, data: io.Data, times_column) -> dict | None:
    """What the model file remembers of the CSV columns (None for NPY/NPZ data)."""
    if data.emission_columns is None:
        return None
    return {
        "emissions": list(data.emission_columns),
        "inputs": data.input_columns,
        "times": times_column,
        "sequence": args.sequence_column,
        "header": args.header,
    }


def _constrain(props, path):
    """Set the constraints of --constraints FILE on ``props``."""
    import json

    from ..constraints import linear, pattern

    where = f"--constraints {path}"
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as err:
        raise CommandError(f"{where}: cannot read it ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CommandError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise CommandError(f"{where}: expected a JSON object from parameter name to constraint")
    groups = {g: field_names(v) for g, v in param_groups(props)}
    valid = [f"{g}.{f}" for g, fs in groups.items() for f in fs]
    for name, spec in doc.items():
        if name not in valid:
            raise CommandError(f"{where}: unknown parameter {name!r} (expected one of {', '.join(valid)})")
        group, _, field = name.partition(".")
        try:
            if isinstance(spec, list):
                constraint = pattern(spec)
            elif (
                isinstance(spec, dict)
                and set(spec) <= {"fixed", "design", "names"}
                and {"fixed", "design"} <= set(spec)
            ):
                constraint = linear(spec["fixed"], spec["design"], spec.get("names"))
            else:
                raise ValueError('expected a pattern (nested lists) or {"fixed", "design", "names"}')
        except ValueError as err:
            raise CommandError(f"{where}: {name}: {err}") from None
        getattr(getattr(props, group), field).constraint = constraint


def _freeze(props, names):
    groups = {g: field_names(v) for g, v in param_groups(props)}
    valid = [g for g in groups] + [f"{g}.{f}" for g, fs in groups.items() for f in fs]
    for name in (n.strip() for chunk in names for item in chunk for n in item.split(",") if n.strip()):
        if name not in valid:
            raise CommandError(f"--freeze: unknown parameter {name!r} (expected one of {', '.join(valid)})")
        group, _, field = name.partition(".")
        for f in [field] if field else groups[group]:
            getattr(getattr(props, group), f).trainable = False
