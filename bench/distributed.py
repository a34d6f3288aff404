"""Distributed engine benchmark: one process with K threads vs K processes with one thread
each (gloo on the CPU), stepping and aggregating the same workers on the same tree.

    python bench/distributed.py [--cases femnist_cnn,cifar_cnn] [--procs 2] [--seconds 6] [--rounds 3] [--quick]
    python bench/distributed.py --device cuda --procs 2    # on a machine with 2 GPUs: 1 GPU vs 2 (NCCL)

The variants are timed in interleaved rounds inside one launch: ``1xK`` runs the batched
engine on rank 0 with K threads while the other ranks wait in a barrier; ``Kx1`` runs the
sharded engine on every rank with one thread (``--device cuda``: one GPU against one GPU
per rank). Both train the same workers: samples/s counts every worker's minibatch,
aggregations (the tree's periods) included. Bytes all-reduced per aggregation are set
against the minimum: model numel x 4 bytes for every participating segment whose
subtree spans more than one rank (segments held by one rank need no traffic).
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from common import device_name, median_ratio, save_results, sync, table, timing_parser
from engine import model_for, Case
from testbed.engine import BatchedEngine, MinibatchSampler, WorkerData, plan_aggregation
from testbed.engine.distributed import ShardedEngine
from testbed.engine.world import World
from testbed.simulate import per_sample_cross_entropy
from testbed.tree import AggregationTree

MOMENTUM = 0.9


@dataclass(frozen=True)
class DistCase:
    case: Case
    groups: tuple[int, ...]  # workers per local group, left to right
    periods: tuple[int, int]  # global and local period
    quick_groups: tuple[int, ...] | None = None  # --quick: fewer workers (a smoke run on a shared machine)

    def shrunk(self) -> DistCase:
        if self.quick_groups is None:
            return self
        n = sum(self.quick_groups)
        case = dataclasses.replace(self.case, name=self.case.name.replace(f"n={self.case.n}", f"n={n}"), n=n)
        return dataclasses.replace(self, case=case, groups=self.quick_groups)

    def tree(self) -> AggregationTree:
        starts = np.cumsum((0, *self.groups))
        return AggregationTree([list(range(a, b)) for a, b in zip(starts[:-1], starts[1:])], list(self.periods))


CASES = [
    # 4 equal groups: 2 ranks cut between groups, only the global average crosses ranks
    DistCase(Case("femnist_cnn n=32 b=20", "femnist_cnn", 32, 20, (1, 28, 28), 62), (8, 8, 8, 8), (8, 2), (2, 2, 2, 2)),
    # unequal groups: the middle group spans both ranks, so local averages cross too
    DistCase(Case("cifar_cnn n=10 b=20", "cifar_cnn", 10, 20, (3, 32, 32), 10), (3, 3, 4), (8, 2)),
]


def worker_data(case: Case, device: torch.device) -> WorkerData:
    g = torch.Generator().manual_seed(0)
    per_worker = 4 * case.b
    pairs = [(torch.randn(per_worker, *case.shape, generator=g), torch.randint(0, case.classes, (per_worker,), generator=g))
             for _ in range(case.n)]
    return WorkerData.stack(pairs, device)


def train_steps(engine, sampler: MinibatchSampler, tree: AggregationTree, counts: np.ndarray, start: int, steps: int) -> None:
    for t in range(start + 1, start + steps + 1):
        engine.step(sampler.next(), 0.01)
        servers = tree.top_aggregating(t)
        if servers:
            engine.average(plan_aggregation(tree, servers, "samples", counts))


def min_bytes_per_aggregation(dcase: DistCase, engine: ShardedEngine, steps: int) -> float:
    """numel x 4 bytes per participating segment that spans ranks, per aggregation event."""
    tree = dcase.tree()
    numel = sum(t[0].numel() for group in (engine.local.params, engine.local.buffers) for t in group.values()
                if t.is_floating_point())
    spanning, events = 0, 0
    for t in range(1, steps + 1):
        servers = tree.top_aggregating(t)
        if servers:
            events += 1
            spanning += sum(len(engine.span[s.id]) > 1 for s in servers)
    return numel * 4 * spanning / max(events, 1)


def run_rank(rank: int, procs: int, port: int, args, out: dict) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(procs), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = args.device.startswith("cuda")
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    world = World(rank, procs, rank)
    rows = []
    for dcase in selected(args):
        case, tree = dcase.case, dcase.tree()
        data = worker_data(case, device)
        counts = data.counts.cpu().numpy()
        sampler = MinibatchSampler(data, case.b, seed=0)
        sharded = ShardedEngine(model_for(case), data, per_sample_cross_entropy, MOMENTUM, 0.0, device, world=world, tree=tree)
        single = BatchedEngine(model_for(case), data, per_sample_cross_entropy, MOMENTUM, 0.0, device) if rank == 0 else None
        period = tree.servers[0].period
        # warm-up, then as many global rounds per timed round as fill seconds / rounds (rank 0 decides)
        torch.set_num_threads(1)
        train_steps(sharded, sampler, tree, counts, 0, period)
        if single is not None:
            torch.set_num_threads(procs)
            start = time.perf_counter()
            train_steps(single, sampler, tree, counts, 0, period)
            sync(device)
            per_round = args.seconds / args.rounds / (time.perf_counter() - start)
        box = [max(1, math.ceil(per_round)) * period if rank == 0 else 0]
        dist.broadcast_object_list(box, src=0)
        steps = box[0]
        rates = {"1x": [], "Kx1": []}
        sharded.bytes_reduced = 0
        for _ in range(args.rounds):
            dist.barrier()
            if single is not None:  # 1 process with K threads (K GPUs: one), the others wait
                torch.set_num_threads(1 if cuda else procs)
                start = time.perf_counter()
                train_steps(single, sampler, tree, counts, 0, steps)
                sync(device)
                rates["1x"].append(steps * case.n * case.b / (time.perf_counter() - start))
            dist.barrier()
            torch.set_num_threads(1)
            start = time.perf_counter()
            train_steps(sharded, sampler, tree, counts, 0, steps)
            sync(device)
            dist.barrier()
            rates["Kx1"].append(steps * case.n * case.b / (time.perf_counter() - start))
        reduced = torch.tensor([float(sharded.bytes_reduced)], device=device)
        dist.all_reduce(reduced)
        if rank == 0:
            measured = reduced[0].item() / (args.rounds * sum(bool(tree.top_aggregating(t)) for t in range(1, steps + 1)))
            minimum = min_bytes_per_aggregation(dcase, sharded, steps)
            rows.append({
                "case": case.name, "groups": "+".join(map(str, dcase.groups)), "procs": procs,
                "shards": " ".join(f"{lo}:{hi}" for lo, hi in sharded.bounds),
                f"1x{'1gpu' if cuda else procs} samples/s": max(rates["1x"]),
                f"{procs}x1 samples/s": max(rates["Kx1"]),
                "ratio": median_ratio(rates["Kx1"], rates["1x"]),
                "allreduce_bytes/agg": measured, "min_bytes/agg": minimum,
                "bytes/min": measured / minimum if minimum else (0.0 if measured == 0 else math.inf),
            })
    if rank == 0:
        out["rows"] = rows
    dist.destroy_process_group()


def selected(args) -> list[DistCase]:
    keep = [c for c in args.cases.split(",") if c]
    return [d.shrunk() if args.quick else d for d in CASES if not keep or d.case.model in keep]


def main() -> int:
    parser = timing_parser(__doc__, seconds=6.0, rounds=3, quick="one round of about a second per case")
    parser.add_argument("--procs", type=int, default=2, help="processes (GPUs with --device cuda)")
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cpu"  # the CPU comparison is the default; pass --device cuda on a GPU machine
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(run_rank, args=(args.procs, port, args, out), nprocs=args.procs)
    rows = list(out["rows"])
    print(table(rows))
    if not args.quick:
        save_results("distributed", torch.device(args.device), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
