"""The contenders of the benchmark: lgssm and the peers, behind one interface.

Every contender gets the same model (an ``lgssm.ParamsLGSSM`` of NumPy arrays,
time-invariant, without inputs) and the same emissions, and each task returns
the log likelihood it computed (or, for fits, the fitted parameters), so the
harness can check agreement. The peers are imported lazily: a missing one is
reported by ``available()`` and its rows are skipped with the reason.

Time conventions agree without inputs: every contender here treats
``initial`` as the distribution of the first state, the one of the first
emission.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os

import numpy as np

import lgssm
from lgssm.interop import from_dynamax, to_dynamax

os.environ.setdefault("JAX_ENABLE_X64", "1")  # dynamax in float64, as lgssm

PEERS = ("dynamax", "pykalman", "statsmodels", "filterpy", "simdkalman")
_MODULES = {
    "dynamax": "dynamax.linear_gaussian_ssm",
    "pykalman": "pykalman",
    "statsmodels": "statsmodels.tsa.statespace.kalman_smoother",
    "filterpy": "filterpy.kalman",
    "simdkalman": "simdkalman",
}


def available(name: str):
    """None when peer ``name`` imports, else the reason it does not."""
    try:
        importlib.import_module(_MODULES[name])
    except Exception as err:  # any import failure means "not installed here"
        return f"{name} not importable ({type(err).__name__}: {err})"
    return None


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def model_of(params) -> lgssm.LinearGaussianSSM:
    n, p = params.emissions.weights.shape[1], params.emissions.weights.shape[0]
    return lgssm.LinearGaussianSSM(n, p)


# ---------------------------------------------------------------- dynamax
def _dynamax():
    import jax

    jax.config.update("jax_enable_x64", True)
    from dynamax.linear_gaussian_ssm import LinearGaussianSSM

    return jax, LinearGaussianSSM


def dynamax_model(params, diagonal_r: bool = False):
    """(dynamax model, dynamax params, props); a diagonal R is passed as its
    diagonal, which selects dynamax's Woodbury update."""
    jax, Model = _dynamax()
    import jax.numpy as jnp

    n, p = params.emissions.weights.shape[1], params.emissions.weights.shape[0]
    dparams = to_dynamax(params)
    if diagonal_r:
        dparams = dparams._replace(emissions=dparams.emissions._replace(cov=jnp.diag(dparams.emissions.cov)))
    model = Model(n, p)
    _, props = model.initialize(jax.random.PRNGKey(0))
    return model, dparams, props


def dynamax_task(task: str, params, emissions, diagonal_r: bool = False, **options):
    """A callable running ``task`` in dynamax, and a function turning its output
    into (log likelihood or fitted lgssm params). Inference is jitted (dynamax's
    best case); fits call dynamax's fit_em / fit_sgd as a user does, which
    compile anew at every call (they jit a fresh closure), unless ``jit_fit``
    wraps fit_em in an outer jax.jit."""
    jax, _ = _dynamax()
    model, dparams, props = dynamax_model(params, diagonal_r)
    y = jax.numpy.asarray(emissions)
    if task == "filter":
        fn = jax.jit(lambda prm, y: model.filter(prm, y).marginal_loglik)
        return lambda: fn(dparams, y).block_until_ready(), float
    if task == "smoother":
        fn = jax.jit(lambda prm, y: model.smoother(prm, y))
        return lambda: jax.block_until_ready(fn(dparams, y)), lambda r: float(r.marginal_loglik)
    if task == "filter+smoother":
        fn = jax.jit(lambda prm, y: (model.filter(prm, y), model.smoother(prm, y)))
        return lambda: jax.block_until_ready(fn(dparams, y)), lambda r: float(r[1].marginal_loglik)
    if task == "grad":  # jax.grad of log p(y) by autodiff through dynamax's filter, jitted
        fn = jax.jit(jax.value_and_grad(lambda prm, y: model.marginal_log_prob(prm, y)))
        return lambda: jax.block_until_ready(fn(dparams, y)), lambda r: float(r[0])
    if task == "em":  # jit_fit: wrap fit_em in jax.jit, so that a warmed call does not recompile
        fit = lambda prm, y: model.fit_em(prm, props, y, num_iters=options["num_iters"], verbose=False)  # noqa: E731
        fit = jax.jit(fit) if options.get("jit_fit") else fit
        return lambda: jax.block_until_ready(fit(dparams, y)), lambda r: from_dynamax(r[0])
    if task == "adam":
        import optax

        run = lambda: jax.block_until_ready(
            model.fit_sgd(  # noqa: E731
                dparams, props, y, optimizer=optax.adam(options["learning_rate"]), num_epochs=options["num_epochs"]
            )
        )
        return run, lambda r: from_dynamax(r[0])
    if task == "gibbs":  # fit_blocked_gibbs jits a fresh closure each call: a second call compiles again
        from dynamax.linear_gaussian_ssm import LinearGaussianConjugateSSM

        n, p = params.emissions.weights.shape[1], params.emissions.weights.shape[0]
        conjugate, key = LinearGaussianConjugateSSM(n, p), jax.random.PRNGKey(0)
        run = lambda: jax.block_until_ready(  # noqa: E731
            conjugate.fit_blocked_gibbs(key, dparams, options["sample_size"], y)
        )
        return run, lambda r: gibbs_mean(from_dynamax(r))
    raise ValueError(f"task: expected filter, smoother, filter+smoother, grad, em, adam or gibbs, got {task!r}")


