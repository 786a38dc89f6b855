"""The lgssm command line: fit -> smooth -> forecast round trips, exit codes and
one-line errors. Results are compared with the Python API run on the same
arrays (built here, not read back through lgssm.io)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lgssm
from lgssm import LinearGaussianSSM, cli
from lgssm import io as lio
from lgssm.utils import monotonically_increasing

from conftest import assert_close

N, P, M = 2, 3, 1
LENGTHS = {"s2": 14, "s1": 10}  # s2 appears first in the file


@pytest.fixture(scope="module")
def truth():
    model = LinearGaussianSSM(N, P, M)
    params, _ = model.initialize(1, dynamics_weights=0.9 * lgssm.utils.random_rotation(2, N, theta=0.3))
    rng = np.random.default_rng(0)
    seqs = {}
    for i, (sid, T) in enumerate(LENGTHS.items()):
        u = rng.normal(size=(T, M))
        _, y = model.sample(params, 10 + i, T, u)
        y[3, 1] = np.nan
        y[5] = np.nan
        seqs[sid] = (y, u)
    return model, params, seqs


def _cell(x):
    return "" if np.isnan(x) else repr(float(x))


@pytest.fixture
def csv_data(tmp_path, truth):
    """A CSV with a header, a sequence column (rows interleaved) and empty cells."""
    _, _, seqs = truth
    rows = ["seq,u,y1,y2,y3"]
    for t in range(max(LENGTHS.values())):
        for sid, (y, u) in seqs.items():
            if t < len(y):
                rows.append(",".join([sid, _cell(u[t, 0])] + [_cell(v) for v in y[t]]))
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    ys = [seqs[s][0] for s in LENGTHS]
    us = [seqs[s][1] for s in LENGTHS]
    return path, ys, us


CSV_OPTS = ["--sequence-column", "seq", "--input-columns", "u"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_fit_smooth_forecast_loglik(tmp_path, capsys, csv_data):
    data, ys, us = csv_data
    model_path = tmp_path / "model.json"
    code, out, err = run(capsys, "fit", data, "--state-dim", N, "--iters", 6, "--quiet", *CSV_OPTS, "--out", model_path)
    assert (code, out, err) == (0, "", "")
    model, params, props = lio.load_model(model_path)
    assert (model.state_dim, model.emission_dim, model.input_dim) == (N, P, M)
    meta = lio.read_metadata(model_path)
    assert meta["fit"]["method"] == "em" and meta["fit"]["iterations"] == 6
    assert meta["data"]["num_timesteps"] == [14, 10]
    assert monotonically_increasing(meta["fit"]["history"], rtol=1e-10)
    expected_ll = model.marginal_log_prob(params, ys, us)
    assert_close(meta["marginal_loglik"], float(np.sum(expected_ll)), "metadata loglik")

    # loglik prints the total; --out has one value per sequence.
    code, out, err = run(capsys, "loglik", model_path, data, *CSV_OPTS, "--out", tmp_path / "ll.csv")
    assert code == 0 and err == ""
    assert_close(float(out), float(np.sum(expected_ll)), "loglik")
    lines = (tmp_path / "ll.csv").read_text().splitlines()
    assert lines[0] == "sequence,marginal_loglik" and [l.split(",")[0] for l in lines[1:]] == ["s2", "s1"]
    assert_close(np.array([float(l.split(",")[1]) for l in lines[1:]]), expected_ll, "per-sequence loglik")

    # smooth to CSV: rows grouped by sequence in order of first appearance.
    post = model.smoother(params, ys, us)
    em_means, em_stds = model.posterior_predictive(params, ys, us)
    code, _, _ = run(capsys, "smooth", model_path, data, *CSV_OPTS, "--out", tmp_path / "s.csv", "-q")
    assert code == 0
    table = lio.read_data(tmp_path / "s.csv", sequence_column="sequence", emission_columns="smoothed_means_*,t")
    assert table.sequence_ids == ["s2", "s1"]
    for k in range(2):
        assert_close(table.emissions[k][:, :N], post[k].smoothed_means, f"smoothed_means {k}")
        np.testing.assert_array_equal(table.emissions[k][:, N], np.arange(len(ys[k])))
    # smooth to NPZ: NaN-padded (num_sequences, max_num_timesteps, ...).
    code, _, _ = run(capsys, "smooth", model_path, data, *CSV_OPTS, "--out", tmp_path / "s.npz", "-q")
    assert code == 0
    with np.load(tmp_path / "s.npz") as z:
        assert list(z["sequence_ids"]) == ["s2", "s1"] and list(z["sequence_lengths"]) == [14, 10]
        assert z["smoothed_covariances"].shape == (2, 14, N, N)
        assert_close(z["smoothed_covariances"][1, :10], post[1].smoothed_covariances, "smoothed_covariances")
        assert np.all(np.isnan(z["smoothed_means"][1, 10:]))
        assert_close(z["emission_stds"][0], em_stds[0], "emission_stds")
        assert_close(z["emission_means"][1, :10], em_means[1], "emission_means")
        assert_close(z["marginal_loglik"], expected_ll, "marginal_loglik")

    # forecast
    fm, fc, fem, fec = model.forecast(params, ys, 4, us)
    code, _, _ = run(capsys, "forecast", model_path, data, *CSV_OPTS, "--steps", 4, "--out", tmp_path / "f.npz", "-q")
    assert code == 0
    with np.load(tmp_path / "f.npz") as z:
        assert z["means"].shape == (2, 4, N) and z["emission_covariances"].shape == (2, 4, P, P)
        np.testing.assert_array_equal(z["t"], [[14, 15, 16, 17], [10, 11, 12, 13]])
        for k in range(2):
            assert_close(z["means"][k], fm[k], "forecast means")
            assert_close(z["emission_covariances"][k], fec[k], "forecast emission_covariances")
            assert_close(z["emission_stds"][k], np.sqrt(np.diagonal(fec[k], axis1=1, axis2=2)), "stds")
    code, _, _ = run(capsys, "forecast", model_path, data, *CSV_OPTS, "--steps", 4, "--out", tmp_path / "f.csv", "-q")
    assert code == 0
    header = (tmp_path / "f.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["sequence", "t", "means_0", "means_1"] and "emission_covariances_2_2" in header


def test_npy_fit_smooth_forecast(tmp_path, capsys, truth):
    model, params, seqs = truth
    model0 = LinearGaussianSSM(N, P)
    params0, _ = model0.initialize(1, dynamics_weights=params.dynamics.weights)
    y = np.full((2, 12, P), np.nan)
    lengths = [12, 8]
    for b, n in enumerate(lengths):
        y[b, :n] = model0.sample(params0, 20 + b, n)[1]
    y[0, 2, 0] = np.nan
    np.save(tmp_path / "y.npy", y)
    model_path = tmp_path / "m.json"
    code, out, err = run(
        capsys, "fit", tmp_path / "y.npy", "--state-dim", N, "--method", "lbfgs", "--iters", 5, "--out", model_path
    )
    assert code == 0 and out == ""
    assert "L-BFGS [" in err and "wrote" in err  # progress bar and summary without --quiet
    fitted_model, fitted, _ = lio.load_model(model_path)
    assert lio.read_metadata(model_path)["fit"]["history_kind"] == "marginal_loglik"
    ys = [y[0], y[1, :8]]
    post = fitted_model.smoother(fitted, ys)
    code, _, _ = run(capsys, "smooth", model_path, tmp_path / "y.npy", "--out", tmp_path / "s.npz", "-q")
    assert code == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["smoothed_means"].shape == (2, 12, N)
        assert_close(z["smoothed_means"][1, :8], post[1].smoothed_means, "smoothed_means")
        assert np.all(np.isnan(z["smoothed_means"][1, 8:]))
    # A single 2-D sequence gives 2-D results.
    np.save(tmp_path / "one.npy", y[0])
    code, _, _ = run(capsys, "forecast", model_path, tmp_path / "one.npy", "--steps", 3, "--out", tmp_path / "f.npz")
    assert code == 0
    fm = fitted_model.forecast(fitted, y[0], 3)[0]
    with np.load(tmp_path / "f.npz") as z:
        assert_close(z["means"], fm, "forecast means")
        np.testing.assert_array_equal(z["t"], [12, 13, 14])


def test_sgd_freeze_and_emission_cov(tmp_path, capsys, truth, csv_data):
    data, ys, us = csv_data
    init = tmp_path / "init.json"
    model, params, _ = truth
    lio.save_model(init, model, params)
    out = tmp_path / "m.json"
    code, _, err = run(
        capsys,
        "fit",
        data,
        *CSV_OPTS,
        "--init",
        init,
        "--method",
        "sgd",
        "--learning-rate",
        0.05,
        "--iters",
        3,
        "--freeze",
        "dynamics.weights,emissions.bias",
        "--freeze",
        "initial",
        "--emission-cov",
        "diagonal",
        "-q",
        "--out",
        out,
    )
    assert code == 0, err
    _, fitted, props = lio.load_model(out)
    for group, name in (("dynamics", "weights"), ("emissions", "bias"), ("initial", "mean"), ("initial", "cov")):
        assert np.array_equal(getattr(getattr(fitted, group), name), getattr(getattr(params, group), name)), name
        assert getattr(getattr(props, group), name).trainable is False
    assert not np.array_equal(fitted.dynamics.cov, params.dynamics.cov)
    assert props.emissions.cov.structure == "diagonal"
    R = fitted.emissions.cov
    assert np.all(R[~np.eye(P, dtype=bool)] == 0) and np.all(np.diag(R) > 0)
    assert lio.read_metadata(out)["fit"]["history_kind"] == "loss"


def test_simulate(tmp_path, capsys, truth):
    model, params, _ = truth
    path = tmp_path / "m.json"
    lio.save_model(path, model, params)
    assert run(capsys, "simulate", path, "--steps", 7, "--out", tmp_path / "a.npz", "-q")[0] == 0
    assert run(capsys, "simulate", path, "--steps", 7, "--out", tmp_path / "b.npz", "-q")[0] == 0
    assert (
        run(
            capsys, "simulate", path, "--steps", 7, "--seed", 3, "--num-sequences", 2, "--out", tmp_path / "c.npz", "-q"
        )[0]
        == 0
    )
    assert run(capsys, "simulate", path, "--steps", 7, "--num-sequences", 2, "--out", tmp_path / "c.csv", "-q")[0] == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b, np.load(tmp_path / "c.npz") as c:
        assert a["states"].shape == (7, N) and a["emissions"].shape == (7, P)
        assert np.array_equal(a["emissions"], b["emissions"])  # same seed
        assert c["states"].shape == (2, 7, N) and c["emissions"].shape == (2, 7, P)
        assert np.array_equal(c["inputs"], np.zeros((2, 7, M)))
        assert not np.array_equal(c["emissions"][0], c["emissions"][1])
    header = (tmp_path / "c.csv").read_text().splitlines()[0]
    assert header == "sequence,t,states_0,states_1,emissions_0,emissions_1,emissions_2,inputs_0"
    # The .npz is valid data for the other commands.
    code, out, _ = run(capsys, "loglik", path, tmp_path / "c.npz")
    assert code == 0 and np.isfinite(float(out))


# --------------------------------------------------------------------------
# Errors: exit code, one line on stderr naming the problem, no output file.


def _bad_model(tmp_path):
    model = LinearGaussianSSM(N, P)
    params, _ = model.initialize(0)
    path = tmp_path / "ok.json"
    lio.save_model(path, model, params)
    doc = json.loads(path.read_text())
    doc["params"]["dynamics"]["weights"] = [[1.0, 0.0]]
    (tmp_path / "shape.json").write_text(json.dumps(doc))
    (tmp_path / "syntax.json").write_text('{"format": "lgssm-model", "version": 1')
    np.save(tmp_path / "y.npy", np.zeros((5, P)))
    np.save(tmp_path / "y1d.npy", np.zeros(5))
    np.save(tmp_path / "y4.npy", np.zeros((5, 4)))
    np.save(tmp_path / "huge.npy", np.full((6, P), 1e200))
    (tmp_path / "text.csv").write_text("a,b,c\n1,2,3\n4,five,6\n")
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "trunc.npz", emissions=np.zeros((5, P)))
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "trunc.npz").read_bytes()[:300])
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)))
    (tmp_path / "utf16.json").write_bytes(path.read_text().encode("utf-16"))
    (tmp_path / "latin1.csv").write_bytes("caf\xe9,b,c\n1,2,3\n".encode("latin-1"))
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (tmp_path / "nan.csv").write_text("a,b,c\n,,\nnan,,\n")
    (tmp_path / "under.csv").write_text("a,b,c\n1_000,2,3\n")
    doc["params"]["dynamics"]["weights"] = [[1.0, 0.0], [0.0, 1.0]]
    doc["dims"]["state_dim"] = 10**9
    (tmp_path / "huge.json").write_text(json.dumps(doc))
    with open(tmp_path / "huge_header.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12, P)})


ERRORS = [
    (
        "missing data",
        ["fit", "{d}/nope.csv", "--state-dim", "2", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: no such file: {d}/nope.csv",
    ),
    (
        "missing model",
        ["smooth", "{d}/nope.json", "{d}/y.npy", "--out", "{d}/o.npz"],
        2,
        "lgssm smooth: error: no such file: {d}/nope.json",
    ),
    (
        "bad shape",
        ["fit", "{d}/y1d.npy", "--state-dim", "2", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: {d}/y1d.npy: expected shape (num_timesteps, emission_dim) or (num_sequences, "
        "num_timesteps, emission_dim), got (5,)",
    ),
    (
        "dims differ",
        ["smooth", "{d}/ok.json", "{d}/y4.npy", "--out", "{d}/o.npz"],
        2,
        "lgssm smooth: error: {d}/y4.npy: 4 emission columns, but {d}/ok.json has emission_dim 3",
    ),
    (
        "non-numeric cell",
        ["fit", "{d}/text.csv", "--state-dim", "1", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: {d}/text.csv: line 3, column 2 ('b'): 'five' is not a number",
    ),
    (
        "bad JSON syntax",
        ["loglik", "{d}/syntax.json", "{d}/y.npy"],
        2,
        "lgssm loglik: error: {d}/syntax.json: not valid JSON: Expecting ',' delimiter at line 1, column 39",
    ),
    (
        "bad JSON content",
        ["forecast", "{d}/shape.json", "{d}/y.npy", "--steps", "2", "--out", "{d}/o.npz"],
        2,
        "lgssm forecast: error: {d}/shape.json: params.dynamics.weights: expected shape (2, 2) or "
        "(num_steps, 2, 2), got (1, 2)",
    ),
    (
        "unknown freeze",
        ["fit", "{d}/y.npy", "--state-dim", "2", "--freeze", "dynamics.wieghts", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: --freeze: unknown parameter 'dynamics.wieghts' (expected one of initial, dynamics,",
    ),
    (
        "out format",
        ["fit", "{d}/y.npy", "--state-dim", "2", "--out", "{d}/o.txt"],
        2,
        "lgssm fit: error: --out: unknown format '.txt' for {d}/o.txt (expected .json)",
    ),
    (
        "out directory",
        ["smooth", "{d}/ok.json", "{d}/y.npy", "--out", "{d}/no/o.npz"],
        2,
        "lgssm smooth: error: --out: directory {d}/no does not exist",
    ),
    (
        "csv option on npy",
        ["fit", "{d}/y.npy", "--state-dim", "2", "--input-columns", "u", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: --input-columns applies to CSV data only",
    ),
    (
        "learning rate without sgd",
        ["fit", "{d}/y.npy", "--state-dim", "2", "--learning-rate", "0.1", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: --learning-rate applies to --method sgd only",
    ),
    (
        "usage",
        ["fit", "{d}/y.npy", "--state-dim", "2"],
        2,
        "lgssm fit: error: the following arguments are required: --out (see 'lgssm fit --help')",
    ),
    (
        "empty npy",
        ["loglik", "{d}/ok.json", "{d}/empty.npy"],
        2,
        "lgssm loglik: error: {d}/empty.npy: not a readable .npy file (EOF",
    ),
    (
        "truncated npz",
        ["loglik", "{d}/ok.json", "{d}/trunc.npz"],
        2,
        "lgssm loglik: error: {d}/trunc.npz: not a readable .npz file",
    ),
    (
        "huge npy header",
        ["fit", "{d}/huge_header.npy", "--state-dim", "2", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: {d}/huge_header.npy: shape (1000000000000, 3) would need",
    ),
    (
        "binary csv",
        ["fit", "{d}/binary.csv", "--state-dim", "2", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: {d}/binary.csv: binary data",
    ),
    (
        "latin-1 csv",
        ["smooth", "{d}/ok.json", "{d}/latin1.csv", "--out", "{d}/o.npz"],
        2,
        "lgssm smooth: error: {d}/latin1.csv: not UTF-8 text (byte 0xe9 on line 1",
    ),
    (
        "utf-16 json",
        ["loglik", "{d}/utf16.json", "{d}/y.npy"],
        2,
        "lgssm loglik: error: {d}/utf16.json: UTF-16 text; expected UTF-8",
    ),
    (
        "deep json",
        ["loglik", "{d}/deep.json", "{d}/y.npy"],
        2,
        "lgssm loglik: error: {d}/deep.json: not a valid model file: JSON nested too deeply",
    ),
    (
        "huge dims in json",
        ["simulate", "{d}/huge.json", "--steps", "3", "--out", "{d}/o.npz"],
        2,
        "lgssm simulate: error: {d}/huge.json: dims/options: state_dim: 1000000000 would need",
    ),
    (
        "digit separator",
        ["fit", "{d}/under.csv", "--state-dim", "1", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: {d}/under.csv: line 2, column 1 ('a'): '1_000' is not a number",
    ),
    (
        "all missing",
        ["fit", "{d}/nan.csv", "--state-dim", "1", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: {d}/nan.csv: expected at least one observed value, got only missing values",
    ),
    (
        "huge state dim",
        ["fit", "{d}/y.npy", "--state-dim", "100000", "--out", "{d}/o.json"],
        2,
        "lgssm fit: error: --state-dim: 100000 would need",
    ),
    (
        "huge steps",
        ["simulate", "{d}/ok.json", "--steps", "1000000000000", "--out", "{d}/o.npz"],
        2,
        "lgssm simulate: error: --steps: 1000000000000 would need",
    ),
    (
        "huge forecast",
        ["forecast", "{d}/ok.json", "{d}/y.npy", "--steps", "1000000000000", "--out", "{d}/o.npz"],
        2,
        "lgssm forecast: error: --steps: 1000000000000 would need",
    ),
    (
        "numerical failure in fit",
        ["fit", "{d}/huge.npy", "--state-dim", "2", "--iters", "3", "-q", "--out", "{d}/o.json"],
        1,
        "lgssm fit: error: EM failed: ",
    ),
    (
        "numerical failure in loglik",
        ["loglik", "{d}/ok.json", "{d}/huge.npy", "--out", "{d}/o.csv"],
        1,
        "lgssm loglik: error: the log likelihood is -inf",
    ),
]


@pytest.mark.parametrize("argv,code,message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors(tmp_path, capsys, monkeypatch, argv, code, message):
    monkeypatch.setattr(lgssm._checks, "memory_limit", lambda: 16 * 2**30)  # the same cap on every machine
    _bad_model(tmp_path)
    before = set(os.listdir(tmp_path))
    got, out, err = run(capsys, *[a.format(d=tmp_path) for a in argv])
    assert got == code
    assert out == ""
    assert err.startswith(message.format(d=tmp_path)), err
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err
    assert set(os.listdir(tmp_path)) == before  # no output, no temporary file


def test_help_and_subprocess_entry_point(tmp_path):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "lgssm.cli", "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0
    for name in ("fit", "smooth", "forecast", "simulate", "loglik"):
        assert name in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "lgssm.cli", "loglik", str(tmp_path / "m.json"), str(tmp_path / "d.csv")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"lgssm loglik: error: no such file: {tmp_path / 'm.json'}\n"


# --------------------------------------------------------------------------
# Continuous time (lgssm.ContinuousTimeSSM).


def test_continuous_time_csv(tmp_path, capsys):
    model = lgssm.ContinuousTimeSSM(2, 2)
    params, _ = model.initialize(1, drift=np.array([[-0.2, 1.0], [-1.0, -0.2]]))
    rng = np.random.default_rng(4)
    rows, ys, ts = ["id,time,y1,y2"], [], []
    for sid, T in (("a", 12), ("b", 9)):
        t = np.cumsum(rng.uniform(0.1, 0.6, size=T))
        _, y = model.sample(params, rng, times=t)
        y[2, 0] = np.nan
        ys.append(y)
        ts.append(t)
        rows += [",".join([sid, repr(float(t[k]))] + [_cell(v) for v in y[k]]) for k in range(T)]
    data = tmp_path / "ct.csv"
    data.write_text("\n".join(rows) + "\n")
    opts = ["--sequence-column", "id", "--times", "time"]
    out = tmp_path / "ct.json"
    code, _, err = run(capsys, "fit", data, "--state-dim", 2, "--iters", 2, *opts, "-q", "--out", out)
    assert code == 0, err
    fitted_model, fitted, _ = lio.load_model(out)
    assert isinstance(fitted_model, lgssm.ContinuousTimeSSM)
    assert json.loads(out.read_text())["kind"] == "continuous"

    code, printed, _ = run(capsys, "loglik", out, data, *opts)
    assert code == 0
    assert_close(float(printed), float(np.sum(fitted_model.marginal_log_prob(fitted, ys, times=ts))), "loglik")
    code, _, _ = run(capsys, "smooth", out, data, *opts, "--out", tmp_path / "s.npz", "-q")
    assert code == 0
    with np.load(tmp_path / "s.npz") as z:
        post = fitted_model.smoother(fitted, ys, times=ts)
        assert_close(z["smoothed_means"][1, :9], post[1].smoothed_means, "smoothed_means")
        assert_close(z["t"][0], ts[0], "times")
    code, _, _ = run(
        capsys, "forecast", out, data, *opts, "--steps", 3, "--forecast-dt", 0.5, "--out", tmp_path / "f.npz", "-q"
    )
    assert code == 0
    with np.load(tmp_path / "f.npz") as z:
        assert_close(z["t"][1], ts[1][-1] + 0.5 * np.arange(1, 4), "forecast times")
        future = [t[-1] + 0.5 * np.arange(1, 4) for t in ts]
        fm = fitted_model.forecast(fitted, ys, forecast_times=future, times=ts)[0]
        assert_close(z["means"][0], fm[0], "forecast means")
    code, _, _ = run(
        capsys, "simulate", out, "--steps", 5, "--dt", 0.25, "--num-sequences", 2, "--out", tmp_path / "sim.npz", "-q"
    )
    assert code == 0
    with np.load(tmp_path / "sim.npz") as z:
        assert z["emissions"].shape == (2, 5, 2)
        np.testing.assert_array_equal(z["times"][1], 0.25 * np.arange(5))
    assert run(capsys, "loglik", out, tmp_path / "sim.npz")[0] == 0  # simulated .npz carries its times

    # Errors specific to continuous time.
    no_times = tmp_path / "no_times.npy"
    np.save(no_times, ys[0])
    for argv, message in [
        (["forecast", out, data, *opts, "--steps", 3, "--out", tmp_path / "x.npz"], "--forecast-dt DT: "),
        (["simulate", out, "--steps", 3, "--out", tmp_path / "x.npz"], "--dt DT: "),
        (["loglik", out, no_times], "is a continuous-time model: give observation times"),
        (
            ["fit", data, "--state-dim", 2, *opts, "--method", "sgd", "--out", tmp_path / "x.json"],
            "--method sgd: not available for ContinuousTimeSSM (use em or lbfgs)",
        ),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.json").exists()


def test_discrete_model_rejects_times(tmp_path, capsys):
    model = LinearGaussianSSM(1, 2)
    lio.save_model(tmp_path / "m.json", model, model.initialize(0)[0])
    (tmp_path / "d.csv").write_text("t,y1,y2\n0.0,1,2\n0.5,3,4\n")
    code, _, err = run(capsys, "loglik", tmp_path / "m.json", tmp_path / "d.csv", "--times", "t")
    assert code == 2 and "is a discrete-time model, which takes no observation times" in err


# --------------------------------------------------------------------------
# A time-index column, remembered columns, warnings.


def _yearly(tmp_path, name, years, rng_seed=0, column="year"):
    rng = np.random.default_rng(rng_seed)
    flow = rng.normal(size=(len(years), 2))
    path = tmp_path / name
    path.write_text(
        f"{column},y1,y2\n" + "".join(f"{int(t)},{float(a)!r},{float(b)!r}\n" for t, (a, b) in zip(years, flow))
    )
    return path, flow


@pytest.mark.parametrize("column", ["year", "Time", "t", "date"])
def test_evenly_spaced_time_column_is_not_an_emission(tmp_path, capsys, column):
    data, flow = _yearly(tmp_path, "d.csv", np.arange(1871, 1901), column=column)
    out = tmp_path / "m.json"
    code, _, err = run(capsys, "fit", data, "--state-dim", 1, "--iters", 3, "-q", "--out", out)
    assert code == 0
    assert err == (
        f"lgssm fit: warning: column {column!r} holds evenly spaced increasing integers (a time index?): "
        f"not fitted as an emission; give --emission-columns to fit it\n"
    )
    model, params, _ = lio.load_model(out)
    assert model.emission_dim == 2 and isinstance(model, LinearGaussianSSM)
    assert lio.read_metadata(out)["data"]["columns"] == {
        "emissions": ["y1", "y2"],
        "inputs": None,
        "times": None,
        "sequence": None,
        "header": None,
    }
    # Later commands use the remembered columns: no options needed, same numbers as the API on y1, y2.
    code, printed, err = run(capsys, "loglik", out, data)
    assert code == 0 and err == ""
    assert_close(float(printed), model.marginal_log_prob(params, flow), "loglik on the emission columns")
    # Explicit columns still win, and fit the time column when asked.
    code, _, err = run(
        capsys,
        "fit",
        data,
        "--state-dim",
        1,
        "--iters",
        1,
        "-q",
        "--emission-columns",
        f"{column},y1,y2",
        "--out",
        tmp_path / "all.json",
    )
    assert code == 0 and err == "" and lio.load_model(tmp_path / "all.json")[0].emission_dim == 3


def test_unevenly_spaced_time_column_becomes_the_times(tmp_path, capsys):
    years = np.array([1900, 1901, 1903, 1904, 1910, 1911, 1912, 1920, 1921, 1925])
    data, flow = _yearly(tmp_path, "d.csv", years)
    out = tmp_path / "m.json"
    code, _, err = run(capsys, "fit", data, "--state-dim", 1, "--iters", 2, "-q", "--out", out)
    assert code == 0
    assert (
        err.startswith(
            "lgssm fit: warning: column 'year' holds unevenly spaced increasing integers: used as "
            "the observation times (--times year)"
        )
        and err.count("\n") == 1
    )
    model, params, _ = lio.load_model(out)
    assert isinstance(model, lgssm.ContinuousTimeSSM) and model.emission_dim == 2
    assert lio.read_metadata(out)["data"]["columns"]["times"] == "year"
    code, printed, _ = run(capsys, "loglik", out, data)
    assert code == 0
    assert_close(float(printed), model.marginal_log_prob(params, flow, times=years.astype(float)), "loglik")


STEPS = np.arange(1.0, 13.0)
NOT_TIME_INDEX = {
    "only": ("year", STEPS, False),
    "fractional": ("year", STEPS + 0.5, True),
    "decreasing": ("year", STEPS[::-1], True),
    "missing": ("year", np.where(STEPS == 4, np.nan, STEPS), True),
    "name": ("flow", STEPS, True),
}


@pytest.mark.parametrize("case", list(NOT_TIME_INDEX))
def test_columns_that_are_not_a_time_index_are_fitted(tmp_path, capsys, case):
    name, first, with_y = NOT_TIME_INDEX[case]
    y = np.random.default_rng(1).normal(size=len(first))
    data = tmp_path / "d.csv"
    data.write_text(
        f"{name}{',y' if with_y else ''}\n"
        + "".join(
            ("" if np.isnan(a) else repr(float(a))) + (f",{float(b)!r}" if with_y else "") + "\n"
            for a, b in zip(first, y)
        )
    )
    code, _, err = run(capsys, "fit", data, "--state-dim", 1, "--iters", 1, "-q", "--out", tmp_path / "m.json")
    assert code == 0 and err == ""
    assert lio.load_model(tmp_path / "m.json")[0].emission_dim == (2 if with_y else 1)


def test_remembered_columns(tmp_path, capsys, csv_data):
    data, ys, us = csv_data
    model_path = tmp_path / "model.json"
    code, _, _ = run(
        capsys,
        "fit",
        data,
        "--state-dim",
        N,
        "--iters",
        2,
        "-q",
        *CSV_OPTS,
        "--emission-columns",
        "y1,y3",
        "--out",
        model_path,
    )
    assert code == 0
    columns = lio.read_metadata(model_path)["data"]["columns"]
    assert columns == {"emissions": ["y1", "y3"], "inputs": ["u"], "times": None, "sequence": "seq", "header": None}
    model, params, _ = lio.load_model(model_path)
    picked = [y[:, [0, 2]] for y in ys]
    code, printed, _ = run(capsys, "loglik", model_path, data)  # no column options
    assert code == 0
    assert_close(float(printed), float(np.sum(model.marginal_log_prob(params, picked, us))), "loglik")
    code, _, _ = run(capsys, "smooth", model_path, data, "--out", tmp_path / "s.npz", "-q")
    assert code == 0
    with np.load(tmp_path / "s.npz") as z:
        assert list(z["sequence_ids"]) == ["s2", "s1"]
        assert_close(z["smoothed_means"][1, :10], model.smoother(params, picked, us)[1].smoothed_means, "smoothed")
    # A data file without the remembered columns: the error says where they came from.
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    code, _, err = run(capsys, "loglik", model_path, other)
    assert code == 2 and err.count("\n") == 1
    assert "no column 'seq'" in err and f"as remembered by {model_path}; give the column options" in err


def test_remembered_columns_are_checked(tmp_path, capsys, csv_data):
    data, _, _ = csv_data
    model_path = tmp_path / "model.json"
    run(capsys, "fit", data, "--state-dim", N, "--iters", 1, "-q", *CSV_OPTS, "--out", model_path)
    doc = json.loads(model_path.read_text())
    doc["metadata"]["data"]["columns"]["emissions"] = "y1"
    model_path.write_text(json.dumps(doc))
    code, _, err = run(capsys, "loglik", model_path, data)
    assert code == 2 and err == (
        f"lgssm loglik: error: {model_path}: metadata.data.columns.emissions must be a list "
        f"of column names or null, got y1\n"
    )


def test_sgd_on_unscaled_data_warns_in_one_line(tmp_path, capsys):
    rng = np.random.default_rng(5)
    data = tmp_path / "flow.csv"
    flow = [900 + 150 * float(v) for v in rng.normal(size=20)]
    data.write_text("flow\n" + "".join(f"{v!r}\n" for v in flow))
    code, _, err = run(
        capsys, "fit", data, "--state-dim", 1, "--method", "sgd", "--iters", 2, "-q", "--out", tmp_path / "m.json"
    )
    assert code == 0 and err.count("\n") == 1
    assert (
        err.startswith(
            f"lgssm fit: warning: emissions: component 0 has mean {np.mean(flow):.3g} and "
            f"standard deviation {np.std(flow):.3g}"
        )
        and "standardize the data" in err
    )


def test_progress_lines_in_a_log(tmp_path, capsys):
    """stderr is not a terminal here: whole lines, at most one per tenth of the run."""
    np.save(tmp_path / "y.npy", np.random.default_rng(0).normal(size=(20, 2)))
    code, _, err = run(
        capsys, "fit", tmp_path / "y.npy", "--state-dim", 1, "--iters", 200, "--out", tmp_path / "m.json"
    )
    assert code == 0 and "\r" not in err
    lines = [l for l in err.splitlines() if l.startswith("EM [")]
    assert 2 <= len(lines) <= 12, err
    assert lines[-1].split()[2] == "200/200" or "converged" in err
