"""``testbed experiment`` under torchrun: rank 0 leads, the other ranks follow.

Rank 0 runs the experiment as one process would (run folder, network clock, evaluation,
every file) and tells the others, before each (algorithm, seed) it trains, what to train
and where its checkpoint goes. The others train their slice of the workers alongside and
write nothing but their checkpoint slices (``<name>.rank<r>.pt`` next to rank 0's file).

A checkpoint records the number of processes that wrote it: a run resumes with the same
number. If the ranks' slices are of different iterations (a rank died between two
saves), the pair restarts from its beginning on every rank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from testbed.engine.world import World, collective
from testbed.simulate import Callback, HSGDRun

log = logging.getLogger("testbed.experiment")

_run_dir: Path | None = None  # the run folder rank 0 announced last (for the resume hint)


def announce(message: Any) -> Any:
    """Rank 0's message to every rank (what the others receive from :func:`announce` too)."""
    box = [message]
    with collective():
        dist.broadcast_object_list(box, src=0)
    global _run_dir
    if isinstance(box[0], tuple) and len(box[0]) == 3:
        _run_dir = Path(box[0][2]).parent.parent
    return box[0]


def resume_hint(world: World) -> str | None:
    """The command that continues the run rank 0 was writing, if it had started one."""
    if _run_dir is None:
        return None
    return f"torchrun --nproc-per-node {world.size} -m testbed experiment --resume {_run_dir}"


def follow(world: World) -> Path | None:
    """A rank other than 0: train what rank 0 announces until it says it is done; returns
    rank 0's run folder."""
    from testbed.experiment.runner import train_one
    from testbed.experiment.setup import prepare

    setup = prepare(announce(None))
    federated: dict[int, Any] = {}
    while (order := announce(None)) is not None:
        spec, seed, path = order
        algorithm = next(a for a in setup.algorithms if a.spec == spec)
        if seed not in federated:
            federated = {seed: setup.federated(seed)}
        train_one(setup, algorithm, federated[seed], seed, progress=False, checkpoint=Path(path))
        slice_path(Path(path), world).unlink(missing_ok=True)
    return _run_dir


def slice_path(path: Path, world: World | None) -> Path:
    """This rank's checkpoint file: rank 0's is the run's own."""
    if world is None or world.primary:
        return path
    return path.with_name(f"{path.stem}.rank{world.rank}{path.suffix}")


@dataclass(frozen=True)
class WorldStamp:
    """Saved with every checkpoint (as a stateful callback): how many processes wrote it."""

    size: int

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Checked by :func:`agree_on_resume` before anything is loaded."""


def agree_on_resume(resume: dict[str, Any] | None, path: Path, world: World | None) -> dict[str, Any] | None:
    """The checkpoint to continue from, the same decision on every rank: refuses one written
    by another number of processes; None (start over) when the ranks' slices disagree."""
    size = 1 if world is None else world.size
    mine = None if resume is None else (int(resume["run"]["t"]), int(resume["callbacks"].get("world", {}).get("size", 1)))
    found = [mine] if world is None else [None] * world.size
    if world is not None:
        with collective():
            dist.all_gather_object(found, mine)
    written = {s for _, s in filter(None, found)}
    if written - {size}:
        by = written.pop() if len(written) == 1 else "another number of"
        launch = "python -m testbed" if by == 1 else f"torchrun --nproc-per-node {by} -m testbed"
        raise ValueError(f"{path}: written by {by} process(es), this run has {size}; resume with the same "
                         f"number: {launch} experiment --resume RUN (or delete the checkpoints to restart)")
    if len({f for f in found}) > 1:
        log.warning("%s: the ranks' checkpoint slices are of different iterations (%s); this pair starts over",
                    path, ", ".join("none" if f is None else str(f[0]) for f in found))
        return None
    return resume


def rank_device(world: World, config, device: torch.device, n_workers: int) -> torch.device:
    """This rank's device (each rank of a machine on its own GPU), after the checks that a
    launch needs before any file is written."""
    if config.engine != "batched":
        raise ValueError(f"engine: {config.engine!r} under torchrun; the sharded engine steps the batched one: set engine=batched")
    if world.size > n_workers:
        raise ValueError(f"torchrun: {world.size} processes but the topology has {n_workers} workers; use at most {n_workers}")
    return world.device_for(device)


def engine_for(world: World | None, engine: str, tree):
    """What ``testbed.simulate(engine=...)`` gets: the config's engine in one process, the
    sharded batched engine under torchrun."""
    if world is None:
        return engine
    from testbed.engine.distributed import sharded

    return sharded(world, tree)


class StopSync(Callback):
    """Rank 0 alone decides where a run stops (its clock spends the time budget, its
    evaluation meets the target): after those rules had their say, the other ranks learn
    the decision. One small broadcast per iteration with a budget, per evaluation with a
    target; nothing when neither is on. Comes after the stopping rules, on every rank."""

    def __init__(self, budget: bool, target: bool):
        self.budget, self.target = budget, target
        self.run: HSGDRun | None = None

    def on_start(self, run: HSGDRun) -> None:
        self.run = run

    def on_step(self, step) -> None:
        if self.budget:
            self._sync()

    def on_eval(self, row: dict[str, Any]) -> None:
        if self.target and not row.get("status"):  # a diverged row is the last on every rank anyway
            self._sync()

    def _sync(self) -> None:
        assert self.run is not None
        reason = announce(self.run.stop_reason)
        if reason is not None:
            self.run.stop(reason)
