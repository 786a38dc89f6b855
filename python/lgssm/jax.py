"""lgssm inside JAX: traceable log likelihood, posteriors and priors, and NUTS.

Every function here runs lgssm's C++ core through ``jax.pure_callback``, so it
works under ``jax.jit`` and ``jax.vmap`` (``vmap_method="sequential"``: one
core call per batch member, always correct) and inside a larger JAX model.
``marginal_log_prob`` and ``log_prior`` carry a ``jax.custom_vjp`` whose
backward pass is lgssm's exact gradient (Fisher's identity, computed in C++),
so ``jax.grad`` and ``jax.value_and_grad`` through them are exact; only the
gradients JAX asks for are computed (the data gradient only when the data are
differentiated). ``filter``, ``smoother`` and ``posterior_predictive`` have no
derivative: ``jax.grad`` through them raises a TypeError.

The functions take the model first, then what dynamax's method takes:
``lgssm.jax.marginal_log_prob(model, params, emissions, inputs)`` for
dynamax's ``model.marginal_log_prob(params, emissions, inputs)``, on one
sequence (``jax.vmap`` for a batch).

Precision: the core computes in float64 whatever comes in; the result (and
each gradient) is returned in the caller's dtype: float32 in, float32 out
(the result type of the floating inputs; with ``jax_enable_x64`` off JAX has
no float64 and everything is float32).

Pytrees: importing this module registers ``ParamsLGSSM``, its three groups,
``ParameterProperties`` (no leaves, as dynamax's), the posteriors and the
continuous-time parameters as JAX pytrees; ``import lgssm`` does it too when
JAX is already imported, so ``import jax`` is never paid for by ``import lgssm``.

Needs the ``jax`` extra: ``pip install "lgssm[jax]"``.
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero
except ImportError as err:  # pragma: no cover - exercised by simulating absence
    raise ImportError('lgssm.jax needs JAX: pip install "lgssm[jax]"') from err

from . import _core
from ._batch import as_batch
from ._docstrings import shared
from ._progress import ProgressBar
from .continuous import ParamsCTDynamics, ParamsCTSSM
from .models import PosteriorLGSSMFiltered, PosteriorLGSSMSmoothed
from .params import (
    ParameterProperties,
    ParamsLGSSM,
    ParamsLGSSMDynamics,
    ParamsLGSSMEmissions,
    ParamsLGSSMInitial,
    from_core,
    props_to_core,
    shapes,
)

__all__ = [
    "filter",
    "fit_hmc",
    "log_prior",
    "marginal_log_prob",
    "posterior_predictive",
    "smoother",
    "to_arviz",
    "unconstrained_log_posterior",
]

_EXTRA = 'pip install "lgssm[jax]"'


def _register_pytrees():
    for cls in (
        ParamsLGSSM,
        ParamsLGSSMInitial,
        ParamsLGSSMDynamics,
        ParamsLGSSMEmissions,
        ParamsCTSSM,
        ParamsCTDynamics,
        PosteriorLGSSMFiltered,
        PosteriorLGSSMSmoothed,
    ):
        fields = [f.name for f in dataclasses.fields(cls)]
        jax.tree_util.register_dataclass(cls, data_fields=fields, meta_fields=[])
    jax.tree_util.register_pytree_node(
        ParameterProperties,
        lambda p: ((), (p.trainable, p.constrainer, p.structure, p.constraint)),
        lambda aux, _: ParameterProperties(*aux),
    )


_register_pytrees()


def _optional(name: str):
    """The optional module ``name``, or an ImportError naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{name} is needed here: {_EXTRA}") from err


# -- the one bridge to the core: pure_callback, with or without an exact VJP --


