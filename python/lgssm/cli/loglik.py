"""``lgssm loglik``: the marginal log likelihood log p(data) under a model."""

from __future__ import annotations

import math

import numpy as np

from .. import io
from ._data import add_model_data_arguments, load_model_and_data, sequence_ids
from ._results import RESULT_SUFFIXES, check_out
from .errors import EXIT_OK, NumericalFailure


def add_arguments(p):
    add_model_data_arguments(p)
    p.add_argument("--out", metavar="OUT", help="also write the per-sequence values (.npz or .csv)")


def run(args) -> int:
    out = None if args.out is None else check_out(args.out, RESULT_SUFFIXES)
    model, params, data, ys, us, ts, extra = load_model_and_data(args)
    lls = np.atleast_1d(np.asarray(model.marginal_log_prob(params, ys, inputs=us, **extra), dtype=np.float64))
    total = float(np.sum(lls))
    if not math.isfinite(total):
        raise NumericalFailure(f"the log likelihood is {total} (overflow or an ill-conditioned model)")
    if out is not None:
        io.write_arrays(out, sequence=np.array(sequence_ids(data, len(ys))), marginal_loglik=lls)
    print(repr(total))
    return EXIT_OK
