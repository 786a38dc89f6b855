"""Bootstrap intervals for the free parameters of a fit: parametric, or by
resampling the standardized innovations (Stoffer & Wall 1991).

Each replicate makes a data set like the original (the same sequences, lengths,
inputs and missing pattern), refits it from the fitted parameters, and keeps the
free parameters' estimates (the rows of ``lgssm.diagnostics.parameter_table``):

- ``"parametric"``: the data are drawn from the fitted model.
- ``"innovations"``: the standardized innovations w_t = L_t^{-1} v_t of the data
  under the fitted model (``lgssm.diagnostics.innovations``) are resampled with
  replacement, each step's from the steps observed in the same components (all of
  them, when nothing is missing), and turned back into emissions by the innovations
  form of the filter (``_core.emissions_from_innovations``; Stoffer & Wall 1991,
  "Bootstrapping state-space models: Gaussian maximum likelihood estimation and the
  Kalman filter", JASA 86, Sec. 3). It does not assume Gaussian innovations. The
  first ``burn`` steps of each sequence keep their own innovations.

The replicates are independent: they run on ``num_workers`` threads (the C++ fits
release the GIL) or, given a Dask client, as one task each. Replicate r draws from
``numpy.random.SeedSequence(key).spawn(num_replicates)[r]``, so the result does not
depend on how the work is spread.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import _core
from ._checks import count
from ._progress import ProgressBar

__all__ = ["BootstrapResult"]

_METHODS = ("parametric", "innovations")
_PENDING = object()


@dataclass
class BootstrapResult:
    """The bootstrap distribution of the free parameters.

    Parameters
    ----------
    names : list of str
        The free parameters' labels (``parameter_table``'s).
    estimates : array, shape (num_params,)
        The fitted values.
    replicates : array, shape (num_succeeded, num_params)
        One row per replicate whose refit succeeded.
    method : str
        ``"parametric"`` or ``"innovations"``.
    num_failed : int
        Replicates whose refit raised an error (left out).
    """

    names: list
    estimates: np.ndarray
    replicates: np.ndarray
    method: str
    num_failed: int = 0

    @property
    def standard_errors(self) -> np.ndarray:
        """The standard deviation of each parameter over the replicates (ddof 1)."""
        return np.std(self.replicates, axis=0, ddof=1)

    def intervals(self, level: float = 0.95) -> np.ndarray:
        """Percentile intervals: the (1 - level) / 2 and (1 + level) / 2 quantiles.

        Parameters
        ----------
        level : float, default 0.95
            The coverage, in (0, 1).

        Returns
        -------
        array, shape (num_params, 2)
            Lower and upper bounds per parameter.
        """
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
        a = (1.0 - float(level)) / 2.0
        return np.quantile(self.replicates, [a, 1.0 - a], axis=0).T

    def __str__(self) -> str:
        lo_hi = self.intervals()
        width = max(len("parameter"), *(len(n) for n in self.names)) + 2
        lines = [
            f"{self.method} bootstrap, {len(self.replicates)} replicates"
            + (f" ({self.num_failed} failed)" if self.num_failed else ""),
            "parameter".ljust(width) + f"{'estimate':>12}{'std err':>12}{'[0.025':>12}{'0.975]':>12}",
        ]
        for name, est, se, (lo, hi) in zip(self.names, self.estimates, self.standard_errors, lo_hi):
            lines.append(name.ljust(width) + f"{est:>12.6g}{se:>12.6g}{lo:>12.6g}{hi:>12.6g}")
        return "\n".join(lines)


def _free_values(params, props) -> tuple[list, np.ndarray]:
    from .diagnostics import parameter_table

    rows = [(name, v) for name, v in parameter_table(params, props) if not isinstance(v, str)]
    return [name for name, _ in rows], np.array([v for _, v in rows], dtype=np.float64)


def _pools(standardized: list, burn: int) -> dict:
    """The (sequence, step) pairs of each observed pattern, steps from ``burn`` on."""
    pools: dict = {}
    for i, w in enumerate(standardized):
        for t in range(burn, w.shape[0]):
            pattern = np.isfinite(w[t]).tobytes()
            pools.setdefault(pattern, []).append((i, t))
    return pools


def _resampled(standardized: list, burn: int, rng: np.random.Generator) -> list:
    """The standardized innovations with each step from ``burn`` on drawn from its pattern's pool."""
    out = [w.copy() for w in standardized]
    for members in _pools(standardized, burn).values():
        draws = rng.integers(0, len(members), size=len(members))
        for (i, t), d in zip(members, draws):
            j, s = members[d]
            out[i][t] = standardized[j][s]
    return out


