"""What the distributed fits need of a model (its engine: the E-step run on the
workers, the M-step and the rest run on the client), and the E-step over all
shards on the cluster."""

from __future__ import annotations

import distributed
import numpy as np

from .. import _core
from .._batch import Batch
from .._checks import count
from ..continuous import ContinuousTimeSSM, per_sequence_times
from ..models import LinearGaussianSSM
from ..params import from_core, props_to_core
from ._data import Sequences, persist


def worker_threads() -> int:
    """The threads of the Dask worker running this task.

    The C++ E-step keeps to them, so that n worker processes on a machine do not
    each take every core.

    Returns
    -------
    int
        The worker's thread count, or 0 (all hardware threads) outside a worker.
    """
    try:
        return distributed.get_worker().state.nthreads
    except ValueError:
        return 0


class Engine:
    """What the distributed fits and inference need of a model.

    ``stats`` runs on the workers, everything else on the client. DiscreteEM and
    ContinuousEM are the engines of lgssm's models; another model plugs in
    through a subclass (or any object with these methods).

    Parameters
    ----------
    model : LinearGaussianSSM or ContinuousTimeSSM
        The model.
    props : ParamsLGSSM, ParamsCTSSM or None
        The parameter properties of the fit (which parameters are trainable, the
        structure of each covariance); None for inference only.
    """

    def __init__(self, model, props):
        self.model, self.props = model, props

    def stats(self, params, shard: Batch, indices=None):
        """The E-step of a shard's sequences, summed.

        Parameters
        ----------
        params : ParamsLGSSM or ParamsCTSSM
            The parameters.
        shard : lgssm._batch.Batch
            The shard: lists of (num_timesteps_i, emission_dim) emissions and
            (num_timesteps_i, input_dim) inputs (and observation times).
        indices : list of int, optional
            The sequences of the shard to use (minibatch gradients); default all.

        Returns
        -------
        lgssm._core.SufficientStats or lgssm._core.ContinuousStats
            The statistics, summable with ``+``.
        """
        raise NotImplementedError

    def log_prior(self, params) -> float:
        """The log prior density of the parameters, added to the EM objective.

        Parameters
        ----------
        params : ParamsLGSSM or ParamsCTSSM
            Where the prior is evaluated.

        Returns
        -------
        float
            0.0 for a model without priors.
        """
        return 0.0

    def start(self, params):
        """Where EM starts from ``params``.

        Parameters
        ----------
        params : ParamsLGSSM or ParamsCTSSM
            The given starting parameters.

        Returns
        -------
        ParamsLGSSM or ParamsCTSSM
            ``params`` (the discrete engine projects them onto the constraints, as ``model.fit_em`` does).
        """
        return params

    def m_step(self, params, stats):
        """The M-step over the trainable parameters.

        Parameters
        ----------
        params : ParamsLGSSM or ParamsCTSSM
            The current parameters (the frozen ones are kept).
        stats : lgssm._core.SufficientStats or lgssm._core.ContinuousStats
            The summed statistics of all sequences at ``params``.

        Returns
        -------
        ParamsLGSSM or ParamsCTSSM
            The updated parameters.

        Raises
        ------
        ValueError
            When the updated parameters leave the valid parameter set.
        """
        raise NotImplementedError

    def validate(self, params) -> None:
        """Check that ``params`` are valid parameters of the model.

        Parameters
        ----------
        params : ParamsLGSSM or ParamsCTSSM
            The parameters to check (shapes, finiteness, valid covariances).

        Raises
        ------
        ValueError
            Naming the first parameter that is not valid.
        """
        self.model.core_params(params)

    def smoother(self, params, shard: Batch):
        """The smoother of each sequence of a shard.

        Parameters
        ----------
        params : ParamsLGSSM or ParamsCTSSM
            The parameters.
        shard : lgssm._batch.Batch
            The shard.

        Returns
        -------
        list of PosteriorLGSSMSmoothed
            One per sequence, each unpadded ((num_timesteps_i, state_dim) means and so on).
        """
        raise NotImplementedError

    def marginal_log_prob(self, params, shard: Batch) -> np.ndarray:
        """The log likelihood log p(y) of each sequence of a shard.

        Parameters
        ----------
        params, shard : see smoother
            As for `smoother`.

        Returns
        -------
        numpy.ndarray
            (num_sequences_of_shard,).
        """
        raise NotImplementedError


def _documented(cls):
    """Give the methods of ``cls`` that implement an Engine method without a docstring of their own that method's."""
    for name, member in vars(cls).items():
        base = getattr(Engine, name, None)
        if callable(member) and member.__doc__ is None and base is not None:
            member.__doc__ = base.__doc__
    return cls


