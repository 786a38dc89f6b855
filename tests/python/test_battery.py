"""The randomized battery of issue 12, section 6: lgssm's log likelihood and smoothed moments
against a high-precision reference (mp_reference.py, an mpmath dense joint Gaussian) over
classes of models, degenerate and ill-conditioned ones included.

Every class draws CASES_PER_CLASS models from fixed seeds: state_dim 1-6, emission_dim 1-8,
input_dim 0-2, num_timesteps 3-8, diagonal or full R, and missing data (NaN entries, some steps
wholly missing) in most cases. The classes:

    ordinary            stable F (spectral radius 0.5-0.97), definite P0, Q, R
    q_rank0             Q = 0 (deterministic dynamics), with P0 definite or of lower rank, or
                        F with an eigenvalue 0, 1e-4..1e-2 or 0.02..0.15 (a direction whose
                        variance dies, at once or within the T steps)
    q_partial           Q of rank < n: random (also with P0 of lower rank or a contracting F),
                        a fixed slope (local linear trend with a noiseless slope), a
                        deterministic cycle (a noiseless rotation block)
    p0_rank0            P0 = 0 (known initial state), half of them with Q of rank < n too
    p0_partial          P0 of rank 1..n-1, half of them with Q of rank < n too
    exact_components    R with zero rows and columns for 1..min(n, p) exactly observed
                        components, positive definite on the rest
    ill_conditioned_R   cond(R) from 1e6 to 1e12, full or diagonal
    tiny_R              R = 1e-14 times the emissions' prior variance
    unstable            spectral radius of F exactly 1.05
    scales              an ordinary model with states and emissions rescaled by 1e-6..1e6
                        (one factor each, times a per-component factor in 0.1..10)

Singular factors are products of dyadic integer matrices, so they are exactly positive
semidefinite of the stated rank in float64. Models whose observations are degenerate (an exactly
observed component with no conditional variance left) are not valid and are never generated:
the reference's Cholesky factorization of the observations' covariance is their test
(MODEL_VALIDITY_FLOOR), and test_battery_models_are_what_their_class_says checks the rest.

Scale-aware errors per case, each against the reference:
    loglik              |ll - ll_ref| / (the sum of the magnitudes of the terms of ll_ref), for
                        marginal_log_prob and for the smoother's marginal_loglik
    means               max |m_t,i - m_ref_t,i| / max(d_t,i, 1e-5 max_s |m_ref_s,i|), d the
                        smoothed standard deviation
    covariances         max_t |D_t^-1 (V_t - V_ref_t) D_t^-1|_F / max(|D_t^-1 V_ref_t D_t^-1|_F, 1)
    cross_covariances   the same for Cov[z_{t+1}, z_t | y] with D_{t+1}^-1 (.) D_t^-1 and the
                        geometric mean of the two steps' normalizers
i.e. in units of the posterior standard deviations (errors in correlation units for the
covariances), so they do not change when the state coordinates are rescaled. Where a smoothed
variance is zero (a state known exactly) d falls back to the prior standard deviation of that
component, and to its mean's magnitude for a component that is deterministic a priori.

The battery prints, at the end of the session, cases and worst errors per class.
"""

import functools
import time
from dataclasses import dataclass

import numpy as np
import pytest
from mpmath import mp

from lgssm import LinearGaussianSSM

from conftest import simulate, spd, stable
from dense_reference import Reference
from mp_reference import DPS, DegenerateObservations, MpReference

CLASSES = (
    "ordinary",
    "q_rank0",
    "q_partial",
    "p0_rank0",
    "p0_partial",
    "exact_components",
    "ill_conditioned_R",
    "tiny_R",
    "unstable",
    "scales",
)
CASES_PER_CLASS = 20

# What an exact algorithm achieves in float64 on these models. A backward-stable square-root
# (array) filter/smoother computes the posterior factor with an absolute error of about
# eps |prior factor|, so in units of the posterior standard deviation its error is about
# eps * (prior std / posterior std) times the growth over the steps and dimensions: 1e-16 *
# sqrt(1e14) = 1e-9 before growth in tiny_R, 1e-10 for cond(R) = 1e12, eps elsewhere. The log
# likelihood, formed from whitened residuals and log pivots, loses no more. Measured with a
# float64 square-root dense smoother (QR of the whitened least-squares array, no covariance ever
# subtracted) on these very cases: worst 5e-9 (means) and 3.5e-9 (cross covariances) in tiny_R,
# 7.4e-10 in ill_conditioned_R, 1.1e-11 in q_rank0, below 5e-13 elsewhere. The tolerance is 1e-8,
# and 5e-8 in tiny_R, so a factor 10 above that. Covariance-form updates (P - K S K^T,
# |e|^2 - |v|^2) cancel down to eps * prior / posterior variance and cannot meet it in tiny_R and
# ill_conditioned_R (float64 dense conditioning: 1.1 and 4e-8); that is the point.
TOL = 1e-8
CLASS_TOL = {"tiny_R": 5e-8}
MEASURES = ("loglik", "smoother_loglik", "means", "covariances", "cross_covariances")

