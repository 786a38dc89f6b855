"""lgssm.distributed on a LocalCluster of two worker processes: every fit and
inference equals the single-process one on the same sequences (in shard
order), for every kind of input; a worker killed mid-fit and a fit resumed
from a checkpoint change nothing. About 30 s, most of it the cluster's start."""

import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")

import lgssm  # noqa: E402
from lgssm import ContinuousTimeSSM, LinearGaussianConjugateSSM, LinearGaussianSSM, io  # noqa: E402
from lgssm import distributed as ld  # noqa: E402
from lgssm.distributed._engines import worker_threads  # noqa: E402
from lgssm.optimizers import adam  # noqa: E402

from conftest import assert_close  # noqa: E402

RTOL = 1e-10
N, T_MAX, P, M, STATE = 200, 30, 3, 1, 2


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def data():
    """200 sequences of lengths 5..30 with inputs, 10% missing entries and some
    all-missing steps (never the last step: trailing all-NaN rows are padding)."""
    rng = np.random.default_rng(7)
    model = LinearGaussianSSM(STATE, P, M)
    truth, _ = model.initialize(1, dynamics_weights=[[0.9, 0.2], [-0.2, 0.9]], dynamics_input_weights=[[0.5], [0.0]])
    ys, us = [], []
    for i in range(N):
        t = int(rng.integers(5, T_MAX + 1))
        u = rng.standard_normal((t, M))
        _, y = model.sample(truth, key=i, num_timesteps=t, inputs=u)
        y = np.array(y)
        y[rng.random(y.shape) < 0.1] = np.nan
        y[rng.random(t) < 0.05] = np.nan
        y[-1, 0] = 0.5 if np.isnan(y[-1, 0]) else y[-1, 0]
        ys.append(y)
        us.append(u)
    padded_y = np.full((N, T_MAX, P), np.nan)
    padded_u = np.zeros((N, T_MAX, M))
    for i, (y, u) in enumerate(zip(ys, us)):
        padded_y[i, : len(y)], padded_u[i, : len(u)] = y, u
    return ys, us, padded_y, padded_u


def as_dask(data):
    _, _, y, u = data
    return da.from_array(y, chunks=(37, T_MAX, P)), da.from_array(u, chunks=(37, T_MAX, M))


def assert_params_close(actual, expected, rtol=RTOL):
    for group in ("initial", "dynamics", "emissions"):
        for name, value in vars(getattr(expected, group)).items():
            assert_close(np.asarray(getattr(getattr(actual, group), name)), value, f"{group}.{name}", rtol=rtol)


@pytest.mark.parametrize("constrained", [False, True])
def test_em_equals_single_process_em(client, data, constrained):
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    if constrained:  # lower-triangular loadings; the start breaks it and is projected by both
        props.emissions.weights.constraint = lgssm.constraints.pattern([["a", 0.0], ["b", "c"], ["d", "e"]])
    expected, expected_lls = model.fit_em(params, props, data[2], data[3], num_iters=20, verbose=False)
    y, u = as_dask(data)
    fitted, lls = ld.fit_em(model, params, props, y, inputs=u, client=client, num_iters=20, verbose=False)
    assert_close(lls, expected_lls, "marginal_lls", rtol=RTOL)
    assert_params_close(fitted, expected)


def test_sgd_equals_single_process_sgd_with_a_fixed_shuffle(client, data):
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    kwargs = dict(optimizer=adam(1e-2), batch_size=45, num_epochs=6, shuffle=True, key=11, verbose=False)
    expected, expected_losses = model.fit_sgd(params, props, data[0], data[1], **kwargs)
    bag = db.from_sequence(list(zip(data[0], data[1])), npartitions=5)
    fitted, losses = ld.fit_sgd(model, params, props, bag, client=client, **kwargs)
    assert_close(losses, expected_losses, "losses", rtol=RTOL)
    assert_params_close(fitted, expected)


