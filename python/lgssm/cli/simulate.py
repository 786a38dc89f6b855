"""``lgssm simulate``: samples states and emissions from a model."""

from __future__ import annotations

import numpy as np

from .. import io
from .._checks import memory
from ._messages import note
from ._results import RESULT_SUFFIXES, add_out_argument, check_out, write_results
from .errors import EXIT_OK, CommandError, NumericalFailure, check_at_least


def add_arguments(p):
    p.add_argument("model", metavar="MODEL.json", help="a model written by 'lgssm fit'")
    p.add_argument("--steps", type=int, required=True, metavar="T", help="time steps per sequence")
    p.add_argument(
        "--num-sequences",
        type=int,
        metavar="N",
        help="number of sequences; outputs then have a "
        "leading (num_sequences,) axis (default: one sequence without that axis)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--dt",
        type=float,
        metavar="DT",
        help="continuous-time models: the time between steps (the output then has 'times')",
    )
    add_out_argument(
        p,
        "states and emissions (.npz or .csv; the .npz is "
        "valid DATA for the other commands); inputs, if the model has any, are zero and written too",
    )


def run(args) -> int:
    out = check_out(args.out, RESULT_SUFFIXES)
    check_at_least("--steps", args.steps, 1)
    check_at_least("--num-sequences", args.num_sequences, 1)
    model, params, _ = io.load_model(args.model)
    rng = np.random.default_rng(args.seed)
    count = 1 if args.num_sequences is None else args.num_sequences
    memory(
        "--steps",
        args.steps,
        count * args.steps * (model.state_dim + model.emission_dim + model.input_dim + 1),
        f"{count} sequence(s) of states, emissions and inputs",
        "fewer --steps or --num-sequences",
    )
    inputs = np.zeros((args.steps, model.input_dim))
    if io.kind_of(model).name == "discrete":
        if args.dt is not None:
            raise CommandError(f"--dt applies to continuous-time models; {args.model} is discrete-time")
        times = None
        draws = [model.sample(params, rng, args.steps, inputs=inputs) for _ in range(count)]
    else:
        if args.dt is None or not args.dt > 0:
            raise CommandError(
                f"--dt DT: a positive time step is needed to simulate the continuous-time model {args.model}"
            )
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
        write_results(out, args.num_sequences is None, [str(i) for i in range(count)], [index] * count, arrays)
    note(args, f"simulated {count} sequence(s) of {args.steps} steps; wrote {out}")
    return EXIT_OK