# An exactly observed scalar must keep at least this fraction of its marginal variance given
# the observations before it, or the model is refused as (nearly) degenerate for the data.
MODEL_VALIDITY_FLOOR = 1e-6
# A mean is judged on at least this fraction of its magnitude (the largest over the steps, per
# component): float64 computes a mean to some eps |m| cond(H), so where the smoothed standard
# deviation is below 1e-8 |m| (a direction that F contracts by 1e-4 a step; tiny_R, where a
# float64 square-root (QR) dense smoother errs by 2.5e-14 |m| on a standard deviation of 2e-6 |m|)
# no float64 algorithm resolves 1e-8 of it. TOL * MEAN_FLOOR = 1e-13 |m| is some 500 roundings.
MEAN_FLOOR = 1e-5
# A smoothed variance below this fraction of the prior variance is a zero (the reference
# computes it to DPS = 50 digits, so a zero comes out near 1e-40 at most; the smallest true
# ratio in the battery is about 1e-14, in tiny_R).
ZERO_VARIANCE = 1e-24


# --------------------------------------------------------------------------
# Cases.


@dataclass
class Case:
    cls: str
    index: int
    params: dict  # LinearGaussianSSM.initialize keyword arguments
    emissions: np.ndarray  # (T, p), NaN = missing
    inputs: np.ndarray  # (T, m) or None
    exact: np.ndarray  # indices of the exactly observed components (zero rows of R)
    desc: str

    @property
    def dims(self):
        n = len(self.params["initial_mean"])
        p, m = self.params["emission_input_weights"].shape
        return n, p, m

    def __repr__(self):
        return f"{self.cls}[{self.index}] ({self.desc})"


def _dyadic_psd(rng, d, rank, scale_exponent=-2):
    """2^e A A^T with A (d x rank) of integers in [-3, 3] of full column rank: exactly positive
    semidefinite of exactly that rank in float64 (all products and sums are exact)."""
    if rank == 0:
        return np.zeros((d, d))
    while True:
        A = rng.integers(-3, 4, size=(d, rank)).astype(float)
        if np.linalg.matrix_rank(A) == rank:
            return 2.0**scale_exponent * (A @ A.T)


def _emission_cov(rng, p, diagonal):
    return np.diag(rng.uniform(0.2, 1.5, size=p)) if diagonal else spd(rng, p, 0.5)


def _missing(rng, T, p):
    """A missing-data mask: none, random entries, or random entries and wholly missing steps."""
    kind = int(rng.integers(0, 3))
    mask = np.zeros((T, p), bool)
    if kind >= 1:
        mask |= rng.random((T, p)) < 0.3
    if kind == 2:
        mask[rng.choice(T, size=int(rng.integers(1, 3)), replace=False)] = True
    if mask.all():
        mask[int(rng.integers(0, T)), int(rng.integers(0, p))] = False
    return mask, ("none", "entries", "entries+steps")[kind]


def _scaled(params, y, dz, dy):
    """The same model in the coordinates z' = dz * z, y' = dy * y."""
    Dz, Dy, iDz = np.diag(dz), np.diag(dy), np.diag(1.0 / dz)
    Sz, Sy = np.outer(dz, dz), np.outer(dy, dy)  # exactly symmetric, so the covariances stay so
    out = dict(params)
    out["initial_mean"] = dz * params["initial_mean"]
    out["initial_covariance"] = Sz * params["initial_covariance"]
    out["dynamics_weights"] = Dz @ params["dynamics_weights"] @ iDz
    out["dynamics_bias"] = dz * params["dynamics_bias"]
    out["dynamics_input_weights"] = Dz @ params["dynamics_input_weights"]
    out["dynamics_covariance"] = Sz * params["dynamics_covariance"]
    out["emission_weights"] = Dy @ params["emission_weights"] @ iDz
    out["emission_bias"] = dy * params["emission_bias"]
    out["emission_input_weights"] = Dy @ params["emission_input_weights"]
    out["emission_covariance"] = Sy * params["emission_covariance"]
    return out, y * dy