def _dtype(tree):
    floats = [x.dtype for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.result_type(*floats) if floats else jnp.result_type(float)


def _host(fn, out_shapes, args):
    """``fn(*args)`` on the host: ``args`` (a tuple of pytrees of arrays) arrive as
    float64 NumPy arrays; the outputs are cast to ``out_shapes`` (a pytree of
    ShapeDtypeStruct, None for an absent output)."""
    leaves, treedef = jax.tree_util.tree_flatten(args)

    def callback(*flat):
        out = fn(*jax.tree_util.tree_unflatten(treedef, [np.asarray(x, np.float64) for x in flat]))
        return jax.tree_util.tree_map(lambda o, s: np.asarray(o, s.dtype).reshape(s.shape), out, out_shapes)

    return jax.pure_callback(callback, out_shapes, *leaves, vmap_method="sequential")


def _exact(value, value_and_grad, check=None):
    """A JAX function f(*args) -> scalar with an exact VJP, computed on the host.

    ``value(*args) -> float``; ``value_and_grad(wanted, *args) -> (float, grads)``
    with ``grads`` holding, for each argument, its gradient (a pytree shaped like
    it) when ``wanted`` says so, else None. The backward pass asks only for the
    arguments JAX differentiates (``symbolic_zeros``); ``check(wanted)``, if given,
    runs at trace time before (to raise on what cannot be differentiated)."""

    @jax.custom_vjp
    def f(*args):
        return _host(value, jax.ShapeDtypeStruct((), _dtype(args)), args)

    def is_primal(x):
        return isinstance(x, CustomVJPPrimal)

    def fwd(*primals):
        args = jax.tree_util.tree_map(lambda p: p.value, primals, is_leaf=is_primal)
        wanted = tuple(any(p.perturbed for p in jax.tree_util.tree_leaves(a, is_leaf=is_primal)) for a in primals)
        if check is not None:
            check(wanted)
        grad_shapes = tuple(
            jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), a) if w else None
            for a, w in zip(args, wanted)
        )
        out_shapes = (jax.ShapeDtypeStruct((), _dtype(args)), grad_shapes)
        return _host(lambda *a: value_and_grad(wanted, *a), out_shapes, args)

    def bwd(grads, g):
        if isinstance(g, SymbolicZero):
            return tuple(None for _ in grads)
        return tuple(
            None if gr is None else jax.tree_util.tree_map(lambda x: (g * x).astype(x.dtype), gr) for gr in grads
        )

    f.defvjp(fwd, bwd, symbolic_zeros=True)
    return f


def _no_derivative(name: str, fn, out_shapes, args):
    """``fn`` on the host (as `_host`), with a backward pass that raises."""

    @jax.custom_vjp
    def f(*a):
        return _host(fn, out_shapes, a)

    def fwd(*a):
        return f(*a), None

    def bwd(_, __):
        raise TypeError(
            f"lgssm.jax.{name} has no derivative: differentiate lgssm.jax.marginal_log_prob "
            "(exact gradients), or wrap this call's outputs in jax.lax.stop_gradient"
        )

    f.defvjp(fwd, bwd)
    return f(*args)


# -- arguments ---------------------------------------------------------------


def _check(model, params, emissions, inputs):
    """Trace-time checks of the shapes; returns (emissions, inputs) as JAX arrays."""
    expected = shapes(model.state_dim, model.emission_dim, model.input_dim)
    for group, name in (("initial", "mean"), ("initial", "cov")) + tuple(
        (g, f) for g in ("dynamics", "emissions") for f in ("weights", "bias", "input_weights", "cov")
    ):
        shape = tuple(np.shape(getattr(getattr(params, group), name)))
        want = expected[f"{group}.{name}"]
        if shape != want and (group == "initial" or shape[1:] != want):
            raise ValueError(f"{group}.{name}: expected shape {want} (or with a leading time axis), got {shape}")
    emissions = jnp.asarray(emissions)
    if emissions.ndim != 2 or emissions.shape[1] != model.emission_dim:
        raise ValueError(
            f"emissions: expected shape (num_timesteps, {model.emission_dim}) (jax.vmap for a batch), "
            f"got {emissions.shape}"
        )
    if inputs is None:
        inputs = jnp.zeros((emissions.shape[0], model.input_dim), emissions.dtype)
    inputs = jnp.asarray(inputs)
    if inputs.shape != (emissions.shape[0], model.input_dim):
        raise ValueError(f"inputs: expected shape ({emissions.shape[0]}, {model.input_dim}), got {inputs.shape}")
    return emissions, inputs


def _zeros_like(params):
    return jax.tree_util.tree_map(np.zeros_like, params)


# -- the traceable functions ---------------------------------------------------


