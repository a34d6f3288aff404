"""The batched engine sharded over the ranks of a torchrun launch.

Each rank holds a contiguous slice of the workers (cut along subtree boundaries where
the tree allows, :func:`shard_bounds`) and steps it with a :class:`BatchedEngine`. Every
rank sees the whole dataset and draws the whole minibatch from the same generator, then
keeps its rows: sampling does not depend on the world size, so K ranks train exactly
the models one process trains.

An aggregation is, per rank, the weighted partial sums of the segments it holds (the
same weights as in one process, from :mod:`testbed.engine.aggregation`); a segment
whose subtree spans several ranks is completed by one ``all_reduce`` over those ranks,
all of its tensors packed into one buffer. The process groups follow the tree and are
built once (as PyTorch's ``HierarchicalModelAverager`` does for its levels): one per
distinct range of ranks a subtree spans. A segment held by one rank costs no traffic.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from testbed.engine.aggregation import AggregationPlan
from testbed.engine.batched import BatchedEngine
from testbed.engine.batches import Batch, WorkerData
from testbed.engine.segments import Segments
from testbed.engine.world import World, collective
from testbed.tree import AggregationTree

Span = tuple[int, ...]  # the ranks holding a subtree's workers


def shard_bounds(tree: AggregationTree, n_ranks: int) -> list[tuple[int, int]]:
    """Contiguous worker ranges [lo, hi) for each rank. Each cut goes to the boundary of the
    coarsest subtree within an eighth of a shard of the even cut, else to the even cut."""
    n = tree.n_workers
    if n_ranks > n:
        raise ValueError(f"torchrun: {n_ranks} processes but the tree has {n} workers; use at most {n} processes")
    # subtree boundaries per level, coarsest first (workers are usually numbered in tree order)
    levels = [sorted({min(s.workers) for s in tree.level(level)} | {n}) for level in range(1, tree.n_levels)]
    tolerance = n / n_ranks / 8
    cuts = [0]
    for i in range(1, n_ranks):
        even = i * n / n_ranks
        cut = round(even)
        for bounds in levels:
            near = min(bounds, key=lambda b: (abs(b - even), b))
            if abs(near - even) <= tolerance:
                cut = near
                break
        cuts.append(min(max(cut, cuts[-1] + 1), n - (n_ranks - i)))  # every rank keeps a worker
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:]))


class ShardedEngine:
    """Workers ``lo:hi`` of the run on this rank (see the module docstring). Same interface
    as :class:`BatchedEngine`; ``step`` returns every worker's loss on every rank."""

    def __init__(self, model, data: WorkerData, loss, momentum: float, weight_decay: float, device: torch.device, *,
                 world: World, tree: AggregationTree, **batched: Any):  # fmt: skip
        if tree.n_workers != data.n_workers:
            raise ValueError(f"worker_data has {data.n_workers} workers but the tree has {tree.n_workers}")
        self.world, self.data = world, data
        self.bounds = shard_bounds(tree, world.size)
        self.lo, self.hi = self.bounds[world.rank]
        rows = slice(self.lo, self.hi)
        mine = WorkerData(data.x, data.y, data.offsets[rows], data.counts[rows])  # views: offsets stay global rows
        self.local = BatchedEngine(model, mine, loss, momentum, weight_decay, device, **batched)
        self.path = self.local.path
        rank_of = np.repeat(np.arange(world.size), [hi - lo for lo, hi in self.bounds])
        self.span: dict[int, Span] = {s.id: tuple(np.unique(rank_of[list(s.workers)]).tolist()) for s in tree.servers}
        # one group per distinct set of ranks; new_group is collective: every rank, same order
        self.groups: dict[Span, Any] = {tuple(range(world.size)): dist.group.WORLD}
        for span in sorted({sp for sp in self.span.values() if 1 < len(sp) < world.size}):
            self.groups[span] = dist.new_group(list(span))
        self.bytes_reduced = 0  # all-reduced at aggregations by groups this rank leads (summed over ranks: each once)

    @property
    def primary(self) -> bool:
        return self.world.primary

    # --- local SGD step -------------------------------------------------------------
    def step(self, batch: Batch, lr: float, active: np.ndarray | None = None) -> torch.Tensor:
        rows = slice(self.lo, self.hi)
        mine = batch[rows]  # with its augmentation draws
        losses = self.local.step(mine, lr, None if active is None else active[rows])
        return self._gather(losses)

    def _gather(self, losses: torch.Tensor) -> torch.Tensor:
        """Every worker's loss [n] from the slices [hi - lo] of all ranks."""
        width = max(hi - lo for lo, hi in self.bounds)
        padded = torch.full((width,), float("nan"), dtype=losses.dtype, device=losses.device)
        padded[: len(losses)] = losses
        parts = [torch.empty_like(padded) for _ in self.bounds]
        with collective():
            dist.all_gather(parts, padded)
        return torch.cat([p[: hi - lo] for p, (lo, hi) in zip(parts, self.bounds)])

    # --- aggregation ----------------------------------------------------------------
    def average(self, plan: AggregationPlan) -> None:
        """Partial weighted sums here, completed across the ranks each subtree spans."""
        rows = slice(self.lo, self.hi)
        segment = plan.segment[rows]
        held = np.unique(segment[segment >= 0])  # plan segments with members on this rank
        if len(held) == 0:  # no member here, so this rank is in none of the plan's all_reduces
            return
        local_id = np.full(plan.n_segments, -1, np.int64)
        local_id[held] = np.arange(len(held))
        mine = Segments(np.where(segment >= 0, local_id[np.maximum(segment, 0)], -1), plan.weight[rows],
                        len(held), self.local.data.x.device)  # fmt: skip
        tensors = [t for group in (self.local.params, self.local.buffers) for t in group.values()]
        sums = [mine.reduce(t) for t in tensors]
        by_span: dict[Span, list[int]] = defaultdict(list)  # local rows of segments other ranks share
        for k, server in enumerate(plan.servers[s] for s in held):
            if len(self.span[server]) > 1:
                by_span[self.span[server]].append(k)
        for span in sorted(by_span):  # the same order on every rank: no crossed collectives
            size = self._all_reduce(span, sums, by_span[span])
            self.bytes_reduced += size if self.world.rank == span[0] else 0
        for t, avg in zip(tensors, sums):
            mine.write_(t, avg)

    def _all_reduce(self, span: Span, sums: list[torch.Tensor], rows: list[int]) -> int:
        """Complete the partial sums ``sums[i][rows]`` over the ranks of ``span``: one
        all_reduce for the floating-point tensors (integer counters take the max).
        Returns the bytes all-reduced."""
        size = 0
        for floating, op in ((True, dist.ReduceOp.SUM), (False, dist.ReduceOp.MAX)):
            picked = [s for s in sums if s.is_floating_point() == floating]
            if not picked:
                continue
            flat = torch.cat([s[rows].reshape(-1) for s in picked])
            with collective():
                dist.all_reduce(flat, op=op, group=self.groups[span])
            size += flat.numel() * flat.element_size()
            offset = 0
            for s in picked:
                part = s[rows]
                s[rows] = flat[offset : offset + part.numel()].view_as(part)
                offset += part.numel()
        return size

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """This rank's slice of the stacked state (its checkpoint slice)."""
        return self.local.state_dict()

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.local.load_state_dict(state)

    def global_state(self, weights: np.ndarray) -> dict[str, torch.Tensor]:
        """The weighted average of all workers' models, on every rank."""
        rows = slice(self.lo, self.hi)
        everyone = Segments(np.zeros(self.hi - self.lo, np.int64), weights[rows], 1, self.local.data.x.device)
        named = [(k, t) for group in (self.local.params, self.local.buffers) for k, t in group.items()]
        sums = [everyone.reduce(t) for _, t in named]
        if self.world.size > 1:
            self._all_reduce(tuple(range(self.world.size)), sums, [0])
        return {k: s[0].clone() for (k, _), s in zip(named, sums)}


def sharded(world: World, tree: AggregationTree):
    """The engine class ``testbed.simulate(engine=...)`` takes, bound to this world and tree."""

    def build(model, data, loss, momentum, weight_decay, device, **batched) -> ShardedEngine:
        return ShardedEngine(model, data, loss, momentum, weight_decay, device, world=world, tree=tree, **batched)

    return build
