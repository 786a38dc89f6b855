"""The progress bar: \r frames only on a terminal; in a log, a line at most every
tenth of the run or every few seconds. Time comes from a fake clock."""

import io

import pytest

from lgssm._progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def run(stream, total, steps=None, clock_step=0.0, **kwargs):
    bar = ProgressBar(total, "EM", stream=stream, clock=Clock(clock_step), **kwargs)
    for i in range(total if steps is None else steps):
        assert bar(i, -0.5 * i) is True
    bar.close()
    return stream.getvalue()


def test_log_gets_a_line_per_tenth():
    text = run(io.StringIO(), 4000)  # `lgssm demo > log` used to get ~4000 frames
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert len(lines) == 11  # step 1, then 10%, 20%, ..., 100%
    assert [l.split()[2] for l in lines] == ["1/4000"] + [f"{400 * k}/4000" for k in range(1, 11)]


def test_log_gets_a_line_every_interval_seconds():
    # 1000 steps of 1 s each, a line at most every 5 s (or each tenth): 200 time-based lines + the first.
    lines = run(io.StringIO(), 1000, clock_step=1.0, interval=5.0).splitlines()
    assert len(lines) == 201
    assert lines[-1].split()[2] == "1000/1000"


def test_log_gets_the_last_step_of_a_fit_that_stopped_early():
    lines = run(io.StringIO(), 1000, steps=37).splitlines()
    assert [l.split()[2] for l in lines] == ["1/1000", "37/1000"]


def test_terminal_redraws_one_line():
    text = run(Terminal(), 50, clock_step=1.0)
    assert text.count("\r") == 50 and text.endswith("\n") and text.count("\n") == 1


def test_terminal_redraws_at_most_every_redraw_seconds():
    text = run(Terminal(), 1000, steps=300, clock_step=0.01, redraw=0.1)
    frames = text.split("\r")[1:]
    assert 29 <= len(frames) <= 32  # every tenth step, plus the last one reached
    assert frames[-1].split()[2] == "300/1000"


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()], ids=["log", "terminal"])
def test_disabled_writes_nothing(stream):
    assert run(stream, 10, enabled=False) == ""