def _structural(rng, n, kind):
    """(F, Q) with a noiseless structural block in the first two coordinates: a fixed slope
    (level_t = level + slope + noise, slope_t = slope) or a rotation by a random angle, and a
    stable block with definite noise on the rest."""
    F, Q = np.zeros((n, n)), np.zeros((n, n))
    if n > 2:
        F[2:, 2:] = stable(rng, n - 2, radius=0.9)
        Q[2:, 2:] = _dyadic_psd(rng, n - 2, n - 2)
    if kind == "fixed_slope":
        F[:2, :2] = [[1.0, 1.0], [0.0, 1.0]]
        Q[0, 0] = 0.25
    else:
        th = rng.uniform(0.2, 1.5)
        F[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    return F, Q


def _contracting(rng, n):
    """V diag(lam) V^-1 with lam_0 = 0, 10^U(-4, -2) or +-U(0.02, 0.15) (with Q = 0 that
    direction's variance falls by lam_0^2 a step, past 1e-16 of the rest within T <= 8 steps) and
    the others in +-(0.5, 0.97)."""
    lam = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.5, 0.97, size=n)
    lam[0] = (0.0, 10.0 ** rng.uniform(-4, -2), rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.15))[
        int(rng.integers(0, 3))
    ]
    V = rng.normal(size=(n, n)) + 2.0 * np.eye(n)
    return V @ np.diag(lam) @ np.linalg.inv(V)


def _draw(cls, index, rng):
    """One model of the class and its data (a Case), before the validity check."""
    n, p = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    m, T = int(rng.choice([0, 0, 1, 2])), int(rng.integers(3, 9))
    if cls in ("q_partial", "p0_partial"):
        n = max(n, 2)
    if cls == "ill_conditioned_R":
        p = max(p, 2)
    diagonal = bool(rng.random() < 0.4)
    params = {
        "initial_mean": rng.normal(size=n),
        "initial_covariance": spd(rng, n, 1.0),
        "dynamics_weights": stable(rng, n, radius=rng.uniform(0.5, 0.97)),
        "dynamics_bias": 0.5 * rng.normal(size=n),
        "dynamics_input_weights": rng.normal(size=(n, m)),
        "dynamics_covariance": spd(rng, n, 0.3),
        "emission_weights": rng.normal(size=(p, n)),
        "emission_bias": rng.normal(size=p),
        "emission_input_weights": rng.normal(size=(p, m)),
        "emission_covariance": _emission_cov(rng, p, diagonal),
    }
    exact = np.zeros(0, int)
    extra = ""
    if cls in ("q_rank0", "q_partial"):
        # Singular Q alone leaves the predicted covariance F P F^T + Q definite; the kinds make
        # it singular (P0 of lower rank, F with a zero eigenvalue) or nearly so (an eigenvalue
        # of F of 1e-4..1e-2, so its direction's variance falls by 1e-8..1e-4 a step), or they
        # are the structural models of a fixed slope and a deterministic cycle.
        kinds = (
            ("P0 full", "P0 partial", "F contracting", "F contracting")
            if cls == "q_rank0"
            else ("random", "fixed_slope", "deterministic_cycle", "random, P0 partial", "random, F contracting")
        )
        extra = kinds[index % len(kinds)]
        if cls == "q_rank0":
            params["dynamics_covariance"] = np.zeros((n, n))
        elif extra.startswith("random"):
            params["dynamics_covariance"] = _dyadic_psd(rng, n, int(rng.integers(1, n)))
        else:
            params["dynamics_weights"], params["dynamics_covariance"] = _structural(rng, n, extra)
        if extra.endswith("P0 partial"):
            params["initial_covariance"] = _dyadic_psd(rng, n, int(rng.integers(0, n)))
        if extra.endswith("F contracting"):
            params["dynamics_weights"] = _contracting(rng, n)
    elif cls in ("p0_rank0", "p0_partial"):
        # Half the cases with a singular Q as well, so that the predicted covariance stays singular.
        rank = 0 if cls == "p0_rank0" else int(rng.integers(1, n))
        params["initial_covariance"] = _dyadic_psd(rng, n, rank)
        if index % 2:
            params["dynamics_covariance"] = _dyadic_psd(rng, n, int(rng.integers(0, n)))
            extra = "Q singular"
    elif cls == "exact_components":
        k = int(rng.integers(1, min(n, p) + 1))
        exact = np.sort(rng.choice(p, size=k, replace=False))
        rest = np.setdiff1d(np.arange(p), exact)
        R = np.zeros((p, p))
        R[np.ix_(rest, rest)] = _emission_cov(rng, len(rest), diagonal)
        params["emission_covariance"] = R
        extra = f"{k} exact"
    elif cls == "ill_conditioned_R":
        log_cond = 6.0 + 6.0 * index / (CASES_PER_CLASS - 1)  # 1e6 .. 1e12, both ends included
        eig = 10.0 ** -np.linspace(0.0, log_cond, p)
        if diagonal:
            R = np.diag(rng.permutation(eig))
        else:
            U, _ = np.linalg.qr(rng.normal(size=(p, p)))
            R = U @ np.diag(eig) @ U.T
            R = 0.5 * (R + R.T)
        params["emission_covariance"] = R
        extra = f"cond 1e{log_cond:.1f}"
    elif cls == "tiny_R":
        H, P0 = params["emission_weights"], params["initial_covariance"]
        signal = np.mean(np.diag(H @ P0 @ H.T))
        params["emission_covariance"] = 1e-14 * signal * params["emission_covariance"]
    elif cls == "unstable":
        A = rng.normal(size=(n, n))
        params["dynamics_weights"] = 1.05 * A / np.max(np.abs(np.linalg.eigvals(A)))
    u = 2.0 * rng.normal(size=(T, m)) if m else None
    _, y = simulate(rng, params, T, u)
    if cls == "scales":
        # One factor for the states and one for the emissions, spread over 1e-6 .. 1e6 across
        # the class (a fixed permutation pairs them), times per-component factors in 0.1 .. 10.
        exps = np.linspace(-6.0, 6.0, CASES_PER_CLASS)
        ez, ey = exps[index], exps[(5 * index + 3) % CASES_PER_CLASS]
        dz = 10.0 ** (ez + rng.uniform(-1, 1, size=n))
        dy = 10.0 ** (ey + rng.uniform(-1, 1, size=p))
        params, y = _scaled(params, y, dz, dy)
        extra = f"states 1e{ez:+.1f}, emissions 1e{ey:+.1f}"
    mask, missing = _missing(rng, T, p)
    y[mask] = np.nan
    desc = f"n={n} p={p} m={m} T={T} {'diag' if diagonal else 'full'} R, missing {missing}"
    return Case(cls, index, params, y, u, exact, desc + (", " + extra if extra else ""))


