"""Parity with pykalman's KalmanFilter on the same models and data: log
likelihood, filtered and smoothed moments, forecasts and EM trajectories, to
1e-8 relative. pykalman has no inputs (they enter as per-step offsets), drops
a whole observation when any component is masked, and its EM updates the
parameters one after another (each given the ones updated before it), not
jointly; the tests state these relations exactly (docs/parity.md). About 4 s."""

import numpy as np
import pytest

pytest.importorskip("pykalman", exc_type=ImportError, reason="pykalman (extra `peers`) cannot be imported")
from pykalman import KalmanFilter  # noqa: E402
from pykalman.standard import _filter, _smooth, _smooth_pair  # noqa: E402

from conftest import assert_close  # noqa: E402
from peer_models import (
    EM_ITERS,
    NUM_FORECAST,
    input_offsets,
    inputs_case,
    notebook_case,  # noqa: E402
    with_missing,
)

RTOL = 1e-8

# pykalman's name of each lgssm parameter.
NAMES = {
    "dynamics.weights": "transition_matrices",
    "dynamics.bias": "transition_offsets",
    "dynamics.cov": "transition_covariance",
    "emissions.weights": "observation_matrices",
    "emissions.bias": "observation_offsets",
    "emissions.cov": "observation_covariance",
    "initial.mean": "initial_state_mean",
    "initial.cov": "initial_state_covariance",
}


def get(params, name):
    group, field = name.split(".")
    return getattr(getattr(params, group), field)


def to_pykalman(params, inputs=None, em_vars=None):
    """A KalmanFilter with the same parameters; inputs u_t become the offsets
    B u_t + b (transition into z_t) and D u_t + d (emission y_t)."""
    kwargs = {NAMES[k]: get(params, k) for k in NAMES}
    if inputs is not None:
        kwargs["transition_offsets"], kwargs["observation_offsets"] = input_offsets(params, inputs)
    return KalmanFilter(**kwargs, em_vars=em_vars)


def masked(emissions):
    return np.ma.masked_invalid(emissions)


def missing_rows_case():
    """The inputs case with wholly missing rows only (pykalman's kind of missing data)."""
    case = inputs_case()
    case.emissions = with_missing(case.emissions, fraction=0.0)
    return case


CASES = {"notebook": notebook_case, "inputs": inputs_case, "missing_rows": missing_rows_case}


def assert_same_posterior(model, params, emissions, inputs, kf, pk_emissions):
    post = model.smoother(params, emissions, inputs)
    assert_close(post.marginal_loglik, kf.loglikelihood(pk_emissions), "marginal_loglik", rtol=RTOL)
    pk = kf._initialize_parameters()  # (A, b, Q, C, d, R, mu0, Sigma0), as KalmanFilter.smooth uses them
    pred_m, pred_c, _, filt_m, filt_c = _filter(pk[0], pk[3], pk[2], pk[5], pk[1], pk[4], pk[6], pk[7], pk_emissions)
    smooth_m, smooth_c, gains = _smooth(pk[0], filt_m, filt_c, pred_m, pred_c)
    for name, theirs in (
        ("predicted_means", pred_m),
        ("predicted_covariances", pred_c),
        ("filtered_means", filt_m),
        ("filtered_covariances", filt_c),
        ("smoothed_means", smooth_m),
        ("smoothed_covariances", smooth_c),
        # pykalman's pairwise covariance t is Cov[z_t, z_{t-1}]; its entry 0 is unused.
        ("smoothed_cross_covariances", _smooth_pair(smooth_c, gains)[1:]),
    ):
        assert_close(getattr(post, name), theirs, name, rtol=RTOL)
    # The public methods give the same moments.
    assert_close(post.filtered_means, kf.filter(pk_emissions)[0], "KalmanFilter.filter", rtol=RTOL)
    assert_close(post.smoothed_covariances, kf.smooth(pk_emissions)[1], "KalmanFilter.smooth", rtol=RTOL)


@pytest.mark.parametrize("name", list(CASES))
def test_filter_and_smoother(name):
    case = CASES[name]()
    assert_same_posterior(
        case.model,
        case.params,
        case.emissions,
        case.inputs,
        to_pykalman(case.params, case.inputs),
        masked(case.emissions),
    )


def test_partially_observed_rows_are_dropped_by_pykalman():
    """pykalman ignores an observation when any component is masked: it matches
    lgssm with those rows wholly missing, and loses what lgssm uses."""
    case = inputs_case()
    partial = with_missing(case.emissions)
    dropped = np.where(np.isnan(partial).any(axis=1, keepdims=True), np.nan, partial)
    kf = to_pykalman(case.params, case.inputs)
    assert_same_posterior(case.model, case.params, dropped, case.inputs, kf, masked(partial))
    ours = case.model.marginal_log_prob(case.params, partial, case.inputs)
    assert abs(ours - kf.loglikelihood(masked(partial))) > 1.0


@pytest.mark.parametrize("name", ["notebook", "inputs"])
def test_forecast(name):
    """pykalman has no forecast; filtering K appended masked rows gives p(z_{T+k} | y)."""
    case = CASES[name]()
    model, params, K = case.model, case.params, NUM_FORECAST
    fm, fc, fem, fec = model.forecast(params, case.emissions, K, case.inputs, case.forecast_inputs)
    extended = np.concatenate([case.emissions, np.full((K, model.emission_dim), np.nan)])
    inputs = None if case.inputs is None else np.concatenate([case.inputs, case.forecast_inputs])
    means, covs = to_pykalman(params, inputs).filter(masked(extended))
    assert_close(fm, means[-K:], "forecast means", rtol=RTOL)
    assert_close(fc, covs[-K:], "forecast covariances", rtol=RTOL)
    e = params.emissions
    offsets = e.bias if inputs is None else input_offsets(params, inputs)[1][-K:]
    assert_close(fem, means[-K:] @ e.weights.T + offsets, "forecast emission means", rtol=RTOL)
    assert_close(fec, e.weights @ covs[-K:] @ e.weights.T + e.cov, "forecast emission covariances", rtol=RTOL)