def gibbs_mean(samples):
    """The mean of the second half of a Gibbs chain (fields with a leading sample axis)."""
    half = len(samples.initial.mean) // 2
    mean = lambda group: type(group)(**{k: np.mean(v[half:], axis=0) for k, v in vars(group).items()})  # noqa: E731
    return lgssm.ParamsLGSSM(mean(samples.initial), mean(samples.dynamics), mean(samples.emissions))


# ---------------------------------------------------------------- pykalman
def pykalman_filter(params):
    from pykalman import KalmanFilter

    return KalmanFilter(
        transition_matrices=params.dynamics.weights,
        transition_offsets=params.dynamics.bias,
        transition_covariance=params.dynamics.cov,
        observation_matrices=params.emissions.weights,
        observation_offsets=params.emissions.bias,
        observation_covariance=params.emissions.cov,
        initial_state_mean=params.initial.mean,
        initial_state_covariance=params.initial.cov,
    )


def pykalman_params_to_numpy(kf):
    n, p = kf.observation_matrices.shape[1], kf.observation_matrices.shape[0]
    return lgssm.ParamsLGSSM(
        initial=lgssm.ParamsLGSSMInitial(mean=kf.initial_state_mean, cov=kf.initial_state_covariance),
        dynamics=lgssm.ParamsLGSSMDynamics(
            weights=kf.transition_matrices,
            bias=kf.transition_offsets,
            input_weights=np.zeros((n, 0)),
            cov=kf.transition_covariance,
        ),
        emissions=lgssm.ParamsLGSSMEmissions(
            weights=kf.observation_matrices,
            bias=kf.observation_offsets,
            input_weights=np.zeros((p, 0)),
            cov=kf.observation_covariance,
        ),
    )


def pykalman_task(task: str, params, emissions, **options):
    """pykalman's KalmanFilter; a batch (3-D emissions) one sequence at a time."""
    kf = pykalman_filter(params)
    if task in ("filter", "smoother", "filter+smoother"):
        calls = {"filter": [kf.filter], "smoother": [kf.smooth], "filter+smoother": [kf.filter, kf.smooth]}[task]
        seqs = emissions if emissions.ndim == 3 else [emissions]
        return (lambda: [c(y) for y in seqs for c in calls]), lambda _: sum(float(kf.loglikelihood(y)) for y in seqs)
    if task == "em":
        return (lambda: kf.em(emissions, n_iter=options["num_iters"], em_vars="all"), pykalman_params_to_numpy)
    raise ValueError(f"task: expected filter, smoother, filter+smoother or em, got {task!r}")


# ---------------------------------------------------------------- statsmodels
def statsmodels_task(task: str, params, emissions, **options):
    """statsmodels' KalmanSmoother (Cython) with the model's matrices, its
    default (conventional, non-collapsed) filter; the state of statsmodels' first
    step has the distribution ``initial``. The smoother computes what lgssm's
    does (smoothed states, their covariances and lag-one autocovariances), not
    statsmodels' default of every output (disturbances too)."""
    from statsmodels.tsa.statespace import kalman_smoother as sm
    from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother

    p, n = params.emissions.weights.shape
    ks = KalmanSmoother(k_endog=p, k_states=n, k_posdef=n)
    ks.bind(np.asfortranarray(emissions.T))
    ks["design"] = params.emissions.weights
    ks["obs_intercept"] = params.emissions.bias[:, None]
    ks["obs_cov"] = params.emissions.cov
    ks["transition"] = params.dynamics.weights
    ks["state_intercept"] = params.dynamics.bias[:, None]
    ks["selection"] = np.eye(n)
    ks["state_cov"] = params.dynamics.cov
    ks.initialize_known(params.initial.mean, params.initial.cov)
    ks.smoother_output = sm.SMOOTHER_STATE | sm.SMOOTHER_STATE_COV | sm.SMOOTHER_STATE_AUTOCOV
    if task == "filter":
        return ks.filter, lambda r: float(r.llf)
    if task == "smoother":
        return ks.smooth, lambda r: float(r.llf)
    if task == "filter+smoother":
        return (lambda: (ks.filter(), ks.smooth())), lambda r: float(r[1].llf)
    raise ValueError(f"task: expected filter, smoother or filter+smoother, got {task!r}")