def _exact_pivots(case, ref):
    """The reference's relative pivots of the exactly observed entries."""
    is_exact = np.isin(ref.observed[:, 1], case.exact) if len(ref.observed) else np.zeros(0, bool)
    return ref.pivots[is_exact]


@functools.cache
def case_and_reference(cls, index):
    """The index-th valid case of the class and its reference: draws from the case's own seed
    until the observations are non-degenerate (every exactly observed scalar keeps
    MODEL_VALIDITY_FLOOR of its variance given the ones before it)."""
    rng = np.random.default_rng([CLASSES.index(cls), index, 20240612])
    for _ in range(20):
        case = _draw(cls, index, rng)
        try:
            ref = MpReference(case.params, case.emissions, case.inputs)
        except DegenerateObservations:
            continue
        if np.all(_exact_pivots(case, ref) >= MODEL_VALIDITY_FLOOR):
            return case, ref
    raise AssertionError(f"{cls}[{index}]: no valid model in 20 draws")


# --------------------------------------------------------------------------
# Errors.


def std_scales(ref):
    """(T, n) scales d: the smoothed standard deviations, with the fallbacks for zeros."""
    V = np.einsum("tii->ti", ref.smoothed_covariances)
    P = np.einsum("tii->ti", ref.prior_covariances)
    prior_std = np.sqrt(np.max(P, axis=0))
    mean_mag = np.max(np.abs(ref.smoothed_means), axis=0)
    fallback = np.where(prior_std > 0, prior_std, np.where(mean_mag > 0, mean_mag, 1.0))
    return np.where(V > ZERO_VARIANCE * P, np.sqrt(np.abs(V)), fallback)


def errors(ref, loglik, smoother_loglik, means, covs, cross):
    """The battery's scale-aware errors (module docstring) of one result against the reference."""
    d = std_scales(ref)
    T = d.shape[0]
    out = {
        "loglik": abs(loglik - ref.marginal_loglik) / ref.loglik_scale,
        "smoother_loglik": abs(smoother_loglik - ref.marginal_loglik) / ref.loglik_scale,
        "means": float(
            np.max(
                np.abs(means - ref.smoothed_means)
                / np.maximum(d, MEAN_FLOOR * np.max(np.abs(ref.smoothed_means), axis=0))
            )
        ),
    }
    norm = [max(np.linalg.norm(ref.smoothed_covariances[t] / np.outer(d[t], d[t])), 1.0) for t in range(T)]
    out["covariances"] = max(
        np.linalg.norm((covs[t] - ref.smoothed_covariances[t]) / np.outer(d[t], d[t])) / norm[t] for t in range(T)
    )
    out["cross_covariances"] = max(
        (
            np.linalg.norm((cross[t] - ref.smoothed_cross_covariances[t]) / np.outer(d[t + 1], d[t]))
            / np.sqrt(norm[t] * norm[t + 1])
            for t in range(T - 1)
        ),
        default=0.0,
    )
    return {k: (float(v) if np.isfinite(v) else np.inf) for k, v in out.items()}


