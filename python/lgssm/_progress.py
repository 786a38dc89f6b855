"""A dependency-free text progress bar on stderr."""

from __future__ import annotations

import math
import sys
import time


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """``bar(i, value)`` after step i of ``total`` returns True (go on); ``close()`` ends the line.

    On a terminal (``stream.isatty()``) one line is redrawn with ``\\r``, at most every
    ``redraw`` seconds. Elsewhere (a log file, a pipe) whole lines are written: the first
    step, then at most one line per tenth of ``total`` or per ``interval`` seconds,
    whichever comes first, and the last step reached."""

    def __init__(
        self,
        total: int,
        label: str,
        enabled: bool = True,
        stream=None,
        *,
        interval: float = 5.0,
        redraw: float = 0.1,
        clock=time.perf_counter,
    ):
        self.total, self.label, self.enabled = max(int(total), 1), label, enabled
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream)
        self.interval, self.redraw, self.clock = interval, redraw, clock
        self.start = clock()
        self.last_draw, self.last_tenth = -math.inf, -1
        self.pending: tuple[int, float, float] | None = None  # the latest frame not yet written (non-terminal streams)
        self.drawn = False

    def _frame(self, done: int, value: float, now: float) -> str:
        width = 30
        filled = min(int(width * done / self.total), width)
        return (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {value:.6g} "
            f"({now - self.start:.1f}s)"
        )

    def __call__(self, i: int, value: float) -> bool:
        if not self.enabled:
            return True
        done, now = i + 1, self.clock()
        self.pending = (done, value, now)
        if self.tty:
            due = now - self.last_draw >= self.redraw
        else:
            tenth = 10 * done // self.total
            due = tenth > self.last_tenth or now - self.last_draw >= self.interval
            self.last_tenth = max(self.last_tenth, tenth) if due else self.last_tenth
        if due or done >= self.total:
            self._write()
            self.last_draw = now
        return True

    def _write(self):
        frame = self._frame(*self.pending)
        self.stream.write("\r" + frame if self.tty else frame + "\n")
        self.stream.flush()
        self.pending, self.drawn = None, True

    def close(self):
        if not self.enabled:
            return
        if self.pending is not None:  # the last step reached was not drawn yet (e.g. a fit stopped early)
            self._write()
        if self.tty and self.drawn:
            self.stream.write("\n")
        self.stream.flush()
