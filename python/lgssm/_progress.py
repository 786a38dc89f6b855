"""A dependency-free text progress bar on stderr."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """``bar(i, value)`` after step i of ``total`` returns True (go on); ``close()`` ends the line."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = max(int(total), 1), label, enabled
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def __call__(self, i: int, value: float) -> bool:
        if self.enabled:
            done = i + 1
            width = 30
            filled = int(width * done / self.total)
            elapsed = time.perf_counter() - self.start
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{done}/{self.total} {value:.6g} ({elapsed:.1f}s)")
            self.stream.flush()
        return True

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
