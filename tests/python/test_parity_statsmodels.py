"""Parity with statsmodels' state-space Kalman filter and smoother (MLEModel)
on the same models and data: log likelihood, predicted, filtered and smoothed
moments, lag-one smoothed covariances and forecasts, to 1e-8 relative,
including partly missing emissions (statsmodels handles NaN components too).
statsmodels has no inputs (they enter as time-varying intercepts), one series
per model (sequences are run one by one) and no EM for a general state-space
model; its steady-state switch is the one documented difference
(docs/parity.md). About 2 s."""

import numpy as np
import pytest

pytest.importorskip("statsmodels", exc_type=ImportError, reason="statsmodels (extra `peers`) cannot be imported")
from statsmodels.tsa.statespace.mlemodel import MLEModel  # noqa: E402

from conftest import assert_close  # noqa: E402
from peer_models import NUM_FORECAST, input_offsets, inputs_case, notebook_case, with_missing  # noqa: E402

RTOL = 1e-8


def to_statsmodels(params, emissions, inputs=None, tolerance=0.0):
    """statsmodels' smoothing results for the same model and data.

    Its state equation alpha_{t+1} = T alpha_t + c_t + R eta_t takes per-step
    arrays with time on the last axis, one column per observation: column t
    drives z_t -> z_{t+1} (the last column only reaches beyond the data).
    Inputs enter as c_t = B u_{t+1} + b and d_t = D u_t + d. ``initialize_known``
    gives the law of its first state alpha_1 (statsmodels counts from 1), which
    is lgssm's z_0. ``tolerance`` = 0 turns off the steady-state switch (see
    test_steady_state_switch)."""
    n = params.initial.mean.shape[0]
    d, e = params.dynamics, params.emissions
    mod = MLEModel(emissions, k_states=n)
    mod["design"], mod["obs_cov"], mod["selection"] = e.weights, e.cov, np.eye(n)
    mod["transition"], mod["state_cov"] = d.weights, d.cov
    if inputs is None:
        mod["obs_intercept"], mod["state_intercept"] = e.bias, d.bias
    else:
        transition, emission = input_offsets(params, inputs)
        mod["obs_intercept"] = emission.T
        mod["state_intercept"] = np.concatenate([transition, d.bias[None]]).T
    mod.initialize_known(params.initial.mean, params.initial.cov)
    mod.ssm.tolerance = tolerance
    return mod.smooth([])


def time_first(a):
    """statsmodels' (..., num_timesteps) arrays as (num_timesteps, ...)."""
    return np.moveaxis(a, -1, 0)


def missing_case():
    case = inputs_case()
    case.emissions = with_missing(case.emissions)
    return case


CASES = {"notebook": notebook_case, "inputs": inputs_case, "missing": missing_case}


@pytest.mark.parametrize("name", list(CASES))
def test_filter_and_smoother(name):
    case = CASES[name]()
    post = case.model.smoother(case.params, case.emissions, case.inputs)
    res = to_statsmodels(case.params, case.emissions, case.inputs)
    T = len(case.emissions)
    assert_close(post.marginal_loglik, float(res.llf), "marginal_loglik", rtol=RTOL)
    for ours, theirs in (
        ("predicted_means", res.predicted_state[:, :T]),
        ("predicted_covariances", res.predicted_state_cov[:, :, :T]),
        ("filtered_means", res.filtered_state),
        ("filtered_covariances", res.filtered_state_cov),
        ("smoothed_means", res.smoothed_state),
        ("smoothed_covariances", res.smoothed_state_cov),
        # column t is Cov[z_{t+1}, z_t | y]; the last one reaches beyond the data.
        ("smoothed_cross_covariances", res.smoothed_state_autocov[:, :, : T - 1]),
    ):
        assert_close(getattr(post, ours), time_first(theirs), ours, rtol=RTOL)