def lgssm_errors(case, ref):
    """The errors of lgssm's marginal_log_prob and smoother on the case."""
    n, p, m = case.dims
    model = LinearGaussianSSM(n, p, input_dim=m)
    params, _ = model.initialize(key=0, **case.params)
    ll = model.marginal_log_prob(params, case.emissions, case.inputs)
    post = model.smoother(params, case.emissions, case.inputs)
    return errors(
        ref, ll, post.marginal_loglik, post.smoothed_means, post.smoothed_covariances, post.smoothed_cross_covariances
    )


# --------------------------------------------------------------------------
# The battery.


@pytest.fixture(scope="session")
def battery_record(pytestconfig):
    """Per class: cases, failures, worst error per measure; printed at the end of the session."""
    record = {}
    yield record
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if not record or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        _write_summary(reporter, record)


def _write_summary(reporter, record):
    reporter.write_sep("=", f"battery: worst errors against the mpmath reference (dps {DPS})")
    reporter.write_line(
        f"{'class':18s} {'cases':>5s} {'fail':>4s} {'tol':>6s} "
        + " ".join(f"{k:>17s}" for k in MEASURES)
        + f" {'seconds':>7s}"
    )
    for cls in CLASSES:
        if cls not in record:
            continue
        r = record[cls]
        reporter.write_line(
            f"{cls:18s} {r['cases']:5d} {r['failed']:4d} {CLASS_TOL.get(cls, TOL):6.0e} "
            + " ".join(f"{r['worst'][k]:17.2e}" for k in MEASURES)
            + f" {r['seconds']:7.1f}"
        )
        for line in r["errors"]:
            reporter.write_line(f"    {line}")


@pytest.mark.parametrize("cls", CLASSES)
def test_battery(cls, battery_record):
    start = time.perf_counter()
    tol = CLASS_TOL.get(cls, TOL)
    worst = dict.fromkeys(MEASURES, 0.0)
    failures, raised = [], []
    for index in range(CASES_PER_CLASS):
        case, ref = case_and_reference(cls, index)
        try:
            err = lgssm_errors(case, ref)
        except Exception as exc:  # a valid model refused or a numerical failure: both are failures
            raised.append(f"{case!r}: {type(exc).__name__}: {exc}")
            err = dict.fromkeys(MEASURES, np.inf)
        for k in MEASURES:
            worst[k] = max(worst[k], err[k])
        bad = {k: v for k, v in err.items() if not v <= tol}
        if bad:
            failures.append(f"{case!r}: " + ", ".join(f"{k} {v:.2e}" for k, v in bad.items()))
    battery_record[cls] = dict(
        cases=CASES_PER_CLASS, failed=len(failures), worst=worst, seconds=time.perf_counter() - start, errors=raised[:3]
    )
    assert not failures, (
        f"{cls}: {len(failures)} of {CASES_PER_CLASS} cases beyond {tol:g} "
        f"(worst: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()) + ")\n" + "\n".join(failures + raised)
    )


def _column_batch(case, rng):
    """Sequences around the case's: two more with its length and missing pattern (shared
    covariances: one block of columns), one with an entry more missing and one a step shorter
    (each alone), with inputs where the case has them."""
    y, u = case.emissions, case.inputs
    scale = np.nanstd(y) + 1.0
    ys = [y] + [y + scale * rng.standard_normal(y.shape) for _ in range(2)]
    other = ys[1].copy()
    other[-1, np.flatnonzero(~np.isnan(other[-1]))[:1]] = np.nan
    ys += [other, ys[2][:-1]]
    us = None if u is None else [u + rng.standard_normal(u.shape) for _ in range(4)] + [u[:-1]]
    return ys, us


def _regressions(stats):
    """Each regression's sums (xx, rx, rr) stacked flat."""
    regressions = [stats.initial, *stats.dynamics, *stats.emissions]
    return [np.concatenate([np.ravel(getattr(r, k)) for k in ("xx", "rx", "rr")]) for r in regressions]


