"""High-precision (mpmath) dense joint-Gaussian reference for a linear Gaussian state-space model.

The same construction as dense_reference.py (whose parameter conventions, ``dims`` and ``entry``
it uses), carried out in mpmath at ``DPS`` significant digits and in a form that is exact in exact
arithmetic for every valid model, singular ones included:

* the prior moments of z = (z_0 .. z_{T-1}) come from the forward recursions
      mu_0 = m_0,            mu_t = F_{t-1} mu_{t-1} + B_{t-1} u_t + b_{t-1},
      C_00 = P_0,            C_tt = F_{t-1} C_{t-1,t-1} F_{t-1}^T + Q_{t-1},
      C_ts = F_{t-1} C_{t-1,s}   (s < t),
  so no (I - Phi)^{-1} is formed and singular P_0 or Q (any rank, including 0) need no care;
* the observed (non-NaN) entries y_o of (y_0 .. y_{T-1}) have mean H_t mu_t + D_t u_t + d_t and
  covariance S_oo = H C H^T + R restricted to them. For a valid model S_oo is positive definite
  even when R has zero rows and columns (exactly observed components), so its Cholesky factor
  S_oo = L L^T exists; a non-positive pivot means the model makes y_o degenerate and raises
  ``DegenerateObservations``;
* with w = L^{-1} (y_o - mean_o) and W = L^{-1} S_oz (whitened residual and cross covariance),
      log p(y_o)     = -1/2 (|w|^2 + sum_k log L_kk^2 + N_o log 2 pi),
      E[z | y_o]     = mu + W^T w,
      Cov[z | y_o]   = C - W^T W
  (the Gaussian conditioning of Sarkka 2013, Lemma A.2, in Cholesky form); only the diagonal and
  the first sub-diagonal blocks of Cov[z | y_o] are formed.

The pivots L_kk^2 / (S_oo)_kk (the variance of each observed scalar given the ones before it in
time-major order, relative to its marginal variance) are kept, so that a model generator can
refuse models whose observations are degenerate or nearly so.

Everything is computed from the float64 parameters and data taken as exact numbers; results are
returned rounded to float64 (the rounding is 1e-16 relative, far below any tolerance they judge).
"""

import mpmath
import numpy as np
from mpmath import mp

from dense_reference import dims, entry

# 50 digits: a covariance that cancels from the prior's scale down to the posterior's
# (1e-14 relative in the battery's tiny-R class, 1e-12 for cond(R) = 1e12) keeps 35 or more.
DPS = 50


class DegenerateObservations(ValueError):
    """The observed emissions have a singular joint covariance (an invalid model for the data)."""


def _mp_matrix(a):
    a = np.asarray(a, dtype=float)
    return [[mp.mpf(float(x)) for x in row] for row in a.reshape(a.shape[0], -1)]


def _mp_vector(a):
    return [mp.mpf(float(x)) for x in np.asarray(a, dtype=float).reshape(-1)]


def _transpose(A):
    return [list(col) for col in zip(*A)]


def _matmul(A, B):
    """A (r x k) times B (k x c) as lists of rows."""
    Bt = list(zip(*B))
    if not Bt:
        return [[] for _ in A]
    return [[mpmath.fdot(row, col) for col in Bt] for row in A]


def _matvec(A, x):
    return [mpmath.fdot(row, x) for row in A]


def _add(A, B):
    return [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(A, B)]


def _to_float(A):
    return np.array([[float(x) for x in row] for row in A], dtype=float)