def test_sgd_with_an_optax_optimizer_equals_single_process_sgd(client, data, tmp_path):
    optax = pytest.importorskip("optax", exc_type=ImportError, reason="optax (extra `jax`) cannot be imported")
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    kwargs = dict(batch_size=45, num_epochs=4, shuffle=True, key=11, verbose=False)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    expected, expected_losses = model.fit_sgd(params, props, data[0], data[1], optimizer=optimizer, **kwargs)
    bag = db.from_sequence(list(zip(data[0], data[1])), npartitions=5)
    fitted, losses = ld.fit_sgd(model, params, props, bag, client=client, optimizer=optimizer, **kwargs)
    assert_close(losses, expected_losses, "losses", rtol=RTOL)
    assert_params_close(fitted, expected)
    with pytest.raises(ValueError, match="checkpoint: .*optax optimizer"):
        ld.fit_sgd(model, params, props, bag, client=client, optimizer=optimizer, checkpoint=tmp_path / "c", **kwargs)


def test_frozen_parameters_structure_and_prior(client, data):
    model = LinearGaussianConjugateSSM(STATE, P, M)
    params, props = model.initialize(5)
    props.dynamics.weights.trainable = False
    props.emissions.cov.structure = "diagonal"
    params.emissions.cov = np.diag(np.diag(params.emissions.cov))
    y, u = as_dask(data)
    expected, expected_lls = model.fit_em(params, props, data[2], data[3], num_iters=5, verbose=False)
    fitted, lls = ld.fit_em(model, params, props, y, inputs=u, client=client, num_iters=5, verbose=False)
    assert_close(lls, expected_lls, "marginal_lls", rtol=RTOL)
    assert_params_close(fitted, expected)
    np.testing.assert_array_equal(fitted.dynamics.weights, params.dynamics.weights)
    kwargs = dict(optimizer=adam(1e-2), batch_size=40, num_epochs=3, verbose=False)
    expected, expected_losses = model.fit_sgd(params, props, data[2], data[3], **kwargs)
    fitted, losses = ld.fit_sgd(model, params, props, y, inputs=u, client=client, **kwargs)
    assert_close(losses, expected_losses, "losses", rtol=RTOL)
    assert_params_close(fitted, expected)


def test_per_step_emission_parameters(client, data):
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    e = params.emissions
    for name in ("weights", "bias", "input_weights", "cov"):
        value = getattr(e, name)
        setattr(e, name, np.tile(value, (T_MAX,) + (1,) * value.ndim))
    expected, expected_lls = model.fit_em(params, props, data[2], data[3], num_iters=3, verbose=False)
    y, u = as_dask(data)
    fitted, lls = ld.fit_em(model, params, props, y, inputs=u, client=client, num_iters=3, verbose=False)
    assert fitted.emissions.weights.shape == (T_MAX, P, STATE)
    assert_close(lls, expected_lls, "marginal_lls", rtol=RTOL)
    assert_params_close(fitted, expected)


def write_files(data, directory, fmt):
    """The sequences in 4 files of format ``fmt``, and the reader options."""
    ys, us, _, _ = data
    paths = []
    for f, part in enumerate(np.array_split(np.arange(N), 4)):
        path = os.path.join(directory, f"part{f}.{fmt}")
        if fmt == "csv":
            rows = [[i] + list(us[i][t]) + list(ys[i][t]) for i in part for t in range(len(ys[i]))]
            np.savetxt(
                path,
                np.array(rows),
                delimiter=",",
                fmt="%.17g",
                comments="",
                header="seq,u0," + ",".join(f"y{k}" for k in range(P)),
            )
        else:
            y = np.full((len(part), T_MAX, P), np.nan)
            u = np.zeros((len(part), T_MAX, M))
            for j, i in enumerate(part):
                y[j, : len(ys[i])], u[j, : len(us[i])] = ys[i], us[i]
            if fmt == "npy":  # no inputs in an NPY file: zeros, as for the reference
                np.save(path, y)
            else:
                np.savez(path, emissions=y, inputs=u)
        paths.append(path)
    return paths, ({"sequence_column": "seq", "input_columns": "u0"} if fmt == "csv" else None)


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv"])
def test_file_lists(client, data, tmp_path, fmt):
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    paths, options = write_files(data, str(tmp_path), fmt)
    inputs = None if fmt == "npy" else data[1]
    expected, expected_lls = model.fit_em(params, props, data[0], inputs, num_iters=3, verbose=False)
    fitted, lls = ld.fit_em(
        model, params, props, paths, client=client, num_iters=3, read_options=options, verbose=False
    )
    assert_close(lls, expected_lls, "marginal_lls", rtol=RTOL)
    assert_params_close(fitted, expected)