# --------------------------------------------------------------------------
# EM. pykalman's M-step updates C | d, R | C d, A | b, Q | A b, mu0, Sigma0 | mu0,
# b | A, d | C in turn, each from the same smoothed moments and given the values
# updated before it. With the offsets frozen (not in em_vars) that is lgssm's
# M-step with the offsets frozen; with em_vars="all" it is a sequence of lgssm's
# conditional M-steps.


def props_training(model, names):
    """Parameter properties with only ``names`` trainable."""
    _, props = model.initialize()
    for group in ("initial", "dynamics", "emissions"):
        for field, prop in vars(getattr(props, group)).items():
            prop.trainable = f"{group}.{field}" in names
    return props


def pykalman_em(kf, emissions, num_iters):
    """(kf after num_iters EM iterations, the log likelihood entering each)."""
    lls = []
    for _ in range(num_iters):
        lls.append(kf.loglikelihood(emissions))
        kf.em(emissions, n_iter=1)
    return kf, np.array(lls)


def assert_same_params(params, kf, names):
    for name in names:
        assert_close(get(params, name), np.asarray(getattr(kf, NAMES[name]), dtype=float), name, rtol=1e-6)


EM_CASES = {
    # pykalman's default em_vars: Q, R, mu0, Sigma0.
    "default_em_vars": (notebook_case, ["dynamics.cov", "emissions.cov", "initial.mean", "initial.cov"]),
    # Everything but the offsets (here the inputs' B u_t + b and D u_t + d).
    "all_but_offsets_inputs": (
        inputs_case,
        ["dynamics.weights", "dynamics.cov", "emissions.weights", "emissions.cov", "initial.mean", "initial.cov"],
    ),
    # With missing rows the dynamics and initial updates agree (see the next test for the emissions').
    "dynamics_missing_rows": (missing_rows_case, ["dynamics.weights", "dynamics.cov", "initial.mean", "initial.cov"]),
}


@pytest.mark.parametrize("name", list(EM_CASES))
def test_em_with_frozen_offsets_is_lgssms_conditional_em(name):
    make_case, names = EM_CASES[name]
    case = make_case()
    start = case.em_start if case.inputs is None else case.params  # B, b, D, d frozen at their true values
    kf, pk_lls = pykalman_em(
        to_pykalman(start, case.inputs, em_vars=[NAMES[k] for k in names]), masked(case.emissions), EM_ITERS
    )
    params, lls = case.model.fit_em(
        start, props_training(case.model, names), case.emissions, case.inputs, num_iters=EM_ITERS, verbose=False
    )
    assert_close(lls, pk_lls, "log likelihood per EM iteration", rtol=RTOL)
    assert_same_params(params, kf, names)


def test_em_emission_updates_differ_with_missing_rows():
    """With wholly missing rows pykalman's emission M-step leaves those rows out,
    while lgssm's treats the missing entries as latent (their conditional law
    enters the statistics; Shumway & Stoffer 2000), as it must for partly
    missing rows. Both are EM for the same likelihood (monotone, same fixed
    points), with different trajectories."""
    case = missing_rows_case()
    names = ["emissions.weights", "emissions.cov"]
    _, pk_lls = pykalman_em(
        to_pykalman(case.params, case.inputs, em_vars=[NAMES[k] for k in names]), masked(case.emissions), EM_ITERS
    )
    _, lls = case.model.fit_em(
        case.params, props_training(case.model, names), case.emissions, case.inputs, num_iters=EM_ITERS, verbose=False
    )
    assert lls[0] == pytest.approx(pk_lls[0], rel=RTOL)
    assert np.all(np.diff(lls) > 0) and np.all(np.diff(pk_lls) > 0)
    assert np.min(np.abs(lls[1:] - pk_lls[1:])) > 1e-3


def test_em_all_is_a_sequence_of_conditional_m_steps():
    """em_vars="all" (notebook model): one pykalman iteration equals lgssm's
    conditional M-steps for (H, R) | d, (F, Q) | b, (mu0, Sigma0), b | F, d | H
    in that order from one E-step; it is not lgssm's joint M-step."""
    case = notebook_case()
    model = case.model
    kf, pk_lls = pykalman_em(to_pykalman(case.em_start, em_vars="all"), masked(case.emissions), EM_ITERS)
    params, lls = case.em_start, []
    for _ in range(EM_ITERS):
        lls.append(model.marginal_log_prob(params, case.emissions))
        stats = model.sufficient_stats(params, case.emissions)
        for names in (
            ["emissions.weights", "emissions.cov"],
            ["dynamics.weights", "dynamics.cov"],
            ["initial.mean", "initial.cov"],
            ["dynamics.bias"],
            ["emissions.bias"],
        ):
            params = model.m_step(params, props_training(model, names), stats)
    assert_close(np.array(lls), pk_lls, "log likelihood per EM iteration", rtol=RTOL)
    assert_same_params(params, kf, NAMES)

    _, joint_lls = model.fit_em(case.em_start, model.initialize()[1], case.emissions, num_iters=EM_ITERS, verbose=False)
    assert np.max(np.abs(joint_lls[1:] - pk_lls[1:])) > 1e-3
