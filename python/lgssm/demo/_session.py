"""One demo run's output directory, progress lines, figures (PNG, also kept for the report) and timings."""

from __future__ import annotations

import base64
import os
import sys
import time
from io import BytesIO

from ..io import atomic_write


class Session:
    """Output directory, progress lines, figures and timings of one demo run."""

    def __init__(self, out: str, quiet: bool):
        self.out, self.quiet = out, quiet
        self.images: dict[str, str] = {}  # file name -> base64 PNG
        self.wall_time: dict[str, float] = {}

    def say(self, message: str):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def save(self, fig, name: str):
        import matplotlib.pyplot as plt

        buffer = BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight", dpi=100)
        plt.close(fig)
        data = buffer.getvalue()
        with atomic_write(os.path.join(self.out, name), "wb") as fh:
            fh.write(data)
        self.images[name] = base64.b64encode(data).decode("ascii")
        self.say(f"  wrote {os.path.join(self.out, name)}")

    def timed(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.wall_time[name] = round(time.perf_counter() - start, 3)
        return result