@pytest.mark.parametrize("cls", CLASSES)
def test_shared_covariance_columns_equal_the_per_sequence_path(cls):
    """Sequences of one length and missing pattern run as columns of one filter and smoother
    (their covariances computed once): the batch E-step equals the sum of the per-sequence
    E-steps and the batch log likelihoods the per-sequence ones, to 1e-12 relative, on every
    class of the battery (degenerate and ill-conditioned models, missing data, inputs)."""
    rng = np.random.default_rng([CLASSES.index(cls), 17])
    for index in range(4):
        case, _ = case_and_reference(cls, index)
        n, p, m = case.dims
        model = LinearGaussianSSM(n, p, input_dim=m)
        params, _ = model.initialize(key=0, **case.params)
        ys, us = _column_batch(case, rng)
        alone = [(y, None if us is None else u) for y, u in zip(ys, us or [None] * len(ys))]
        batch = model.sufficient_stats(params, ys, us)
        each = [model.sufficient_stats(params, y, u) for y, u in alone]
        total = each[0]
        for s in each[1:]:
            total = total + s
        # Relative to each regression's largest sum: a residual sum that is zero in exact
        # arithmetic (deterministic dynamics) is round-off of the size of the regressor's.
        for got, want in zip(_regressions(batch), _regressions(total)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max(), err_msg=repr(case))
        assert batch.marginal_loglik == pytest.approx(total.marginal_loglik, rel=1e-12)
        lls = model.marginal_log_prob(params, ys, us)
        want = [model.marginal_log_prob(params, y, u) for y, u in alone]
        np.testing.assert_allclose(lls, want, rtol=1e-12, err_msg=repr(case))


@pytest.mark.parametrize("cls", CLASSES)
def test_battery_models_are_what_their_class_says(cls):
    """The generator makes valid models of the stated class (independently of lgssm)."""
    for index in range(CASES_PER_CLASS):
        case, ref = case_and_reference(cls, index)
        n, p, m = case.dims
        P0, Q, R, F = (
            case.params[k]
            for k in ("initial_covariance", "dynamics_covariance", "emission_covariance", "dynamics_weights")
        )
        T = case.emissions.shape[0]
        assert 1 <= n <= 6 and 1 <= p <= 8 and 0 <= m <= 2 and 3 <= T <= 8, case
        assert (~np.isnan(case.emissions)).any(), case
        for name, A in (("P0", P0), ("Q", Q), ("R", R)):
            assert np.array_equal(A, A.T), (case, name)
            eig = np.linalg.eigvalsh(A)
            assert eig.min() >= -1e-14 * max(eig.max(), 1e-300), (case, name, eig)
        # R: zero rows and columns exactly at the exactly observed components, definite (as the
        # library judges it: smallest eigenvalue > 1e-13 times the largest) on the rest.
        rest = np.setdiff1d(np.arange(p), case.exact)
        assert not R[case.exact].any() and not R[:, case.exact].any(), case
        if len(rest):
            eig = np.linalg.eigvalsh(R[np.ix_(rest, rest)])
            assert eig.min() > 1e-13 * eig.max(), (case, eig)
        assert np.all(_exact_pivots(case, ref) >= MODEL_VALIDITY_FLOOR), case
        assert np.all(ref.pivots > 0), case
        rank = lambda A: int(np.sum(np.linalg.eigvalsh(A) > 1e-12 * max(np.abs(A).max(), 1e-300)))
        rho = np.max(np.abs(np.linalg.eigvals(F)))
        if cls == "q_rank0":
            assert not Q.any(), case
        elif cls == "q_partial":
            assert rank(Q) < n, case
        elif cls == "p0_rank0":
            assert not P0.any(), case
        elif cls == "p0_partial":
            assert 1 <= rank(P0) < n, case
        elif cls == "exact_components":
            assert 1 <= len(case.exact) <= min(n, p), case
        elif cls == "ill_conditioned_R":
            cond = np.linalg.cond(R)
            assert 1e6 * (1 - 1e-3) <= cond <= 1e12 * (1 + 1e-3), (case, cond)
        elif cls == "tiny_R":
            H = case.params["emission_weights"]
            assert np.abs(R).max() <= 1e-13 * np.mean(np.diag(H @ P0 @ H.T)), case
        elif cls == "unstable":
            assert abs(rho - 1.05) < 1e-12, (case, rho)
        if cls not in ("q_rank0", "q_partial", "p0_rank0", "p0_partial", "exact_components"):
            assert rank(P0) == n and rank(Q) == n and not len(case.exact), case
        if cls not in ("unstable", "q_partial"):
            assert rho < 1.0, (case, rho)
    if cls == "ill_conditioned_R":
        worst = max(
            np.linalg.cond(case_and_reference(cls, i)[0].params["emission_covariance"]) for i in range(CASES_PER_CLASS)
        )
        assert worst >= 1e12 * (1 - 1e-3), worst
    if cls == "scales":  # prior standard deviations of states and emission noise span 1e-6..1e6
        for name in ("initial_covariance", "emission_covariance"):
            logs = np.concatenate(
                [0.5 * np.log10(np.diag(case_and_reference(cls, i)[0].params[name])) for i in range(CASES_PER_CLASS)]
            )
            assert logs.min() <= -5 and logs.max() >= 5, (name, logs.min(), logs.max())