def test_log_likelihood_and_smoother_of_all_sequences(client, data):
    model = LinearGaussianSSM(STATE, P, M)
    params, _ = model.initialize(3)
    seqs = ld.persist(db.from_sequence(list(zip(data[0], data[1])), npartitions=3), client, emission_dim=P, input_dim=M)
    assert seqs.num_sequences == N and seqs.num_entries == sum(y.size for y in data[0])
    assert_close(
        ld.marginal_log_prob(model, params, seqs),
        model.marginal_log_prob(params, data[0], data[1]),
        "marginal_log_prob",
        rtol=RTOL,
    )
    smoothed = ld.smoother(model, params, seqs).compute()
    expected = model.smoother(params, data[0], data[1])
    assert len(smoothed) == N
    for i in (0, 77, N - 1):
        for name in ("smoothed_means", "smoothed_covariances", "smoothed_cross_covariances"):
            assert_close(getattr(smoothed[i], name), getattr(expected[i], name), f"{name}[{i}]", rtol=RTOL)


def test_resume_from_checkpoint(client, data, tmp_path):
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    y, u = as_dask(data)
    seqs = ld.persist(y, client, emission_dim=P, input_dim=M, inputs=u)
    whole, whole_lls = ld.fit_em(model, params, props, seqs, num_iters=6, verbose=False)
    path = str(tmp_path / "em.json")
    _, first = ld.fit_em(
        model, params, props, seqs, num_iters=6, checkpoint=path, verbose=False, callback=lambda it, lp: it < 3
    )  # an interruption during iteration 3
    assert len(first) == 4 and io.read_metadata(path)["checkpoint"]["history"] == list(first[:3])
    resumed, lls = ld.fit_em(model, params, props, seqs, num_iters=6, checkpoint=path, verbose=False)
    np.testing.assert_array_equal(lls, whole_lls)
    assert_params_close(resumed, whole, rtol=0)

    kwargs = dict(optimizer=adam(1e-2), batch_size=50, num_epochs=3, shuffle=True, key=2, verbose=False)
    whole, whole_losses = ld.fit_sgd(model, params, props, seqs, **kwargs)
    path = str(tmp_path / "sgd.json")
    ld.fit_sgd(model, params, props, seqs, checkpoint=path, callback=lambda epoch, loss: epoch < 1, **kwargs)
    assert len(io.read_metadata(path)["checkpoint"]["history"]) == 2
    resumed, losses = ld.fit_sgd(model, params, props, seqs, checkpoint=path, **kwargs)
    np.testing.assert_array_equal(losses, whole_losses)
    assert_params_close(resumed, whole, rtol=0)
    with pytest.raises(ValueError, match="checkpoint: .*batch_size=50, this fit has batch_size=51"):
        ld.fit_sgd(model, params, props, seqs, checkpoint=path, **dict(kwargs, batch_size=51))
    with pytest.raises(ValueError, match="checkpoint: expected a em checkpoint"):
        ld.fit_em(model, params, props, seqs, checkpoint=path, verbose=False)