@_documented
class DiscreteEM(Engine):
    """The engine of a LinearGaussianSSM or LinearGaussianConjugateSSM (EM and SGD).

    Its E-step is per step for per-step emission parameters (EM) and pooled over
    time for a minibatch (SGD).

    Parameters
    ----------
    model : LinearGaussianSSM
        The model; a LinearGaussianConjugateSSM fits with its priors.
    props : ParamsLGSSM or None
        Which parameters the fit changes, and the structure of each covariance;
        None for inference only.
    """

    def stats(self, params, shard: Batch, indices=None) -> _core.SufficientStats:
        core = self.model.core_params(params)
        if indices is None:
            return _core.sufficient_stats(
                core, shard.emissions, shard.inputs, np.ndim(params.emissions.weights) == 3, worker_threads()
            )
        return _core.sufficient_stats(
            core, [shard.emissions[i] for i in indices], [shard.inputs[i] for i in indices], False, worker_threads()
        )

    def log_prior(self, params) -> float:
        return self.model.log_prior(params)

    def start(self, params):
        core = _core.project_constraints(self.model.core_params(params), props_to_core(self.props))
        return from_core(core, params)

    def m_step(self, params, stats):
        fitted = self.model.m_step(params, self.props, stats)
        self.validate(fitted)
        return fitted

    def to_unconstrained(self, params) -> np.ndarray:
        """The unconstrained vector of the trainable parameters (SGD's variables).

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters.

        Returns
        -------
        numpy.ndarray
            (num_unconstrained,): each covariance by the Cholesky factor of its
            structure with a log diagonal, the other trainable parameters as they are.
        """
        return np.asarray(_core.to_unconstrained(self.model.core_params(params), props_to_core(self.props)))

    def from_unconstrained(self, x, base):
        """The parameters at an unconstrained vector, not validated.

        Parameters
        ----------
        x : numpy.ndarray
            (num_unconstrained,), as ``to_unconstrained`` returns it.
        base : ParamsLGSSM
            The parameters the frozen ones are taken from.

        Returns
        -------
        ParamsLGSSM
            The parameters, shaped like ``base``.
        """
        return from_core(_core.from_unconstrained(x, self.model.core_params(base), props_to_core(self.props)), base)

    def minibatch_loss(self, params, stats, batch_weight: float, scale: float):
        """The loss of a minibatch and its gradient, as ``LinearGaussianSSM.fit_sgd`` has them.

        Parameters
        ----------
        params : ParamsLGSSM
            The parameters.
        stats : lgssm._core.SufficientStats
            The minibatch's statistics pooled over time (``stats(..., indices)``).
        batch_weight : float
            The weight of the minibatch: the number of sequences over the minibatch's.
        scale : float
            The number of emission entries of all sequences (the loss is per entry).

        Returns
        -------
        tuple of (float, numpy.ndarray)
            The loss and its gradient over the unconstrained vector (num_unconstrained,).
        """
        return _core.minibatch_loss(
            self.model.core_params(params),
            props_to_core(self.props),
            stats,
            batch_weight,
            scale,
            self.model.core_prior(),
        )

    def smoother(self, params, shard: Batch):
        return self.model.smoother(params, shard.emissions, shard.inputs)

    def marginal_log_prob(self, params, shard: Batch) -> np.ndarray:
        return self.model.marginal_log_prob(params, shard.emissions, shard.inputs)


@_documented
class ContinuousEM(Engine):
    """The engine of a ContinuousTimeSSM (EM only).

    Its generalized EM (as ``ContinuousTimeSSM.fit_em(..., accelerate=False)``),
    log likelihood and smoother, at the observation times that come with the
    data, or at steps ``dt`` apart.

    Parameters
    ----------
    model : ContinuousTimeSSM
        The model.
    props : ParamsCTSSM or None
        The parameter properties of the fit; None for inference only.
    dt : float, optional
        The step between observations, for data without observation times.
    m_step_iters : int, default 10
        L-BFGS iterations for (drift, diffusion_cov) in each M-step.
    """

    def __init__(self, model: ContinuousTimeSSM, props, dt=None, m_step_iters: int = 10):
        super().__init__(model, props)
        self.dt, self.m_step_iters = dt, int(m_step_iters)

    def _times(self, shard: Batch):
        return shard.times if self.dt is None else per_sequence_times(shard, None, self.dt)

    def stats(self, params, shard: Batch, indices=None) -> _core.ContinuousStats:
        return _core.continuous_sufficient_stats(
            self.model.core_params(params), shard.emissions, shard.inputs, self._times(shard), worker_threads()
        )

    def m_step(self, params, stats):
        return self.model.m_step(params, self.props, stats, self.m_step_iters)

    def smoother(self, params, shard: Batch):
        return self.model.smoother(params, shard.emissions, times=self._times(shard), inputs=shard.inputs)

    def marginal_log_prob(self, params, shard: Batch) -> np.ndarray:
        return self.model.marginal_log_prob(params, shard.emissions, times=self._times(shard), inputs=shard.inputs)


