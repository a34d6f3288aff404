"""Progress per algorithm: a redrawn bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from testbed.simulate import Callback, HSGDRun

log = logging.getLogger("testbed.experiment")


class Progress(Callback):
    """Shows iteration, simulated time and the latest accuracy at every evaluation. With a
    time budget (``budget_s`` > 0) the bar follows whichever ends the run first: the
    simulated time or the iterations."""

    def __init__(self, label: str, iterations: int, budget_s: float = 0.0, stream: TextIO | None = None, width: int = 24):
        self.label, self.iterations, self.budget_s, self.width = label, iterations, budget_s, width
        self.stream = stream or sys.stderr
        self.is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self.run: HSGDRun | None = None

    def on_start(self, run: HSGDRun) -> None:
        self.run = run

    def on_eval(self, row: dict[str, Any]) -> None:
        t = row["iteration"]
        parts = [f"{self.label}", f"iter {t}/{self.iterations}"]
        done = t / self.iterations
        if "sim_time_s" in row:
            parts.append(f"sim {row['sim_time_s']:.1f}s" + (f"/{self.budget_s:g}s" if self.budget_s else ""))
            if self.budget_s:
                done = max(done, row["sim_time_s"] / self.budget_s)
        stopping = self.run is not None and self.run.stop_reason is not None
        if stopping:
            parts.append(f"stop: {self.run.stop_reason}")
        if "test_acc" in row:
            parts.append(f"acc {row['test_acc']:.3f}")
        parts.append(f"host {time.monotonic() - self.started:.0f}s")
        if self.is_tty:
            filled = int(self.width * min(done, 1.0))
            bar = "#" * filled + "." * (self.width - filled)
            end = "\n" if t == self.iterations or stopping else ""
            self.stream.write(f"\r[{bar}] " + "  ".join(parts) + "\033[K" + end)
            self.stream.flush()
        else:
            log.info("  ".join(parts))