def _replicate(
    model, params, props, emissions, inputs, times, discrete, fit, num_iters, method, seed, standardized, burn
):
    """One replicate: the refit's free values, or None when the refit fails. ``times`` and
    ``discrete``: a continuous-time model's per-sequence times and the discrete-time parameters
    at them (None in discrete time)."""
    from .diagnostics import _fit

    rng = np.random.default_rng(seed)
    step = {} if times is None else {"times": times}
    if method == "parametric":
        data = []
        for i, (y, u) in enumerate(zip(emissions, inputs)):
            if times is None:
                _, sim = model.sample(params, rng, y.shape[0], u)
            else:
                _, sim = model.sample(params, rng, times=times[i], inputs=u)
            data.append(np.where(np.isnan(y), np.nan, sim))
    else:
        resampled = _resampled(standardized, burn, rng)
        if times is None:
            data = _core.emissions_from_innovations(model.core_params(params), emissions, inputs, resampled)
        else:  # each sequence through the discrete-time model of its times
            data = [
                _core.emissions_from_innovations(model._discrete.core_params(d), [y], [u], [w])[0]
                for y, u, d, w in zip(emissions, inputs, discrete, resampled)
            ]
    try:
        fitted, _ = _fit(model, params, props, data, inputs, fit, num_iters, **step)
    except (ValueError, RuntimeError):  # e.g. a replicate whose fit reaches a singular covariance
        return None
    return _free_values(fitted, props)[1]


def run(
    result,
    num_replicates: int = 200,
    method: str = "parametric",
    fit: str = "lbfgs",
    num_iters: int = 1000,
    key=0,
    num_workers: int | None = None,
    client=None,
    progress: bool = False,
) -> BootstrapResult:
    """``FitResult.bootstrap`` (documented there; see also the module's docstring)."""
    from ._keys import as_generator
    from .diagnostics import _check_fit

    method = str(method)
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
    _check_fit(fit)
    num_replicates = count("num_replicates", num_replicates, 2)
    num_iters = count("num_iters", num_iters, 1)
    workers = count("num_workers", num_workers, 1) if num_workers is not None else (os.cpu_count() or 1)
    model, params, props = result.model, result.params, result.props
    b, times = result._sequences()
    emissions, inputs = list(b.emissions), list(b.inputs)
    standardized = None
    if method == "innovations":
        standardized = [np.asarray(i.standardized_innovations) for i in result._innovations_list()]
    names, estimates = _free_values(params, props)
    seed_seq = np.random.SeedSequence(int(as_generator(key).integers(0, 2**63 - 1)))
    seeds = [np.random.default_rng(s) for s in seed_seq.spawn(num_replicates)]
    discrete = None if times is None else result._discrete_params()
    args = (model, params, props, emissions, inputs, times, discrete, fit, num_iters, method)
    bar = ProgressBar(num_replicates, f"bootstrap ({method}), failed:", enabled=progress)
    outcomes: list = [_PENDING] * num_replicates
    try:
        if client is not None:
            from dask.distributed import as_completed

            futures = {
                client.submit(_replicate, *args, seeds[r], standardized, result.burn, pure=False): r
                for r in range(num_replicates)
            }
            for done, future in enumerate(as_completed(futures)):
                outcomes[futures[future]] = future.result()
                bar(done, sum(o is None for o in outcomes if o is not _PENDING))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                jobs = [
                    pool.submit(_replicate, *args, seeds[r], standardized, result.burn) for r in range(num_replicates)
                ]
                for r, job in enumerate(jobs):
                    outcomes[r] = job.result()
                    bar(r, sum(o is None for o in outcomes[: r + 1]))
    finally:
        bar.close()
    kept = [o for o in outcomes if o is not None]
    failed = num_replicates - len(kept)
    if len(kept) < 2:
        raise RuntimeError(f"bootstrap: {failed} of {num_replicates} refits failed; no interval can be formed")
    if failed > num_replicates // 10:
        warnings.warn(f"bootstrap: {failed} of {num_replicates} refits failed and are left out", stacklevel=3)
    return BootstrapResult(names, estimates, np.vstack(kept), method, failed)