@shared
def marginal_log_prob(model, params: ParamsLGSSM, emissions, inputs=None):
    """Compute log p(y) of one sequence, traceable by JAX, with exact gradients.

    The Kalman filter of ``model.marginal_log_prob`` through ``jax.pure_callback``,
    with a ``jax.custom_vjp`` whose backward pass is lgssm's exact gradient by
    Fisher's identity (computed in C++): with respect to every parameter
    (covariances: the symmetric gradient over their entries), the emissions
    (zero at missing entries) and the inputs.

    Parameters
    ----------
    %(jax_sequence)s

    Returns
    -------
    jax.Array, shape ()
        log p(y_{0:T-1}), in the floating dtype of the arguments (computed in float64).

    Raises
    ------
    ValueError
        If an array has the wrong shape, or a parameter has a time axis when the
        parameters are differentiated (at trace time).
    jax.errors.JaxRuntimeError
        Carrying the core's message, when it refuses the values (e.g. a covariance
        that is not positive definite, where a gradient needs it definite).

    References
    ----------
    .. [1] O. Cappé, E. Moulines and T. Rydén, *Inference in Hidden Markov Models*, 2005,
       Prop. 10.1.6 (Fisher's identity).
    """
    emissions, inputs = _check(model, params, emissions, inputs)

    def value(params, y, u):
        return _core.marginal_log_prob(model.core_params(params), [y], [u])[0]

    def value_and_grad(wanted, params, y, u):
        core = model.core_params(params)
        grad_params = grad_y = grad_u = None
        if wanted[0]:
            stats = _core.sufficient_stats(core, [y], [u], False)
            v = stats.marginal_loglik
            grad_params = from_core(_core.log_prob_natural_gradient(core, stats, None), params)
        else:
            v = _core.marginal_log_prob(core, [y], [u])[0]
        if wanted[1] or wanted[2]:
            gy, gu = _core.log_prob_data_gradient(core, y, u)
            grad_y, grad_u = (gy if wanted[1] else None), (gu if wanted[2] else None)
        return v, (grad_params, grad_y, grad_u)

    def check(wanted):
        if not wanted[0]:
            return
        for group in ("dynamics", "emissions"):
            for name, leaf in vars(getattr(params, group)).items():
                if np.ndim(leaf) == (2 if name == "bias" else 3):
                    raise ValueError(
                        f"{group}.{name}: expected a time-invariant value to differentiate log p(y) with respect "
                        f"to the parameters, got shape {np.shape(leaf)} (a time axis)"
                    )

    return _exact(value, value_and_grad, check)(params, emissions, inputs)


def log_prior(model, params: ParamsLGSSM):
    """Compute log p(params) under the model's priors, traceable by JAX, with exact gradients.

    ``model.log_prior(params)`` (0 for a `lgssm.LinearGaussianSSM`, the NIW and
    MNIW densities for a `lgssm.LinearGaussianConjugateSSM`), with the gradient
    computed in C++.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model.
    params : ParamsLGSSM
        Its parameters, a pytree of arrays; time-invariant to be differentiated.

    Returns
    -------
    jax.Array, shape ()
        log p(params), in the floating dtype of the parameters.

    Raises
    ------
    ValueError
        If a parameter has the wrong shape (at trace time).
    """
    _check(model, params, np.zeros((0, model.emission_dim)), None)

    def value(params):
        return model.log_prior(params)

    def value_and_grad(wanted, params):
        prior = model.core_prior()
        if prior is None:
            return 0.0, (_zeros_like(params),)
        core = model.core_params(params)
        return _core.log_prior(core, prior), (from_core(_core.log_prior_gradient(core, prior), params),)

    return _exact(value, value_and_grad)(params)


def _posterior(method: str, model, params, emissions, inputs):
    """``model.filter`` or ``model.smoother`` on the host, without a derivative."""
    emissions, inputs = _check(model, params, emissions, inputs)
    dtype = _dtype((params, emissions, inputs))
    t, n = emissions.shape[0], model.state_dim
    means, covs = jax.ShapeDtypeStruct((t, n), dtype), jax.ShapeDtypeStruct((t, n, n), dtype)
    fields = dict(
        marginal_loglik=jax.ShapeDtypeStruct((), dtype),
        filtered_means=means,
        filtered_covariances=covs,
        predicted_means=means,
        predicted_covariances=covs,
        num_diffuse_timesteps=jax.ShapeDtypeStruct((), np.int32),
    )
    if method == "smoother":
        fields.update(
            smoothed_means=means,
            smoothed_covariances=covs,
            smoothed_cross_covariances=jax.ShapeDtypeStruct((max(t - 1, 0), n, n), dtype),
        )
    cls = PosteriorLGSSMSmoothed if method == "smoother" else PosteriorLGSSMFiltered
    return _no_derivative(method, getattr(model, method), cls(**fields), (params, emissions, inputs))


