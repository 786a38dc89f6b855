"""``lgssm smooth`` and ``lgssm forecast``: the posterior of the states and emissions given data,
within the data and past their end."""

from __future__ import annotations

import numpy as np

from .._checks import memory
from ._data import add_model_data_arguments, load_model_and_data, sequence_ids
from ._messages import note
from ._results import RESULT_SUFFIXES, add_out_argument, check_out, stds, step_index, write_results
from .errors import EXIT_OK, CommandError, NumericalFailure, check_at_least


def add_smooth_arguments(p):
    add_model_data_arguments(p)
    add_out_argument(
        p,
        "results (.npz or .csv): smoothed_means, "
        "smoothed_stds, smoothed_covariances, emission_means, emission_stds (posterior predictive)",
    )


def smooth(args) -> int:
    out = check_out(args.out, RESULT_SUFFIXES)
    model, params, data, ys, us, ts, extra = load_model_and_data(args)
    post = model.smoother(params, ys, inputs=us, **extra)
    em_means, em_stds = model.posterior_predictive(params, ys, inputs=us, **extra)
    lls = np.array([p.marginal_loglik for p in post], dtype=np.float64)
    if not np.all(np.isfinite(lls)):
        raise NumericalFailure(
            f"the log likelihood of sequence {int(np.flatnonzero(~np.isfinite(lls))[0])} is "
            f"{lls[~np.isfinite(lls)][0]}; no output written"
        )
    per_step = {
        "smoothed_means": [p.smoothed_means for p in post],
        "smoothed_stds": [stds(p.smoothed_covariances) for p in post],
        "smoothed_covariances": [p.smoothed_covariances for p in post],
        "emission_means": list(em_means),
        "emission_stds": list(em_stds),
    }
    single = isinstance(data.emissions, np.ndarray) and data.emissions.ndim == 2
    write_results(out, single, sequence_ids(data, len(ys)), step_index(ys, ts), per_step, {"marginal_loglik": lls})
    note(args, f"smoothed {len(ys)} sequence(s); wrote {out}")
    return EXIT_OK


def add_forecast_arguments(p):
    add_model_data_arguments(p)
    p.add_argument(
        "--steps",
        type=int,
        required=True,
        metavar="K",
        help="number of steps to forecast past the end of each sequence (inputs over the horizon are taken as zero)",
    )
    p.add_argument(
        "--forecast-dt",
        type=float,
        metavar="DT",
        help="continuous-time models: the time between forecasts, which are at t_last + DT, t_last + 2 DT, ...",
    )
    add_out_argument(
        p,
        "results (.npz or .csv): means, covariances, "
        "emission_means, emission_covariances, emission_stds of the K future steps",
    )


def forecast(args) -> int:
    out = check_out(args.out, RESULT_SUFFIXES)
    check_at_least("--steps", args.steps, 1)
    model, params, data, ys, us, ts, extra = load_model_and_data(args)
    memory(
        "--steps",
        args.steps,
        len(ys) * args.steps * (model.state_dim + model.emission_dim + 1) ** 2,
        "the forecast means and covariances",
        "fewer --steps",
    )
    if extra:  # continuous time: forecasts at given future times
        if args.forecast_dt is None or not args.forecast_dt > 0:
            raise CommandError(
                f"--forecast-dt DT: a positive time between forecasts is needed to forecast the "
                f"continuous-time model {args.model}"
            )
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
    per_step = {
        "means": list(means),
        "covariances": list(covs),
        "emission_means": list(em_means),
        "emission_covariances": list(em_covs),
        "emission_stds": [stds(c) for c in em_covs],
    }
    single = isinstance(data.emissions, np.ndarray) and data.emissions.ndim == 2
    write_results(out, single, sequence_ids(data, len(ys)), index, per_step)
    note(args, f"forecast {args.steps} steps of {len(ys)} sequence(s); wrote {out}")
    return EXIT_OK