class MpReference:
    """Log likelihood and smoothed moments of one sequence, exact to about DPS digits.

    params: a dict of ``LinearGaussianSSM.initialize`` keyword arguments (constant or per step,
    as in dense_reference.py); emissions (num_timesteps, emission_dim), NaN = missing;
    inputs (num_timesteps, input_dim) or None.

    Attributes (float64): marginal_loglik; loglik_scale, the sum of the magnitudes of the terms
    of log p(y_o) (1/2 (|w|^2 + sum |log L_kk^2| + N_o log 2 pi)), the scale on which its
    rounding errors are judged; smoothed_means (T, n), smoothed_covariances (T, n, n),
    smoothed_cross_covariances (T-1, n, n) = Cov[z_{t+1}, z_t | y]; prior_means (T, n) and
    prior_covariances (T, n, n), the moments of z_t before any observation; emission_scatter (p, p),
    sum_t E[(y_t - H z_t - D u_t - d)(...)^T | y] when every entry is observed, else None; pivots (N_o,), the
    relative conditional variances L_kk^2 / (S_oo)_kk; observed (N_o, 2), the (t, i) of each
    observed entry in order.
    """

    def __init__(self, params, emissions, inputs=None, dps=DPS):
        n, p, m = dims(params)
        y = np.asarray(emissions, dtype=float)
        T = y.shape[0]
        u = np.zeros((T, m)) if inputs is None else np.asarray(inputs, dtype=float).reshape(T, m)
        with mp.workdps(dps):
            self._compute(params, y, u, n, p, m, T)

    def _compute(self, params, y, u, n, p, m, T):
        # Prior moments of z by the forward recursions; C[t][s] = Cov[z_t, z_s] for s <= t.
        mu = [_mp_vector(params["initial_mean"])]
        C = [[_mp_matrix(params["initial_covariance"])]]
        for t in range(1, T):
            F = _mp_matrix(entry(params, "dynamics_weights", t - 1))
            b = _mp_vector(entry(params, "dynamics_bias", t - 1))
            drift = [mp.zero] * n
            if m:
                B = _mp_matrix(entry(params, "dynamics_input_weights", t - 1).reshape(n, m))
                drift = _matvec(B, _mp_vector(u[t]))
            mu.append([x + dx + bb for x, dx, bb in zip(_matvec(F, mu[t - 1]), drift, b)])
            row = [_matmul(F, C[t - 1][s]) for s in range(t - 1)]
            Ft = _transpose(F)
            row.append(_matmul(F, C[t - 1][t - 1]))
            row.append(_add(_matmul(row[t - 1], Ft), _mp_matrix(entry(params, "dynamics_covariance", t - 1))))
            C.append(row)

        def cov(t, s):  # Cov[z_t, z_s]
            return C[t][s] if s <= t else _transpose(C[s][t])

        # Observed entries, time-major, with their means and the covariance blocks.
        H = [_mp_matrix(entry(params, "emission_weights", t)) for t in range(T)]
        observed = [(t, i) for t in range(T) for i in range(p) if not np.isnan(y[t, i])]
        N = len(observed)
        r = []  # y_o - E[y_o]
        for t, i in observed:
            D = entry(params, "emission_input_weights", t).reshape(p, m)
            d = entry(params, "emission_bias", t)
            offset = mp.mpf(float(d[i])) + (mpmath.fdot(_mp_vector(D[i]), _mp_vector(u[t])) if m else 0)
            r.append(mp.mpf(float(y[t, i])) - (mpmath.fdot(H[t][i], mu[t]) + offset))
        # G[t][s] = Cov[z_t, z_s] H_s^T (n x p): Cov[z_t, y_s] before R.
        G = [[_matmul(cov(t, s), _transpose(H[s])) for s in range(T)] for t in range(T)]
        S = [[mp.zero] * N for _ in range(N)]
        for a, (t, i) in enumerate(observed):
            R = entry(params, "emission_covariance", t)
            for b in range(a + 1):
                s, j = observed[b]
                v = mpmath.fdot(H[t][i], [G[t][s][k][j] for k in range(n)])
                if s == t:
                    v += mp.mpf(float(R[i, j]))
                S[a][b] = S[b][a] = v
        # Cov[z_t, y_o] as columns: S_oz[a] is the row of Cov[y_a, z] over all T*n entries of z.
        S_oz = [[G[t2][s][k][j] for t2 in range(T) for k in range(n)] for s, j in observed]

        L, pivots = _cholesky(S)
        self.pivots = np.array([float(v) for v in pivots])
        self.observed = np.array(observed, dtype=int).reshape(N, 2)
        w = _forward(L, r)
        W = [_forward(L, col) for col in _transpose(S_oz)] if N else [[] for _ in range(T * n)]
        # W[q] is column q of L^{-1} S_oz, i.e. row q of W^T: one entry of z.
        quad = mpmath.fdot(w, w) if N else mp.zero
        logs = [mp.log(L[k][k] ** 2) for k in range(N)]
        log2pi = mp.log(2 * mp.pi)
        self.marginal_loglik = float(-(quad + mpmath.fsum(logs) + N * log2pi) / 2)
        self.loglik_scale = float((quad + mpmath.fsum(abs(x) for x in logs) + N * log2pi) / 2)

        def post_cov(t, s):  # Cov[z_t, z_s | y_o]
            A = cov(t, s)
            return [
                [A[k][l] - (mpmath.fdot(W[t * n + k], W[s * n + l]) if N else 0) for l in range(n)] for k in range(n)
            ]

        means = [[mu[t][k] + (mpmath.fdot(W[t * n + k], w) if N else 0) for k in range(n)] for t in range(T)]
        self.smoothed_means = _to_float(means).reshape(T, n)
        self.smoothed_covariances = np.array([_to_float(post_cov(t, t)) for t in range(T)]).reshape(T, n, n)
        self.smoothed_cross_covariances = np.array([_to_float(post_cov(t + 1, t)) for t in range(T - 1)]).reshape(
            T - 1, n, n
        )
        # sum_t E[(y_t - H z_t - D u_t - d)(...)^T | y], the emission scatter of EM's R-step
        # (fully observed sequences only).
        self.emission_scatter = None
        if N == T * p:
            scatter = [[mp.zero] * p for _ in range(p)]
            for t in range(T):
                D = entry(params, "emission_input_weights", t).reshape(p, m)
                d = entry(params, "emission_bias", t)
                e = [
                    mp.mpf(float(y[t, i]))
                    - mpmath.fdot(H[t][i], means[t])
                    - mp.mpf(float(d[i]))
                    - (mpmath.fdot(_mp_vector(D[i]), _mp_vector(u[t])) if m else 0)
                    for i in range(p)
                ]
                HP = _matmul(H[t], post_cov(t, t))
                for i in range(p):
                    for j in range(p):
                        scatter[i][j] += e[i] * e[j] + mpmath.fdot(HP[i], H[t][j])
            self.emission_scatter = _to_float(scatter).reshape(p, p)
        self.prior_means = _to_float(mu).reshape(T, n)
        self.prior_covariances = np.array([_to_float(C[t][t]) for t in range(T)]).reshape(T, n, n)


def _cholesky(S):
    """Lower triangular L with S = L L^T and the relative pivots L_kk^2 / S_kk.

    Raises DegenerateObservations when a pivot is not positive."""
    N = len(S)
    L = [[mp.zero] * N for _ in range(N)]
    pivots = []
    for j in range(N):
        s = S[j][j] - mpmath.fdot(L[j][:j], L[j][:j])
        if not s > 0:
            raise DegenerateObservations(
                f"observed entry {j}: conditional variance {mpmath.nstr(s, 5)} given the entries before it "
                f"(marginal variance {mpmath.nstr(S[j][j], 5)}); the observations' covariance is singular"
            )
        pivots.append(s / S[j][j])
        L[j][j] = mp.sqrt(s)
        for i in range(j + 1, N):
            L[i][j] = (S[i][j] - mpmath.fdot(L[i][:j], L[j][:j])) / L[j][j]
    return L, pivots


def _forward(L, b):
    """x with L x = b (L lower triangular)."""
    x = []
    for i, row in enumerate(L):
        x.append((b[i] - mpmath.fdot(row[:i], x)) / row[i])
    return x