def test_degenerate_observations_are_refused():
    """An exactly observed component of a state with no variance left makes y_o degenerate: the
    reference refuses it, so the generator never uses such a model."""
    params = dict(
        initial_mean=np.zeros(2),
        initial_covariance=np.diag([1.0, 0.0]),
        dynamics_weights=np.eye(2),
        dynamics_bias=np.zeros(2),
        dynamics_input_weights=np.zeros((2, 0)),
        dynamics_covariance=np.zeros((2, 2)),
        emission_weights=np.array([[1.0, 0.0], [0.0, 1.0]]),
        emission_bias=np.zeros(2),
        emission_input_weights=np.zeros((2, 0)),
        emission_covariance=np.diag([0.0, 1.0]),
    )
    y = np.array([[0.3, 0.1], [0.3, -0.2]])  # z_1 = z_0 exactly, observed exactly twice
    with pytest.raises(DegenerateObservations, match="observed entry 2"):
        MpReference(params, y)
    y[1, 0] = np.nan  # observed once: valid
    ref = MpReference(params, y)
    assert np.isfinite(ref.marginal_loglik)


# --------------------------------------------------------------------------
# The reference checked: against the float64 dense reference on the ordinary variants of
# conftest.py, and against closed forms where it is degenerate.


def test_mp_reference_matches_dense_reference(variant):
    """Two implementations of the same dense conditioning, float64 and mpmath, on well-conditioned
    models agree to float64's round-off (1e-12 in the battery's scale-aware errors)."""
    seq = variant.seq
    mpr = MpReference(variant.params, seq.emissions, seq.inputs)
    ref = Reference(variant.params, seq.emissions, seq.inputs)
    means, covs, cross = ref.smoothed()
    err = errors(mpr, ref.marginal_loglik, ref.marginal_loglik, means, covs, cross)
    assert max(err.values()) <= 1e-12, err


def _random_walk_params(p0, q, r):
    return dict(
        initial_mean=np.array([0.4]),
        initial_covariance=np.array([[p0]]),
        dynamics_weights=np.eye(1),
        dynamics_bias=np.zeros(1),
        dynamics_input_weights=np.zeros((1, 0)),
        dynamics_covariance=np.array([[q]]),
        emission_weights=np.eye(1),
        emission_bias=np.zeros(1),
        emission_input_weights=np.zeros((1, 0)),
        emission_covariance=np.array([[r]]),
    )