@shared
def filter(model, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMFiltered:
    """Run the Kalman filter on one sequence, traceable by JAX (jit, vmap; no derivative).

    Parameters
    ----------
    %(jax_sequence)s

    Returns
    -------
    PosteriorLGSSMFiltered
        Its fields as JAX arrays in the arguments' floating dtype.

    Raises
    ------
    %(jax_no_derivative_raises)s
    """
    return _posterior("filter", model, params, emissions, inputs)


@shared
def smoother(model, params: ParamsLGSSM, emissions, inputs=None) -> PosteriorLGSSMSmoothed:
    """Run the smoother on one sequence, traceable by JAX (jit, vmap; no derivative).

    Parameters
    ----------
    %(jax_sequence)s

    Returns
    -------
    PosteriorLGSSMSmoothed
        The filter's and the smoother's moments as JAX arrays in the arguments' floating dtype.

    Raises
    ------
    %(jax_no_derivative_raises)s
    """
    return _posterior("smoother", model, params, emissions, inputs)


@shared
def posterior_predictive(model, params: ParamsLGSSM, emissions, inputs=None, full_covariance: bool = False):
    """Compute E[y_t | y] and its spread on one sequence, traceable by JAX (jit, vmap; no derivative).

    Parameters
    ----------
    %(jax_sequence)s
    full_covariance : bool, default False
        Return covariances instead of standard deviations (static).

    Returns
    -------
    means : jax.Array, shape (num_timesteps, emission_dim)
        E[y_t | y_{0:T-1}].
    stds_or_covariances : jax.Array, shape (num_timesteps, emission_dim) or (num_timesteps, emission_dim, emission_dim)
        As ``model.posterior_predictive``.

    Raises
    ------
    %(jax_no_derivative_raises)s
    """
    emissions, inputs = _check(model, params, emissions, inputs)
    dtype = _dtype((params, emissions, inputs))
    t, p = emissions.shape
    spread = (t, p, p) if full_covariance else (t, p)
    out = (jax.ShapeDtypeStruct((t, p), dtype), jax.ShapeDtypeStruct(spread, dtype))

    def fn(params, y, u):
        return model.posterior_predictive(params, y, u, full_covariance=bool(full_covariance))

    return _no_derivative("posterior_predictive", fn, out, (params, emissions, inputs))


# -- Bayesian inference over the unconstrained parameters ----------------------


@shared
def unconstrained_log_posterior(model, params: ParamsLGSSM, props: ParamsLGSSM, emissions, inputs=None, num_threads=0):
    """Make the log posterior density over the unconstrained parameters, traceable by JAX.

    The density a sampler such as HMC/NUTS needs, over the vector x of
    ``lgssm._core.to_unconstrained`` (the trainable parameters; covariances by
    the log of their Cholesky factor's diagonal and its lower entries):
    ``log p(y | params) + log p(params) + log |det J|`` with
    ``params = from_unconstrained(x)`` and J the Jacobian of that map, all and
    their gradient computed in C++ (``lgssm._core.log_posterior_unconstrained``),
    summed over the sequences. -inf where x gives parameters that are not valid.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model; a `lgssm.LinearGaussianConjugateSSM` contributes its priors.
    params : ParamsLGSSM
        The parameters: the frozen ones are taken from them, and ``x0`` is theirs.
    props : ParamsLGSSM
        The `ParameterProperties`: which parameters are sampled, and covariance structures.
    %(emissions)s
    %(inputs)s
    num_threads : int, default 0
        Threads over the sequences (0: all cores).

    Returns
    -------
    logdensity : callable
        x -> jax.Array, shape (): traceable, with its exact gradient.
    x0 : jax.Array, shape (num_unconstrained,)
        The unconstrained vector of ``params``.
    to_params : callable
        x (NumPy array) -> ParamsLGSSM, the constrained parameters.

    Raises
    ------
    ValueError
        If the parameters, properties or data are invalid.
    """
    base, core_props = model.core_params(params), props_to_core(props)
    _core.validate_props(base, core_props)
    batch = as_batch(emissions, inputs, model.input_dim, model.emission_dim)
    prior = model.core_prior()

    def value_and_grad(wanted, x):
        v, g = _core.log_posterior_unconstrained(x, base, core_props, batch.emissions, batch.inputs, prior, num_threads)
        return v, (g,)

    logdensity = _exact(lambda x: value_and_grad((False,), x)[0], value_and_grad)

    def to_params(x):
        return from_core(_core.from_unconstrained(np.asarray(x, np.float64), base, core_props), params)

    return logdensity, jnp.asarray(_core.to_unconstrained(base, core_props)), to_params


def _key(key):
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.PRNGKey(int(key))
    return key


@shared
def fit_hmc(
    model,
    initial_params: ParamsLGSSM,
    props: ParamsLGSSM,
    key,
    num_samples: int,
    emissions,
    inputs=None,
    warmup_steps: int = 100,
    verbose: bool = True,
    num_threads: int = 0,
):
    """Sample the posterior of the parameters by NUTS (blackjax), on lgssm's exact log posterior.

    The arguments and outputs of the ``fit_hmc`` of dynamax's LG-SSM HMC notebook:
    blackjax's window adaptation (step size and diagonal mass matrix, ``warmup_steps``
    steps) then ``num_samples`` NUTS steps over the unconstrained trainable
    parameters, on the density of `unconstrained_log_posterior` (log likelihood,
    log prior of a `lgssm.LinearGaussianConjugateSSM`, ``log |det J|``) whose value and
    gradient are computed in C++. Deterministic given ``key``.

    Parameters
    ----------
    model : lgssm.LinearGaussianSSM
        The model; a `lgssm.LinearGaussianConjugateSSM` contributes its priors
        (without a prior, the density is the likelihood and may be improper).
    initial_params : ParamsLGSSM
        Where the chain starts; the frozen parameters are held at their values.
    props : ParamsLGSSM
        The `ParameterProperties` of each parameter (trainable, covariance structure).
    key : int or JAX PRNG key
        The randomness.
    num_samples : int
        The number of NUTS draws after the warmup.
    %(emissions)s
    %(inputs)s
    warmup_steps : int, default 100
        Steps of blackjax's window adaptation.
    %(progress)s
    num_threads : int, default 0
        Threads over the sequences (0: all cores).

    Returns
    -------
    samples : ParamsLGSSM
        The draws, each field with a leading (num_samples,) axis (NumPy arrays).
    log_probs : array, shape (num_samples,)
        log p(y | params) + log p(params) at each draw (as dynamax's notebook).

    Raises
    ------
    ValueError
        If ``num_samples`` or ``warmup_steps`` is not a positive integer, or the
        parameters, properties or data are invalid.
    ImportError
        Without blackjax (``pip install "lgssm[jax]"``).

    References
    ----------
    .. [1] M. D. Hoffman and A. Gelman, "The No-U-Turn Sampler", *JMLR* 15, 2014.
    """
    from ._checks import count

    num_samples = count("num_samples", num_samples, 1)
    warmup_steps = count("warmup_steps", warmup_steps, 1)
    blackjax = _optional("blackjax")
    logdensity, x0, to_params = unconstrained_log_posterior(
        model, initial_params, props, emissions, inputs, num_threads
    )
    warm_key, key = jax.random.split(_key(key))
    warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)
    (state, tuned), _ = warmup.run(warm_key, x0, num_steps=warmup_steps)
    step = jax.jit(blackjax.nuts(logdensity, **tuned).step)
    bar = ProgressBar(num_samples, "fit_hmc", verbose)
    xs, densities = [], []
    for i, step_key in enumerate(jax.random.split(key, num_samples)):
        state, _ = step(step_key, state)
        xs.append(np.asarray(state.position, np.float64))
        densities.append(float(state.logdensity))
        bar(i, densities[-1])
    bar.close()
    base, core_props = model.core_params(initial_params), props_to_core(props)
    log_probs = np.array([d - _core.log_det_jacobian(x, base, core_props)[0] for x, d in zip(xs, densities)])
    samples = jax.tree_util.tree_map(lambda *a: np.stack(a), *[to_params(x) for x in xs])
    return samples, log_probs


