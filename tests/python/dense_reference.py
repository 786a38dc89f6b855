"""Dense joint-Gaussian reference for a linear Gaussian state-space model.

Independent of lgssm: plain NumPy. For a small number of steps L the latents
and emissions (z_0 .. z_{L-1}, y_0 .. y_{L-1}) are one Gaussian vector; its mean
and covariance are built by stacking the recursions

    z_0 = m_0 + e_0,                                e_0 ~ N(0, P_0)
    z_t = F z_{t-1} + B u_t + b + e_t,              e_t ~ N(0, Q)      t = 1 .. L-1
    y_t = H_t z_t + D_t u_t + d_t + v_t,            v_t ~ N(0, R_t)    t = 0 .. L-1

(dynamics parameters of the transition z_{t-1} -> z_t are entry t-1 of a
per-transition series), i.e. z = (I - Phi)^{-1} (c + e) with Phi the block
subdiagonal of the F's. Every posterior quantity is then one Gaussian
conditioning on the observed (non-NaN) entries of y by a dense solve:

    E[x | y_o] = mu_x + S_xo S_oo^{-1} (y_o - mu_o)
    Cov[x | y_o] = S_xx - S_xo S_oo^{-1} S_ox
    log p(y_o) = log N(y_o; mu_o, S_oo)

Parameters are a dict with the keyword names of ``LinearGaussianSSM.initialize``
(initial_mean, initial_covariance, dynamics_weights, dynamics_bias,
dynamics_input_weights, dynamics_covariance, emission_weights, emission_bias,
emission_input_weights, emission_covariance). A parameter with one more axis
than its base shape is per step (emissions: entry t for y_t) or per transition
(dynamics: entry k for z_k -> z_{k+1}).
"""

import numpy as np

# Number of axes of one entry of each parameter.
BASE_NDIM = {
    "initial_mean": 1,
    "initial_covariance": 2,
    "dynamics_weights": 2,
    "dynamics_bias": 1,
    "dynamics_input_weights": 2,
    "dynamics_covariance": 2,
    "emission_weights": 2,
    "emission_bias": 1,
    "emission_input_weights": 2,
    "emission_covariance": 2,
}


def dims(params):
    """(state_dim, emission_dim, input_dim) of a parameter dict."""
    n = np.shape(params["initial_mean"])[-1]
    p = np.shape(params["emission_weights"])[-2]
    m = np.shape(params["dynamics_input_weights"])[-1]
    return n, p, m


def entry(params, name, k):
    """Entry k of a per-step parameter, or the parameter itself if constant."""
    a = np.asarray(params[name], dtype=float)
    if a.ndim == BASE_NDIM[name]:
        return a
    assert a.ndim == BASE_NDIM[name] + 1, (name, a.shape)
    if k >= a.shape[0]:
        raise IndexError(f"{name}: per-step series of length {a.shape[0]} has no entry {k}")
    return a[k]


def _inputs(params, num_timesteps, inputs):
    _, _, m = dims(params)
    if inputs is None:
        assert m == 0
        return np.zeros((num_timesteps, 0))
    u = np.asarray(inputs, dtype=float).reshape(num_timesteps, m)
    return u


def joint_prior(params, num_timesteps, inputs=None):
    """Mean (L*(n+p),) and covariance of (z_0..z_{L-1}, y_0..y_{L-1}), flattened in that order."""
    n, p, _ = dims(params)
    L = num_timesteps
    u = _inputs(params, L, inputs)
    Nz = L * n
    phi = np.zeros((Nz, Nz))
    c = np.zeros(Nz)
    S = np.zeros((Nz, Nz))
    c[:n] = params["initial_mean"]
    S[:n, :n] = params["initial_covariance"]
    for t in range(1, L):
        k = t - 1  # the transition z_{t-1} -> z_t is entry t-1
        blk = slice(t * n, (t + 1) * n)
        phi[blk, (t - 1) * n : t * n] = entry(params, "dynamics_weights", k)
        c[blk] = entry(params, "dynamics_input_weights", k) @ u[t] + entry(params, "dynamics_bias", k)
        S[blk, blk] = entry(params, "dynamics_covariance", k)
    M = np.linalg.inv(np.eye(Nz) - phi)  # block lower triangular, unit diagonal
    mu_z = M @ c
    cov_z = M @ S @ M.T

    Hb = np.zeros((L * p, Nz))
    off = np.zeros(L * p)
    Rb = np.zeros((L * p, L * p))
    for t in range(L):
        row = slice(t * p, (t + 1) * p)
        Hb[row, t * n : (t + 1) * n] = entry(params, "emission_weights", t)
        off[row] = entry(params, "emission_input_weights", t) @ u[t] + entry(params, "emission_bias", t)
        Rb[row, row] = entry(params, "emission_covariance", t)
    mu_y = Hb @ mu_z + off
    cov_zy = cov_z @ Hb.T
    cov_yy = Hb @ cov_z @ Hb.T + Rb

    mean = np.concatenate([mu_z, mu_y])
    cov = np.block([[cov_z, cov_zy], [cov_zy.T, cov_yy]])
    return mean, 0.5 * (cov + cov.T)


def condition(mean, cov, idx, values):
    """Moments of the Gaussian N(mean, cov) given x[idx] = values, and log p(x[idx] = values)."""
    idx = np.asarray(idx, dtype=int)
    if idx.size == 0:
        return mean.copy(), cov.copy(), 0.0
    S_oo = cov[np.ix_(idx, idx)]
    S_xo = cov[:, idx]
    r = values - mean[idx]
    sol = np.linalg.solve(S_oo, np.column_stack([r, S_xo.T]))
    post_mean = mean + S_xo @ sol[:, 0]
    post_cov = cov - S_xo @ sol[:, 1:]
    sign, logdet = np.linalg.slogdet(S_oo)
    assert sign > 0
    loglik = -0.5 * (r @ sol[:, 0] + logdet + idx.size * np.log(2 * np.pi))
    return post_mean, 0.5 * (post_cov + post_cov.T), float(loglik)