def _close(actual, expected, what, rtol=1e-14):
    """|actual - expected| <= rtol max|expected| (float64 results of the reference: 1e-14 is a
    few roundings; a zero is expected as below 1e-30, the reference's digits being 50)."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    tol = rtol * np.abs(expected).max() if expected.any() else 1e-30
    assert np.abs(actual - expected).max() <= tol, (what, actual, expected)


def test_mp_reference_random_walk_steady_state():
    """Scalar random walk started at the steady-state predicted variance P (P^2 = q P + q r; with
    P = 3/2, q = 1/2, r = 3 all exact): every step has gain k = P / (P + r), filtered variance
    Pf = P r / (P + r) and smoother gain J = Pf / P, so log p(y) and the smoothed moments follow
    from scalar recursions with constant coefficients (Sarkka 2013, Theorems 4.2 and 8.2)."""
    P, q, r = 1.5, 0.5, 3.0
    assert P * P == q * P + q * r
    y = np.random.default_rng(7).normal(size=(6, 1)).cumsum(axis=0)
    ref = MpReference(_random_walk_params(P, q, r), y)
    with mp.workdps(DPS):
        k, Pf = mp.mpf(P) / (P + r), mp.mpf(P) * r / (P + r)
        J = Pf / P
        ll, pred, filt = mp.zero, mp.mpf(0.4), []
        for yt in y[:, 0]:
            e = mp.mpf(float(yt)) - pred
            ll += -(e * e / (P + r) + mp.log(2 * mp.pi * (P + r))) / 2
            filt.append(pred + k * e)
            pred = filt[-1]
        means, var, cross = [filt[-1]], [Pf], []
        for t in range(len(y) - 2, -1, -1):  # the predicted mean of z_{t+1} is filt[t]
            means.insert(0, filt[t] + J * (means[0] - filt[t]))
            cross.insert(0, J * var[0])
            var.insert(0, Pf + J * J * (var[0] - P))
        _close(ref.marginal_loglik, float(ll), "loglik")
        _close(ref.smoothed_means[:, 0], [float(x) for x in means], "means")
        _close(ref.smoothed_covariances[:, 0, 0], [float(x) for x in var], "variances")
        _close(ref.smoothed_cross_covariances[:, 0, 0], [float(x) for x in cross], "cross")


def test_mp_reference_random_walk_observed_exactly():
    """Random walk observed without noise (R = 0) except at one missing step: log p(y) is the sum
    of the increments' densities, the smoothed state is the data, and the missing step is a
    Brownian bridge between its neighbours (mean their average, variance q / 2)."""
    p0, q = 2.0, 0.5
    y = np.array([[0.3], [1.1], [np.nan], [0.2], [0.9]])
    ref = MpReference(_random_walk_params(p0, q, 0.0), y)
    with mp.workdps(DPS):
        v = [mp.mpf(float(x)) for x in y[[0, 1, 3, 4], 0]]
        ll = (
            _log_normal(v[0], mp.mpf(0.4), p0)
            + _log_normal(v[1] - v[0], 0, q)
            + _log_normal(v[2] - v[1], 0, 2 * q)
            + _log_normal(v[3] - v[2], 0, q)
        )
        _close(ref.marginal_loglik, float(ll), "loglik")
    _close(ref.smoothed_means[:, 0], [0.3, 1.1, (1.1 + 0.2) / 2, 0.2, 0.9], "means")
    _close(ref.smoothed_covariances[:, 0, 0], [0, 0, q / 2, 0, 0], "variances")
    _close(ref.smoothed_cross_covariances[:, 0, 0], [0, 0, 0, 0], "cross")


def test_mp_reference_deterministic_states():
    """Q = 0 and P0 = 0: the states are the deterministic trajectory of the inputs, log p(y) is
    the sum of log N(y_t; H z_t + D u_t + d, R) (R 2 x 2, by its explicit inverse and
    determinant), and every smoothed covariance is zero."""
    rng = np.random.default_rng(11)
    n, p, m, T = 2, 2, 1, 5
    params = dict(
        initial_mean=rng.normal(size=n),
        initial_covariance=np.zeros((n, n)),
        dynamics_weights=stable(rng, n),
        dynamics_bias=rng.normal(size=n),
        dynamics_input_weights=rng.normal(size=(n, m)),
        dynamics_covariance=np.zeros((n, n)),
        emission_weights=rng.normal(size=(p, n)),
        emission_bias=rng.normal(size=p),
        emission_input_weights=rng.normal(size=(p, m)),
        emission_covariance=np.array([[0.5, 0.2], [0.2, 0.3]]),
    )
    u = rng.normal(size=(T, m))
    y = rng.normal(size=(T, p))
    y[2, 1] = np.nan
    ref = MpReference(params, y, u)
    with mp.workdps(DPS):
        M = lambda a: mp.matrix(np.asarray(a, float).tolist())
        F, B, b = M(params["dynamics_weights"]), M(params["dynamics_input_weights"]), M(params["dynamics_bias"])
        H, D, d = M(params["emission_weights"]), M(params["emission_input_weights"]), M(params["emission_bias"])
        R = params["emission_covariance"]
        z, ll, traj = M(params["initial_mean"]), mp.zero, []
        for t in range(T):
            if t:
                z = F * z + B * M(u[t]) + b
            traj.append([float(x) for x in z])
            mean = H * z + D * M(u[t]) + d
            e0, e1 = mp.mpf(float(y[t, 0])) - mean[0], mp.mpf(float(y[t, 1])) - mean[1]
            if np.isnan(y[t, 1]):
                ll += _log_normal(e0, 0, R[0, 0])
            else:
                det = mp.mpf(R[0, 0]) * R[1, 1] - mp.mpf(R[0, 1]) * R[1, 0]
                quad = (R[1, 1] * e0 * e0 - 2 * R[0, 1] * e0 * e1 + R[0, 0] * e1 * e1) / det
                ll += -(quad + mp.log(det) + 2 * mp.log(2 * mp.pi)) / 2
        _close(ref.marginal_loglik, float(ll), "loglik")
    _close(ref.smoothed_means, traj, "means")
    assert np.abs(ref.smoothed_covariances).max() <= 1e-30
    assert np.abs(ref.smoothed_cross_covariances).max() <= 1e-30


def _log_normal(x, mean, var):
    """log N(x; mean, var) for scalars, in mpmath at the working precision."""
    x, mean, var = mp.mpf(x), mp.mpf(mean), mp.mpf(var)
    return -((x - mean) ** 2 / var + mp.log(2 * mp.pi * var)) / 2