def test_bad_input_names_the_argument(client, data, tmp_path):
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    y, u = as_dask(data)
    cases = [
        (dict(data=data[2]), "data: expected a dask array"),
        (dict(data=y[0]), r"data: expected a dask array of shape .* got shape \(30, 3\)"),
        (dict(data=y[..., :2], inputs=u), r"data: expected sequences with emission_dim 3, got \[2\]"),
        (dict(data=db.from_sequence(data[0][:5]), inputs=u), "inputs: only a dask array"),
        (
            dict(data=db.from_sequence([data[0][0], (data[0][1], data[1][1])], npartitions=1)),
            "data: expected every bag element to be an emissions array, or every one an",
        ),
        (dict(data=y, inputs=u, dt=0.1), "dt: only continuous-time models take dt"),
        (dict(data=y, inputs=u[:5]), r"inputs: expected a dask array of shape \(200, 30, input_dim\)"),
        (dict(data=y, inputs=u, client="tcp://x"), "client: expected a distributed.Client, got str"),
        (dict(data=y, inputs=u, num_iters=-1), "num_iters: expected an integer >= 0, got -1"),
        (dict(data=y, inputs=u, model=object()), "model: expected a LinearGaussianSSM"),
    ]
    for case, message in cases:
        kwargs = dict(model=model, params=params, props=props, client=client, verbose=False)
        kwargs.update(case)
        with pytest.raises(ValueError, match=message):
            ld.fit_em(**kwargs)
    with pytest.raises(io.DataError, match="data: no such file .*missing.npy on a worker"):
        ld.fit_em(model, params, props, [str(tmp_path / "missing.npy")], client=client, verbose=False)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        ld.fit_sgd(model, params, props, y, inputs=u, client=client, batch_size=0, verbose=False)
    with pytest.raises(ValueError, match="learning_rate"):
        ld.fit_sgd(model, params, props, y, inputs=u, client=client, optimizer=adam(-1.0), verbose=False)


def test_a_worker_killed_mid_fit(client, data):
    """Runs last: it kills one worker process (the nanny starts a new one)."""
    model = LinearGaussianSSM(STATE, P, M)
    params, props = model.initialize(3)
    expected, expected_lls = model.fit_em(params, props, data[2], data[3], num_iters=6, verbose=False)
    y, u = as_dask(data)
    seqs = ld.persist(y, client, emission_dim=P, input_dim=M, inputs=u)
    before = client.run(os.getpid)
    holders = client.who_has(seqs.shards)
    victim = next(iter(holders[seqs.shards[0].key]))

    def kill(it, lp):
        if it == 2:
            os.kill(before[victim], signal.SIGKILL)
        return True

    fitted, lls = ld.fit_em(model, params, props, seqs, num_iters=6, callback=kill, verbose=False)
    assert_close(lls, expected_lls, "marginal_lls", rtol=RTOL)
    assert_params_close(fitted, expected)
    client.wait_for_workers(2)
    after = client.run(os.getpid)
    assert victim not in after and before[victim] not in after.values()


@pytest.fixture(scope="module")
def timed_data(data):
    """The same sequences observed at irregular times (exponential gaps)."""
    rng = np.random.default_rng(8)
    return [np.cumsum(np.r_[0.0, rng.exponential(0.2, len(y) - 1)]) for y in data[0]]