def engine_for(model, props, dt=None, m_step_iters: int = 10) -> Engine:
    """The engine of ``model``.

    Parameters
    ----------
    model : LinearGaussianSSM or ContinuousTimeSSM
        The model.
    props : ParamsLGSSM, ParamsCTSSM or None
        The fit's parameter properties; None for inference only.
    dt : float, optional
        Continuous-time models only: the step between observations of data without times.
    m_step_iters : int, default 10
        Continuous-time models only: L-BFGS iterations per M-step.

    Returns
    -------
    DiscreteEM or ContinuousEM

    Raises
    ------
    ValueError
        When ``model`` is neither kind, ``dt`` is not a finite step > 0 (or is
        given with a discrete-time model), or ``m_step_iters`` is not an integer >= 1.
    """
    if isinstance(model, ContinuousTimeSSM):
        if dt is not None and not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt: expected a finite step > 0, got {dt!r}")
        return ContinuousEM(model, props, None if dt is None else float(dt), count("m_step_iters", m_step_iters, 1))
    if not isinstance(model, LinearGaussianSSM):
        raise ValueError(
            f"model: expected a LinearGaussianSSM, LinearGaussianConjugateSSM or ContinuousTimeSSM, "
            f"got {type(model).__name__}"
        )
    if dt is not None:
        raise ValueError(f"dt: only continuous-time models take dt, got dt={dt!r} with a {type(model).__name__}")
    return DiscreteEM(model, props)


def persist_for(engine: Engine, data, client, inputs, times, read_options) -> Sequences:
    """Persist the data for the engine's model (``persist`` with its dimensions).

    Parameters
    ----------
    engine : DiscreteEM or ContinuousEM
        The engine.
    data, client, inputs, times, read_options
        As for ``persist``.

    Returns
    -------
    Sequences

    Raises
    ------
    ValueError
        As ``persist``; and for continuous-time data that carry observation times
        and an engine with a ``dt``, or neither.
    """
    model = engine.model
    seqs = persist(
        data,
        client,
        emission_dim=model.emission_dim,
        input_dim=model.input_dim,
        inputs=inputs,
        times=times,
        read_options=read_options,
    )
    if isinstance(engine, ContinuousEM) and seqs.has_times == (engine.dt is not None):
        raise ValueError(
            "dt: expected dt exactly when the data carry no observation times, got "
            + ("dt and times" if seqs.has_times else "neither dt nor times")
        )
    return seqs


def _identity(x):
    return x


def share(client: distributed.Client, value) -> distributed.Future:
    """A future of ``value``, sent to the cluster once.

    The workers that need it fetch it, and (unlike scattered data) it is
    recomputed if its worker is lost.

    Parameters
    ----------
    client : distributed.Client
        The client.
    value : object
        Any picklable value (the parameters).

    Returns
    -------
    distributed.Future
    """
    return client.submit(_identity, value, pure=False)


def _sum(*values):
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _tree_sum(client, futures, fan_in: int = 8):
    """The sum of the futures' values by a tree on the workers, each task
    summing up to ``fan_in`` values in order (a fixed tree, hence a result
    independent of where the tasks ran)."""
    while len(futures) > 1:
        futures = [client.submit(_sum, *futures[i : i + fan_in], pure=False) for i in range(0, len(futures), fan_in)]
    return futures[0].result()


def e_step(engine: Engine, params, seqs: Sequences, selection: dict | None = None):
    """The E-step on the cluster: each shard's statistics on its worker, summed by a tree.

    Parameters
    ----------
    engine : DiscreteEM or ContinuousEM
        The engine.
    params : ParamsLGSSM or ParamsCTSSM
        The parameters.
    seqs : Sequences
        The sequences.
    selection : dict of int to list of int, optional
        Shard index -> the sequences of that shard to use; default all sequences.

    Returns
    -------
    lgssm._core.SufficientStats or lgssm._core.ContinuousStats
        The summed statistics, in shard order.
    """
    client = seqs.client
    shared = share(client, params)
    if selection is None:
        parts = [client.submit(engine.stats, shared, shard, pure=False) for shard in seqs.shards]
    else:
        parts = [client.submit(engine.stats, shared, seqs.shards[s], idx, pure=False) for s, idx in selection.items()]
    return _tree_sum(client, parts)