def test_steady_state_switch():
    """For a time-invariant model without missing data statsmodels freezes the
    covariances (steady state) once ||P_{t+1|t} - P_{t|t-1}||_F^2 < tolerance, an
    absolute 1e-19 by default: in the notebook at step 17, while they still move,
    so its covariances end ~1e-9 relative from the exact ones (1e-14 with
    tolerance = 0); the log likelihood barely moves."""
    case = notebook_case()
    post = case.model.filter(case.params, case.emissions)
    res = to_statsmodels(case.params, case.emissions, tolerance=1e-19)
    assert res.filter_results.converged and res.filter_results.period_converged == 17
    covs = post.filtered_covariances
    gap = np.max(np.abs(time_first(res.filtered_state_cov) - covs)) / np.max(np.abs(covs))
    assert 1e-11 < gap < 1e-6, f"filtered covariances: relative gap {gap:.3g}"
    assert_close(post.marginal_loglik, float(res.llf), "marginal_loglik", rtol=RTOL)


def test_sequences_one_by_one():
    """statsmodels takes one series; lgssm's list of sequences of different
    lengths gives each sequence's log likelihood and moments."""
    case = inputs_case(num_sequences=3)
    lengths = (40, 31, 17)
    emissions = [case.emissions[b, :L] for b, L in enumerate(lengths)]
    inputs = [case.inputs[b, :L] for b, L in enumerate(lengths)]
    lls = case.model.marginal_log_prob(case.params, emissions, inputs)
    posts = case.model.smoother(case.params, emissions, inputs)
    for b in range(len(lengths)):
        res = to_statsmodels(case.params, emissions[b], inputs[b])
        assert_close(lls[b], float(res.llf), f"marginal_loglik of sequence {b}", rtol=RTOL)
        assert_close(
            posts[b].smoothed_means, time_first(res.smoothed_state), f"smoothed_means of sequence {b}", rtol=RTOL
        )


def test_forecast_notebook():
    """get_forecast's emission and state moments are lgssm's forecast."""
    case, K = notebook_case(), NUM_FORECAST
    fm, fc, fem, fec = case.model.forecast(case.params, case.emissions, K)
    forecast = to_statsmodels(case.params, case.emissions).get_forecast(K)
    assert_close(fem, np.asarray(forecast.predicted_mean), "forecast emission means", rtol=RTOL)
    assert_close(fec, np.asarray(forecast.var_pred_mean), "forecast emission covariances", rtol=RTOL)
    states = forecast.prediction_results
    assert_close(fm, time_first(states.predicted_state[:, :K]), "forecast means", rtol=RTOL)
    assert_close(fc, time_first(states.predicted_state_cov[:, :, :K]), "forecast covariances", rtol=RTOL)


def test_forecast_with_inputs():
    """With time-varying intercepts, K appended NaN rows (statsmodels' own way to
    forecast) give the predicted moments of z_{T+k} and y_{T+k}; the forecast
    inputs drive the transitions into the forecast steps."""
    case, K = missing_case(), NUM_FORECAST
    model, T = case.model, len(case.emissions)
    fm, fc, fem, fec = model.forecast(case.params, case.emissions, K, case.inputs, case.forecast_inputs)
    extended = np.concatenate([case.emissions, np.full((K, model.emission_dim), np.nan)])
    res = to_statsmodels(case.params, extended, np.concatenate([case.inputs, case.forecast_inputs]))
    assert_close(fm, time_first(res.predicted_state[:, T : T + K]), "forecast means", rtol=RTOL)
    assert_close(fc, time_first(res.predicted_state_cov[:, :, T : T + K]), "forecast covariances", rtol=RTOL)
    assert_close(fem, time_first(res.forecasts[:, T : T + K]), "forecast emission means", rtol=RTOL)
    assert_close(fec, time_first(res.forecasts_error_cov[:, :, T : T + K]), "forecast emission covariances", rtol=RTOL)
