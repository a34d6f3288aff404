"""The sharded engine: 2 gloo processes train the same models as one process."""

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import testbed
from testbed.engine.distributed import shard_bounds
from testbed.tree import AggregationTree

# three server levels, unequal groups; with 2 ranks the cut falls inside the second edge
# group (workers 3..7), so that group and its region span both ranks
TREE = [[[0, 1, 2], [3, 4, 5, 6, 7]], [[8], [9, 10]]]
PERIODS = [8, 4, 2]
# (model, weighting) per run; the batch-norm model's integer counter is all-reduced with max
RUNS = {"mlp-samples": ("mlp", "samples"), "mlp-uniform": ("mlp", "uniform"), "bn-uniform": ("bn", "uniform")}


def bn_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_data():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(20 + 3 * j, 6, generator=g), torch.randint(0, 3, (20 + 3 * j,), generator=g)) for j in range(11)]


def train(engine="batched", model="mlp", weighting="samples"):
    return testbed.simulate(bn_model if model == "bn" else model, worker_data(), AggregationTree(TREE, PERIODS), iterations=24, lr=0.1, batch_size=4,
                            momentum=0.5, participation=0.5, weighting=weighting, eval_every=4, seed=3, device="cpu",
                            engine=engine, train_eval_samples=16)


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from testbed.engine import world
    from testbed.engine.distributed import sharded

    joined = world.init(timeout_s=120)
    try:
        engine = sharded(joined, AggregationTree(TREE, PERIODS))
        for name, (model, weighting) in RUNS.items():
            result = train(engine, model, weighting)
            torch.save({"state": result.global_state, "metrics": result.metrics.to_dict("list")}, f"{out}.{name}.{rank}")
    finally:
        world.shutdown()


def test_two_gloo_processes_train_what_one_process_trains(tmp_path, monkeypatch):
    assert shard_bounds(AggregationTree(TREE, PERIODS), 2) == [(0, 6), (6, 11)]
    # spawned children take this sys.path and unpickle _rank by its module name
    # (tests.engine.test_distributed): the repository root must be on it, which pytest's
    # importlib mode does not do
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_rank, args=(free_port(), str(tmp_path / "out")), nprocs=2)
    for name, (model, weighting) in RUNS.items():
        check_same_run(tmp_path / f"out.{name}", train("batched", model, weighting))


def check_same_run(out, reference):
    for rank in (0, 1):
        got = torch.load(f"{out}.{rank}", weights_only=False)
        for key, value in reference.global_state.items():
            torch.testing.assert_close(got["state"][key], value, rtol=0, atol=1e-6)
        assert got["metrics"]["iteration"] == reference.metrics["iteration"].tolist()
        np.testing.assert_allclose(got["metrics"]["worker_loss"], reference.metrics["worker_loss"], rtol=1e-6)
    primary = torch.load(f"{out}.0", weights_only=False)["metrics"]
    np.testing.assert_allclose(primary["global_train_loss"], reference.metrics["global_train_loss"], rtol=1e-6)
    assert "global_train_loss" not in torch.load(f"{out}.1", weights_only=False)["metrics"]  # rank 0 evaluates


def test_cuts_follow_subtree_boundaries_where_the_tree_allows():
    edge3level = AggregationTree([[[4 * (2 * r + e) + w for w in range(4)] for e in range(2)] for r in range(3)], [40, 10, 2])
    assert shard_bounds(edge3level, 3) == [(0, 8), (8, 16), (16, 24)]  # one region per rank
    assert shard_bounds(edge3level, 2) == [(0, 12), (12, 24)]  # between edge groups
    assert shard_bounds(edge3level, 5) == [(0, 5), (5, 10), (10, 14), (14, 19), (19, 24)]  # no boundary near: even
    assert shard_bounds(AggregationTree([0, 1, 2], [4]), 3) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="4 processes but the tree has 3 workers"):
        shard_bounds(AggregationTree([0, 1, 2], [4]), 4)
