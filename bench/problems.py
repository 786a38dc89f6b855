"""The benchmark problems: models and data with fixed seeds, built the same way
in the harness and in its fresh subprocesses (so a subprocess gets identical
data from a short description)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import lgssm
from lgssm import _notebook


@dataclass(frozen=True)
class Spec:
    """A problem: a random stable model of ``state_dim`` x ``emission_dim``
    (dense SPD emission covariance when ``full_r``, else 0.1 I) and
    ``num_sequences`` sequences of ``num_timesteps`` steps drawn from it;
    ``kind="notebook"`` is dynamax's LG-SSM notebook model instead."""

    kind: str = "random"
    state_dim: int = 2
    emission_dim: int = 10
    num_timesteps: int = 100
    num_sequences: int = 1
    full_r: bool = True
    seed: int = 0

    def as_dict(self):
        return asdict(self)


def random_params(state_dim: int, emission_dim: int, full_r: bool, seed: int) -> lgssm.ParamsLGSSM:
    """F = 0.95 U (U random orthogonal), Q = 0.1 I, H standard normal, R = 0.1 I
    or 0.1 I + A A^T / p (A standard normal), z_0 ~ N(0, I), zero biases."""
    n, p = state_dim, emission_dim
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((n, n)))[0]
    r = 0.1 * np.eye(p)
    if full_r:
        a = rng.standard_normal((p, p))
        r = r + a @ a.T / p
    return lgssm.ParamsLGSSM(
        initial=lgssm.ParamsLGSSMInitial(mean=np.zeros(n), cov=np.eye(n)),
        dynamics=lgssm.ParamsLGSSMDynamics(
            weights=0.95 * u, bias=np.zeros(n), input_weights=np.zeros((n, 0)), cov=0.1 * np.eye(n)
        ),
        emissions=lgssm.ParamsLGSSMEmissions(
            weights=rng.standard_normal((p, n)), bias=np.zeros(p), input_weights=np.zeros((p, 0)), cov=r
        ),
    )


def simulate(params: lgssm.ParamsLGSSM, num_sequences: int, num_timesteps: int, seed: int) -> np.ndarray:
    """Emissions (num_sequences, num_timesteps, emission_dim) drawn from the
    model by plain NumPy, all sequences at once."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky
    d, e = params.dynamics, params.emissions
    n, p = e.weights.shape[1], e.weights.shape[0]
    z = params.initial.mean + rng.standard_normal((num_sequences, n)) @ chol(params.initial.cov).T
    out = np.empty((num_sequences, num_timesteps, p))
    lq, lr = chol(d.cov), chol(e.cov)
    for t in range(num_timesteps):
        if t > 0:
            z = z @ d.weights.T + d.bias + rng.standard_normal((num_sequences, n)) @ lq.T
        out[:, t] = z @ e.weights.T + e.bias + rng.standard_normal((num_sequences, p)) @ lr.T
    return out


def notebook_params():
    """dynamax's LG-SSM notebook (lgssm._notebook): the true parameters (a 2-d
    rotation, 10-d emissions) and the initial parameters its fits start from."""
    model, true_params = _notebook.true_model()
    return true_params, _notebook.start(model)[0]


def build(spec: Spec):
    """(params, emissions): emissions are (num_timesteps, emission_dim) for one
    sequence, else (num_sequences, num_timesteps, emission_dim)."""
    if spec.kind == "notebook":
        params = notebook_params()[0]
    else:
        params = random_params(spec.state_dim, spec.emission_dim, spec.full_r, spec.seed)
    y = simulate(params, spec.num_sequences, spec.num_timesteps, spec.seed + 1)
    return params, (y[0] if spec.num_sequences == 1 else y)


def fit_start(spec: Spec) -> lgssm.ParamsLGSSM:
    """The parameters every contender's fit starts from."""
    if spec.kind == "notebook":
        return notebook_params()[1]
    return lgssm.LinearGaussianSSM(spec.state_dim, spec.emission_dim).initialize(spec.seed + 2)[0]
