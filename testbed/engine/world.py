"""This process among the ranks of a torchrun launch, and what to say when one of them stops.

``torchrun --nproc-per-node K -m testbed experiment ...`` (``--nnodes N`` for several
machines) sets WORLD_SIZE, RANK and LOCAL_RANK in every process it starts; a plain
``python -m testbed`` has none of them and runs as one process, exactly as before.
The backend follows the device: NCCL with each rank on ``cuda:LOCAL_RANK``, gloo on the
CPU: the process group carries both (``cpu:gloo,cuda:nccl`` where CUDA is present), and a
collective takes the backend of its tensors' device. The engine's code path is the same.

When a rank dies, the others see a failed collective (or torchrun's SIGTERM). Which rank
it was is found by a roll call on the launch's key-value store (torchrun's agent hosts
it, so it outlives the ranks): the survivors answer, the silent ones are named.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

log = logging.getLogger("testbed")

ROLL_CALL_S = 3.0  # how long survivors wait for each other's answer after a failure


@dataclass(frozen=True)
class World:
    """Who this process is: ``rank`` of ``size``, ``local_rank`` on its machine."""

    rank: int
    size: int
    local_rank: int

    @property
    def primary(self) -> bool:
        """Rank 0 owns the schedule, the network clock, evaluation and every file."""
        return self.rank == 0

    def device_for(self, device: torch.device) -> torch.device:
        """The run's device on this rank: each rank of a machine on its own GPU."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device


class RankLost(RuntimeError):
    """A collective failed or torchrun stopped this rank: some other rank is gone."""


_world: World | None = None


def current() -> World | None:
    """The world joined by :func:`init`; None in a single-process run."""
    return _world


def init(timeout_s: float = 600.0) -> World:
    """Join the process group torchrun describes in the environment (``env://``)."""
    global _world
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # object collectives (the runner's messages) go through it
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    # torchrun stops the survivors with SIGTERM when a rank fails: make it an exception,
    # so the rank reports who is gone instead of vanishing silently
    signal.signal(signal.SIGTERM, _raise_lost)
    _world = World(rank, size, local_rank)
    return _world


def shutdown() -> None:
    global _world
    if dist.is_initialized():
        dist.destroy_process_group()
    _world = None


def _raise_lost(signum, frame) -> None:
    raise RankLost("stopped by torchrun (SIGTERM)")


@contextmanager
def collective():
    """Around collectives: gloo says a peer is gone with a plain RuntimeError; make it a
    RankLost, which the command line reports in one line."""
    try:
        yield
    except RankLost:
        raise
    except RuntimeError as err:
        raise RankLost(str(err)) from err


def silent_ranks(world: World, wait_s: float = ROLL_CALL_S) -> list[int] | None:
    """After a failure: the ranks that do not answer a roll call within ``wait_s`` (None
    when the store itself is gone, i.e. it was hosted by a rank that died: rank 0)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # torchrun's stop must not cut the roll call short
    try:
        store = dist.distributed_c10d._get_default_store()
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store.set(f"testbed/roll_call/{attempt}/{world.rank}", "here")
        keys = [f"testbed/roll_call/{attempt}/{r}" for r in range(world.size)]
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not store.check(keys):
            time.sleep(0.05)
        return [r for r, key in enumerate(keys) if not store.check([key])]
    except Exception:  # noqa: BLE001  the store is unreachable: whoever hosted it is gone
        return None


def lost_message(world: World, err: BaseException, resume_hint: str | None) -> str:
    """One line for a rank that saw another one stop: which rank, and how to continue."""
    silent = silent_ranks(world)
    if silent is None:
        who = "rank 0 (it hosted the store)" if world.rank else "the launch's store"
    elif silent:
        who = ", ".join(f"rank {r}" for r in silent)
    else:
        who = "no rank is silent; a collective failed"
    # gloo's and NCCL's first sentence, without the source file they prefix
    cause = re.sub(r"^\[[^\]]*\]\s*", "", str(err).strip().split("\n")[0]).split(". ")[0] or type(err).__name__
    line = f"rank {world.rank} of {world.size}: lost {who} ({cause})"
    if resume_hint:
        line += f"; continue with: {resume_hint}"
    return line
