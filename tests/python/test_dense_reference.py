"""The dense reference checked by a second route: a textbook Kalman filter and
Rauch-Tung-Striebel smoother in plain NumPy (Sarkka 2013, Theorems 4.2 and 8.2),
with missing components dropped from the update. No lgssm code here, so a
disagreement between lgssm and the dense reference can be attributed."""

import numpy as np

from conftest import assert_close
from dense_reference import Reference, dims, entry


def kalman_rts(params, emissions, inputs=None, num_forecast_timesteps=0, forecast_inputs=None):
    n, p, m = dims(params)
    y = np.asarray(emissions, float)
    T, K = y.shape[0], num_forecast_timesteps
    u = np.zeros((T + K, m))
    if m:
        u[:T] = inputs
        if K:
            u[T:] = forecast_inputs

    def predict(mean, cov, t):  # z_{t-1} -> z_t uses dynamics entry t-1
        F = entry(params, "dynamics_weights", t - 1)
        mean = F @ mean + entry(params, "dynamics_input_weights", t - 1) @ u[t] + entry(params, "dynamics_bias", t - 1)
        return mean, F @ cov @ F.T + entry(params, "dynamics_covariance", t - 1)

    def emit(mean, cov, t):
        H = entry(params, "emission_weights", t)
        return (
            H @ mean + entry(params, "emission_input_weights", t) @ u[t] + entry(params, "emission_bias", t),
            H @ cov @ H.T + entry(params, "emission_covariance", t),
        )

    ll = 0.0
    pm, pc, fm, fc = [], [], [], []
    mean, cov = np.asarray(params["initial_mean"], float), np.asarray(params["initial_covariance"], float)
    for t in range(T):
        if t > 0:
            mean, cov = predict(mean, cov, t)
        pm.append(mean), pc.append(cov)
        obs = ~np.isnan(y[t])
        if obs.any():
            H = entry(params, "emission_weights", t)[obs]
            ym, S = emit(mean, cov, t)
            S = S[np.ix_(obs, obs)]
            r = y[t, obs] - ym[obs]
            gain = np.linalg.solve(S, H @ cov).T
            mean = mean + gain @ r
            cov = cov - gain @ S @ gain.T
            ll += -0.5 * (r @ np.linalg.solve(S, r) + np.linalg.slogdet(2 * np.pi * S)[1])
        fm.append(mean), fc.append(cov)
    sm, sc, cross = [fm[-1]], [fc[-1]], []
    for t in range(T - 2, -1, -1):
        F = entry(params, "dynamics_weights", t)
        G = fc[t] @ F.T @ np.linalg.pinv(pc[t + 1], rcond=1e-13, hermitian=True)
        sm.insert(0, fm[t] + G @ (sm[0] - pm[t + 1]))
        cross.insert(0, sc[0] @ G.T)
        sc.insert(0, fc[t] + G @ (sc[0] - pc[t + 1]) @ G.T)
    fz, fzc, fy, fyc = [], [], [], []
    for k in range(K):
        mean, cov = predict(mean, cov, T + k)
        ym, S = emit(mean, cov, T + k)
        fz.append(mean), fzc.append(cov), fy.append(ym), fyc.append(S)
    return dict(
        marginal_loglik=ll,
        filtered_means=np.array(fm),
        filtered_covariances=np.array(fc),
        predicted_means=np.array(pm),
        predicted_covariances=np.array(pc),
        smoothed_means=np.array(sm),
        smoothed_covariances=np.array(sc),
        smoothed_cross_covariances=np.array(cross).reshape(T - 1, n, n),
        forecast=(
            np.array(fz).reshape(K, n),
            np.array(fzc).reshape(K, n, n),
            np.array(fy).reshape(K, p),
            np.array(fyc).reshape(K, p, p),
        ),
    )


def test_dense_reference_matches_kalman_rts(variant):
    seq = variant.seq
    K = variant.num_forecast_timesteps if variant.forecast else 0
    ref = Reference(variant.params, seq.emissions, seq.inputs, K, seq.forecast_inputs)
    kf = kalman_rts(variant.params, seq.emissions, seq.inputs, K, seq.forecast_inputs)
    tol = 1e-8  # two routes through different roundings; the library is held to 1e-9 against the dense one
    assert_close(np.float64(ref.marginal_loglik), kf["marginal_loglik"], "marginal_loglik", tol)
    fm, fc = ref.filtered()
    pm, pc = ref.predicted()
    sm, sc, cross = ref.smoothed()
    assert_close(fm, kf["filtered_means"], "filtered_means", tol)
    assert_close(fc, kf["filtered_covariances"], "filtered_covariances", tol)
    assert_close(pm, kf["predicted_means"], "predicted_means", tol)
    assert_close(pc, kf["predicted_covariances"], "predicted_covariances", tol)
    assert_close(sm, kf["smoothed_means"], "smoothed_means", tol)
    assert_close(sc, kf["smoothed_covariances"], "smoothed_covariances", tol)
    assert_close(cross, kf["smoothed_cross_covariances"], "smoothed_cross_covariances", tol)
    for name, a, b in zip(
        ["means", "covariances", "emission_means", "emission_covariances"], ref.forecast(), kf["forecast"]
    ):
        assert_close(a, b, "forecast " + name, tol)