class Reference:
    """All posterior quantities of one sequence from the dense joint Gaussian.

    emissions: (num_timesteps, emission_dim), NaN = missing component.
    inputs: (num_timesteps, input_dim) or None; forecast_inputs: (K, input_dim) or None.
    """

    def __init__(self, params, emissions, inputs=None, num_forecast_timesteps=0, forecast_inputs=None):
        n, p, m = dims(params)
        y = np.asarray(emissions, dtype=float)
        T = y.shape[0]
        K = num_forecast_timesteps
        L = T + K
        u = _inputs(params, T, inputs)
        if K:
            fu = np.zeros((K, 0)) if forecast_inputs is None else np.asarray(forecast_inputs, float)
            u = np.concatenate([u, fu.reshape(K, m)])
        self.params, self.n, self.p, self.T, self.K, self.u = params, n, p, T, K, u
        self.mean, self.cov = joint_prior(params, L, u if m else None)
        self.z_index = lambda t: np.arange(t * n, (t + 1) * n)
        self.y_index = lambda t: L * n + np.arange(t * p, (t + 1) * p)
        flat = y.reshape(-1)
        observed = ~np.isnan(flat)
        # Observed entries of y_0 .. y_{t-1}, as positions in the joint vector.
        self._obs_before = []
        for t in range(T + 1):
            sel = np.flatnonzero(observed[: t * p])
            self._obs_before.append((L * n + sel, flat[sel]))
        idx, vals = self._obs_before[T]
        self.post_mean, self.post_cov, self.marginal_loglik = condition(self.mean, self.cov, idx, vals)

    def _marginal(self, t, upto):
        """Mean and covariance of z_t given the observed entries of y_0 .. y_{upto-1}."""
        idx, vals = self._obs_before[upto]
        zi = self.z_index(t)
        S_oo = self.cov[np.ix_(idx, idx)]
        if idx.size == 0:
            return self.mean[zi], self.cov[np.ix_(zi, zi)]
        S_zo = self.cov[np.ix_(zi, idx)]
        sol = np.linalg.solve(S_oo, np.column_stack([vals - self.mean[idx], S_zo.T]))
        mean = self.mean[zi] + S_zo @ sol[:, 0]
        cov = self.cov[np.ix_(zi, zi)] - S_zo @ sol[:, 1:]
        return mean, 0.5 * (cov + cov.T)

    def filtered(self):
        """(T, n) means and (T, n, n) covariances of z_t given y_{0:t}."""
        out = [self._marginal(t, t + 1) for t in range(self.T)]
        return np.array([o[0] for o in out]), np.array([o[1] for o in out])

    def predicted(self):
        """(T, n) means and (T, n, n) covariances of z_t given y_{0:t-1}."""
        out = [self._marginal(t, t) for t in range(self.T)]
        return np.array([o[0] for o in out]), np.array([o[1] for o in out])

    def smoothed(self):
        """(T, n) means, (T, n, n) covariances and (T-1, n, n) Cov[z_{t+1}, z_t | y]."""
        zi = self.z_index
        means = np.array([self.post_mean[zi(t)] for t in range(self.T)])
        covs = np.array([self.post_cov[np.ix_(zi(t), zi(t))] for t in range(self.T)])
        cross = np.array([self.post_cov[np.ix_(zi(t + 1), zi(t))] for t in range(self.T - 1)])
        return means, covs, cross.reshape(self.T - 1, self.n, self.n)

    def smoothed_joint(self):
        """Mean (T*n,) and covariance of z_{0:T-1} given y, flattened step by step."""
        zi = np.arange(self.T * self.n)
        return self.post_mean[zi], self.post_cov[np.ix_(zi, zi)]

    def posterior_predictive(self):
        """(T, p) means and (T, p, p) covariances of a fresh y_t ~ p(y_t | z_t), z_t ~ p(z_t | y).

        That is H_t m_{t|T} + D_t u_t + d_t and H_t P_{t|T} H_t^T + R_t, for every t and
        every component, observed or not.
        """
        means, covs, _ = self.smoothed()
        pm, pc = [], []
        for t in range(self.T):
            H = entry(self.params, "emission_weights", t)
            D = entry(self.params, "emission_input_weights", t)
            d = entry(self.params, "emission_bias", t)
            R = entry(self.params, "emission_covariance", t)
            pm.append(H @ means[t] + D @ self.u[t] + d)
            pc.append(H @ covs[t] @ H.T + R)
        return np.array(pm), np.array(pc)

    def forecast(self):
        """Moments of z_{T+k} and y_{T+k} given y_{0:T-1}, k = 0..K-1:
        (K, n), (K, n, n), (K, p), (K, p, p)."""
        zs = [self.z_index(self.T + k) for k in range(self.K)]
        ys = [self.y_index(self.T + k) for k in range(self.K)]
        pm, pc = self.post_mean, self.post_cov
        return (
            np.array([pm[i] for i in zs]).reshape(self.K, self.n),
            np.array([pc[np.ix_(i, i)] for i in zs]).reshape(self.K, self.n, self.n),
            np.array([pm[i] for i in ys]).reshape(self.K, self.p),
            np.array([pc[np.ix_(i, i)] for i in ys]).reshape(self.K, self.p, self.p),
        )
