"""The benchmark harness (bench/run.py) end to end at tiny sizes, so that it
cannot rot unnoticed. Nothing is timed against a threshold; what is checked is
that every contender got the same model and data (their log likelihoods agree
with lgssm's) and that the report has every section. dynamax is left out (its
compilations would take most of a minute); the peers that are installed run."""

import dataclasses
import json
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")
sys.path.insert(0, BENCH)

import run  # noqa: E402

import peers  # noqa: E402
import problems  # noqa: E402
from conftest import assert_close  # noqa: E402

PEERS = ["pykalman", "statsmodels", "filterpy", "simdkalman"]


@pytest.fixture(scope="module")
def smoke():
    bench = run.Bench(run.SMOKE, PEERS)
    return bench, bench.run(run.CASES)


def test_every_case_and_contender_has_rows(smoke):
    bench, report = smoke
    cases = {r.case for r in report.rows}
    assert len(cases) == 1 + len(run.SMOKE.long_states) + 1 + 2, cases
    for name in bench.contenders:
        assert any(r.contender == name for r in report.rows), name
    assert all(r.seconds > 0 and r.ratio > 0 for r in report.rows)


def test_inference_agrees_with_lgssm(smoke):
    """Same data and model for everyone: filter/smoother log likelihoods match lgssm's."""
    bench, report = smoke
    rows = [r for r in report.rows if "filter" in r.task or "smoother" in r.task]
    assert len(rows) > 4
    for r in rows:
        scale = 1.0 + abs(bench.refs[r.case, r.task])
        assert r.agreement <= 1e-8 * scale, (r.case, r.task, r.contender, r.agreement)


def test_markdown_has_every_section(smoke):
    _, report = smoke
    kernels = ({(8, run.SMOKE.high_emission, False): {"Filter": 1e4}}, {"n": 64, "gflops": 10.0})
    info = {"cpu": "cpu", "cores": 2, "ram": "1 GiB", "os": "os", "versions": {"lgssm": "0"}}
    text = run.markdown(report, run.SMOKE, info, kernels, 1.0, True, "today")
    for heading in ("## Machine", "## Targets", run.NOTEBOOK, "## Memory", "## Fraction", "## C++ kernels"):
        assert heading in text, heading
    assert "not run" in text  # no dynamax: its targets say so instead of inventing numbers
    lines = [line for line in text.splitlines() if "marginal_log_prob" in line and line.startswith("|")]
    assert len(lines) == len(run.SMOKE.memory_steps)


def test_saved_results_render_the_same_tables(smoke, tmp_path):
    _, report = smoke
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(run.results(report, True, 1.0)))
    out = tmp_path / "bench.md"
    run.main(["--render", str(saved), "--out", str(out)])
    text = out.read_text()
    for r in report.rows:
        assert f"| {r.task} | {r.contender} | {run.fmt_time(r.seconds)} |" in text


def test_simdkalman_smoother_equals_lgssms():
    """The simdkalman case gets lgssm's model: on a small batch of the
    many-sequences problem its smoothed means, covariances and lag-one
    covariances equal lgssm's smoother's."""
    pytest.importorskip("simdkalman", exc_type=ImportError, reason="simdkalman (extra `peers`) cannot be imported")
    spec = problems.Spec(state_dim=4, emission_dim=8, num_timesteps=30, num_sequences=6, seed=3)
    _, y = problems.build(spec)
    start = problems.fit_start(spec)
    fn, value = peers.simdkalman_task("smoother", start, y)
    out = fn()
    ours = peers.model_of(start).smoother(start, y)
    states = out.smoothed.states
    assert_close(states.mean, np.asarray(ours.smoothed_means), "smoothed means", rtol=1e-8)
    assert_close(states.cov, np.asarray(ours.smoothed_covariances), "smoothed covariances", rtol=1e-8)
    cross = out.pairwise_covariances[:, :-1]  # entry t: Cov[z_{t+1}, z_t | y]; its last one is unused (zeros)
    assert_close(cross, np.asarray(ours.smoothed_cross_covariances), "lag-one covariances", rtol=1e-8)
    assert value(out) == pytest.approx(float(np.sum(ours.marginal_loglik)), rel=1e-10)
    biased = dataclasses.replace(start, emissions=dataclasses.replace(start.emissions, bias=np.ones(8)))
    with pytest.raises(ValueError, match="params.emissions.bias: expected zeros"):
        peers.simdkalman_task("smoother", biased, y)


def test_simdkalman_target_is_measured(smoke):
    """Issue 17's target against simdkalman's batched smoother gets a value from the run's rows."""
    pytest.importorskip("simdkalman", exc_type=ImportError, reason="simdkalman (extra `peers`) cannot be imported")
    _, report = smoke
    measured = {label: value for label, value, _, _ in run.targets(report, run.SMOKE)}
    assert measured["many sequences: lgssm's EM iteration vs simdkalman's batched smoother"] > 0
