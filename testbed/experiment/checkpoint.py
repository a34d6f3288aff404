"""Checkpoints of one algorithm x seed, taken at aggregation-round boundaries.

A checkpoint holds what training cannot recompute: the engine's stacked worker and
optimizer state, the minibatch and participation generators, the metrics rows so far,
and the state of the stateful callbacks (the schedule's record: participants per round
and drops; the divergence probe's generator). The network clock is not stored: it is
deterministic given the schedule, so a resumed run replays the recorded steps through it
up to the checkpoint, trace sampler positions included.

Files are written atomically (temporary file, fsync, rename): a crash while writing
leaves the previous checkpoint intact. They are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Protocol

import torch

from testbed.experiment.rundir import atomic_write_bytes, safe_name
from testbed.schedule import Step
from testbed.simulate import Callback, HSGDRun

log = logging.getLogger("testbed.experiment")

CHECKPOINT_DIR = "checkpoints"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def checkpoint_path(run_dir: Path, spec: str, seed: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"{safe_name(spec)}-seed{seed}.pt"


class Checkpointer(Callback):
    """Saves the run at the first round boundary at least ``every`` iterations after the
    last save (never after the final iteration: the run folder's files take over then)."""

    def __init__(self, path: Path, every: int, stateful: dict[str, Stateful]):
        if every < 1:
            raise ValueError(f"checkpoint_every: must be >= 1 iteration, got {every}")
        self.path, self.every, self.stateful = Path(path), every, stateful
        self.run: HSGDRun | None = None
        self.last_t = 0
        self.round_over = False

    def on_start(self, run: HSGDRun) -> None:
        self.run = run
        self.last_t = run.t

    def on_step(self, step: Step) -> None:
        self.round_over = step.ends_round

    def after_iteration(self, t: int) -> None:
        assert self.run is not None
        if not self.round_over or t - self.last_t < self.every or t >= self.run.config.iterations:
            return
        if self.run.stop_reason is not None:  # the last iteration (budget, target): the run folder takes over
            return
        state = {"run": self.run.state_dict(), "callbacks": {k: cb.state_dict() for k, cb in self.stateful.items()}}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())
        self.last_t = t
        log.debug("checkpoint at iteration %d: %s", t, self.path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none. Only tensors and plain containers
    are accepted (``weights_only``): a checkpoint cannot run code when loaded."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which, do not guess
        raise ValueError(f"{path}: not a readable checkpoint ({err}); delete it to restart that algorithm") from None