def test_continuous_time_em_equals_single_process_em(client, data, timed_data, tmp_path):
    model = ContinuousTimeSSM(STATE, P, M)
    params, props = model.initialize(3, drift=[[-0.2, 1.0], [-1.0, -0.2]])
    props.emissions.weights.trainable = False
    expected, expected_lls = model.fit_em(
        params, props, data[0], times=timed_data, inputs=data[1], num_iters=4, accelerate=False, verbose=False
    )
    bag = db.from_sequence(list(zip(data[0], data[1], timed_data)), npartitions=3)
    fitted, lls = ld.fit_em(model, params, props, bag, client=client, num_iters=4, verbose=False)
    assert_close(lls, expected_lls, "marginal_lls", rtol=RTOL)
    assert_params_close(fitted, expected)
    # Files carrying their times, and a dask array with a times array (padded
    # times continue increasing; they are cut with the padded emissions).
    padded_times = np.stack([np.r_[t, t[-1] + np.arange(1, T_MAX - len(t) + 1)] for t in timed_data])
    paths = []
    for k in range(0, N, 50):
        paths.append(os.path.join(str(tmp_path), f"part{k}.npz"))
        np.savez(paths[-1], emissions=data[2][k : k + 50], inputs=data[3][k : k + 50], times=padded_times[k : k + 50])
    _, lls_files = ld.fit_em(model, params, props, paths, client=client, num_iters=2, verbose=False)
    assert_close(lls_files, expected_lls[:2], "marginal_lls (files)", rtol=RTOL)
    y, u = as_dask(data)
    lls_array = ld.marginal_log_prob(
        model, params, y, inputs=u, times=da.from_array(padded_times, chunks=(37, T_MAX)), client=client
    )
    assert_close(
        lls_array,
        model.marginal_log_prob(params, data[0], times=timed_data, inputs=data[1]),
        "marginal_log_prob (array)",
        rtol=RTOL,
    )
    # Uniform steps: dt instead of times.
    smoothed = ld.smoother(model, params, bag.map(lambda e: e[:2]), dt=0.3, client=client).compute()
    expected_smoothed = model.smoother(params, data[0], dt=0.3, inputs=data[1])
    for i in (0, N - 1):
        assert_close(smoothed[i].smoothed_means, expected_smoothed[i].smoothed_means, f"smoothed_means[{i}]", rtol=RTOL)
    with pytest.raises(ValueError, match="dt"):
        ld.fit_em(model, params, props, bag, dt=0.3, client=client, num_iters=1, verbose=False)
    with pytest.raises(ValueError, match="model"):
        ld.fit_sgd(model, params, props, bag, client=client, num_epochs=1, verbose=False)


def test_the_e_step_keeps_to_the_worker_threads(client):
    # One thread per worker here; on the client (no worker) all hardware threads.
    assert client.submit(worker_threads, pure=False).result() == 1
    assert worker_threads() == 0


def test_sgd_returns_the_best_parameters_when_the_loss_becomes_non_finite(client):
    """As test_learn's test of model.fit_sgd (the same 1-D model, the same iterates
    s = -2.5, -0.5, 60.2, 304.3, then an overflow): the parameters of epoch 1."""
    model = LinearGaussianSSM(1, 1)
    params, props = model.initialize(0, emission_weights=[[0.0]], emission_covariance=[[np.exp(-5.0)]])
    groups = {
        "initial": ("mean", "cov"),
        "dynamics": ("weights", "bias", "input_weights", "cov"),
        "emissions": ("weights", "bias", "input_weights", "cov"),
    }
    for group, names in groups.items():
        for name in names:
            getattr(getattr(props, group), name).trainable = (group, name) == ("emissions", "cov")
    y = np.sqrt(np.e) * np.array([[1.0], [-1.0]])
    bag = db.from_sequence([y], npartitions=1)
    with pytest.warns(RuntimeWarning, match=r"non-finite in epoch 4.*from epoch 1"):
        fitted, losses, summary = ld.fit_sgd(
            model,
            params,
            props,
            bag,
            client=client,
            optimizer=adam(2.0, b1=0.9, b2=0.0),
            num_epochs=20,
            verbose=False,
            return_summary=True,
        )
    assert summary.termination == "numerical_failure" and summary.iterations == 4, summary
    assert_close(np.log(fitted.emissions.cov[0, 0]) / 2, -0.5, "log sqrt(R) returned", rtol=1e-9)
