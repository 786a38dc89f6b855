"""Fitting and inference over many sequences on a Dask cluster (extra ``lgssm[dask]``).

The sequences live on the workers in shards: a chunk (along the sequence axis)
of a NaN-padded dask array, a partition of a dask bag, or a file that a worker
reads itself. ``persist`` loads them once; every call below accepts either such
persisted ``Sequences`` or the raw data (then persisted for that call). Each EM
iteration sends the parameters to the cluster once, computes every shard's
sufficient statistics on the worker holding it (the C++ E-step), sums them by a
tree reduction and runs the M-step on the client; only parameters and
statistics travel. Sequence order is shard order, then order within a shard, so
a fit equals the single-process fit on the concatenated sequences.

Faults: shards are persisted with their lineage, so Dask recomputes (or re-reads)
the shards of a lost worker; ``checkpoint=PATH`` writes the parameters and the
history after every iteration (an lgssm model file, written atomically) and a
fit given an existing checkpoint resumes from it. See docs/distributed.md.

The modules: ``_data`` (the sequences on the workers), ``_engines`` (what the
fits need of a model, and the E-step on the cluster), ``fit`` (EM and SGD) and
``inference`` (log likelihoods and smoothers of all sequences).
"""

try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError(f"lgssm.distributed needs Dask: pip install 'lgssm[dask]' ({err})") from None

from ._data import Sequences, persist
from ._engines import ContinuousEM, DiscreteEM
from .fit import fit_em, fit_sgd
from .inference import marginal_log_prob, smoother

__all__ = ["ContinuousEM", "DiscreteEM", "Sequences", "fit_em", "fit_sgd", "marginal_log_prob", "persist", "smoother"]
