"""Progress per algorithm: a redrawn bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from testbed.simulate import Callback

log = logging.getLogger("testbed.experiment")


class Progress(Callback):
    """Shows iteration, simulated time and the latest accuracy at every evaluation."""

    def __init__(self, label: str, iterations: int, stream: TextIO | None = None, width: int = 24):
        self.label, self.iterations, self.width = label, iterations, width
        self.stream = stream or sys.stderr
        self.is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()

    def on_eval(self, row: dict[str, Any]) -> None:
        t = row["iteration"]
        parts = [f"{self.label}", f"iter {t}/{self.iterations}"]
        if "sim_time_s" in row:
            parts.append(f"sim {row['sim_time_s']:.1f}s")
        if "test_acc" in row:
            parts.append(f"acc {row['test_acc']:.3f}")
        parts.append(f"host {time.monotonic() - self.started:.0f}s")
        if self.is_tty:
            done = int(self.width * t / self.iterations)
            bar = "#" * done + "." * (self.width - done)
            end = "\n" if t == self.iterations else ""
            self.stream.write(f"\r[{bar}] " + "  ".join(parts) + "\033[K" + end)
            self.stream.flush()
        else:
            log.info("  ".join(parts))