# ---------------------------------------------------------------- filterpy
def filterpy_task(task: str, params, emissions, **options):
    """filterpy's KalmanFilter stepped by hand (predict before every step but
    the first, so that ``initial`` is the first state's law), log likelihood
    accumulated per step."""
    from filterpy.kalman import KalmanFilter

    if task != "filter":
        raise ValueError(f"task: expected filter, got {task!r}")
    p, n = params.emissions.weights.shape

    def run():
        kf = KalmanFilter(dim_x=n, dim_z=p)
        kf.x, kf.P = params.initial.mean.copy(), params.initial.cov.copy()
        kf.F, kf.Q = params.dynamics.weights, params.dynamics.cov
        kf.H, kf.R = params.emissions.weights, params.emissions.cov
        ll = 0.0
        for t, y in enumerate(emissions):
            if t > 0:
                kf.predict()
            kf.update(y)
            ll += kf.log_likelihood
        return ll

    return run, float


# ---------------------------------------------------------------- simdkalman
def simdkalman_task(task: str, params, emissions, **options):
    """simdkalman's KalmanFilter (NumPy, every step vectorized over the
    sequences) on a (num_sequences, num_timesteps, emission_dim) batch. Its
    smoother is timed computing what lgssm's returns: ``compute(smoothed=True,
    gains=True, log_likelihood=True)``, i.e. ``smooth()`` plus the lag-one
    covariances (``pairwise_covariances``, as its own EM's E-step) and the log
    likelihood, without its default smoothed observations. Its model has no
    biases, and ``initial_value`` / ``initial_covariance`` are the law of the
    first state (it updates before it predicts), as in lgssm. Its log
    likelihood leaves out the -emission_dim / 2 log(2 pi) of each step, which
    is added back."""
    import simdkalman

    if task != "smoother":
        raise ValueError(f"task: expected smoother, got {task!r}")
    d, e = params.dynamics, params.emissions
    for name, bias in (("params.dynamics.bias", d.bias), ("params.emissions.bias", e.bias)):
        if np.any(bias != 0):
            raise ValueError(f"{name}: expected zeros (simdkalman's model has no biases), got {bias}")
    y = emissions if emissions.ndim == 3 else emissions[None]
    kf = simdkalman.KalmanFilter(
        state_transition=d.weights, process_noise=d.cov, observation_model=e.weights, observation_noise=e.cov
    )
    run = lambda: kf.compute(  # noqa: E731
        y,
        0,
        initial_value=params.initial.mean,
        initial_covariance=params.initial.cov,
        smoothed=True,
        states=True,
        covariances=True,
        observations=False,
        gains=True,
        log_likelihood=True,
    )
    constant = -0.5 * y.shape[1] * y.shape[2] * np.log(2 * np.pi)
    return run, lambda r: float(np.sum(r.log_likelihood + constant))


# ---------------------------------------------------------------- lgssm
def lgssm_task(task: str, params, emissions, **options):
    model = model_of(params)
    if task == "filter":
        return lambda: model.filter(params, emissions), lambda r: float(np.sum(r.marginal_loglik))
    if task == "smoother":
        return lambda: model.smoother(params, emissions), lambda r: float(np.sum(r.marginal_loglik))
    if task == "filter+smoother":
        return (
            (lambda: (model.filter(params, emissions), model.smoother(params, emissions))),
            lambda r: float(np.sum(r[1].marginal_loglik)),
        )
    if task == "loglik":
        return lambda: model.marginal_log_prob(params, emissions), lambda r: float(np.sum(r))
    if task == "grad":  # jax.grad of log p(y) through lgssm.jax (the C++ core's exact gradient), jitted
        jax, _ = _dynamax()  # the same JAX setup (float64) as dynamax's row
        import lgssm.jax as ljax

        jparams = jax.tree_util.tree_map(jax.numpy.asarray, params)
        fn = jax.jit(jax.value_and_grad(lambda prm, y: ljax.marginal_log_prob(model, prm, y)))
        y = jax.numpy.asarray(emissions)
        return lambda: jax.block_until_ready(fn(jparams, y)), lambda r: float(r[0])
    props = lgssm.params.default_props(params)
    if task == "em":
        return (
            lambda: model.fit_em(params, props, emissions, num_iters=options["num_iters"], verbose=False),
            lambda r: r[0],
        )
    if task == "adam":
        opt = lgssm.optimizers.adam(options["learning_rate"])
        return (
            lambda: model.fit_sgd(
                params, props, emissions, optimizer=opt, num_epochs=options["num_epochs"], verbose=False
            ),
            lambda r: r[0],
        )
    if task == "gibbs":
        n, p = params.emissions.weights.shape[1], params.emissions.weights.shape[0]
        conjugate = lgssm.LinearGaussianConjugateSSM(n, p)
        return (
            lambda: conjugate.fit_blocked_gibbs(0, params, options["sample_size"], emissions, verbose=False),
            gibbs_mean,
        )
    raise ValueError(f"task: expected filter, smoother, filter+smoother, loglik, grad, em, adam or gibbs, got {task!r}")


TASKS = {
    "lgssm": lgssm_task,
    "dynamax": dynamax_task,
    "pykalman": pykalman_task,
    "statsmodels": statsmodels_task,
    "filterpy": filterpy_task,
    "simdkalman": simdkalman_task,
}