def to_arviz(samples: ParamsLGSSM, props: ParamsLGSSM | None = None, log_probs=None):
    """Convert stacked parameter draws (as `fit_hmc` returns) to an arviz InferenceData.

    One chain; a variable per parameter, named ``"dynamics.weights"`` and so on.

    Parameters
    ----------
    samples : ParamsLGSSM
        Each field with a leading (num_samples,) axis.
    props : ParamsLGSSM, optional
        Keep only the trainable parameters; None keeps all.
    log_probs : array, shape (num_samples,), optional
        Stored as the sample statistic ``"lp"``.

    Returns
    -------
    arviz.InferenceData
        The ``posterior`` group holds the draws, shape (1, num_samples, ...).

    Raises
    ------
    ImportError
        Without arviz (``pip install "lgssm[jax]"``).
    """
    az = _optional("arviz")
    posterior = {}
    for group in ("initial", "dynamics", "emissions"):
        for f in dataclasses.fields(getattr(samples, group)):
            if props is None or getattr(getattr(props, group), f.name).trainable:
                posterior[f"{group}.{f.name}"] = np.asarray(getattr(getattr(samples, group), f.name))[None]
    stats = None if log_probs is None else {"lp": np.asarray(log_probs)[None]}
    return az.from_dict(posterior=posterior, sample_stats=stats)
