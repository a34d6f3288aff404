"""Fake run folders shaped like the runner's: 4 algorithms x 2 seeds x 30 evaluation points.

Curves follow a saturating training curve with seed noise; simulated time per iteration
is compute plus each level's communication divided by its period, so local SGD P=2 is
best per iteration but slowest per second and H-SGD wins on the clock, as in the paper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import networkx as nx
import numpy as np
import pandas as pd
import pytest

EVIL = "<script>alert(1)</script>"
COMPUTE_S = 0.05  # per iteration
LEVEL_COST_S = (0.6, 0.12, 0.03)  # one aggregation at level 0 (cloud), 1, 2
TIERS = ("cloud", "regional", "edge")


@dataclass(frozen=True)
class FakeAlgorithm:
    label: str
    spec: str
    periods: tuple[int | None, ...]  # period per topology level 0..2, None = level not used
    tau: float  # iterations to reach 63% of the final accuracy

    @property
    def is_local_sgd(self) -> bool:
        return sum(p is not None for p in self.periods) == 1


ALGORITHMS = (
    FakeAlgorithm("H-SGD (40,10,2)", "hsgd", (40, 10, 2), tau=170.0),
    FakeAlgorithm("local SGD P=2", "local:2", (2, None, None), tau=140.0),
    FakeAlgorithm("local SGD P=40", "local:40", (40, None, None), tau=320.0),
    FakeAlgorithm("H-SGD (40,2) @ levels 0,2", "hsgd:40,2@0,2", (40, None, 2), tau=200.0),
)


def edge3level(evil: bool = False) -> nx.Graph:
    """cloud -> 2 regional -> 4 edge -> 8 workers, with traces on the WAN and access links."""
    g = nx.Graph()
    g.add_node("cloud", role="cloud", period=40)
    for r in range(2):
        reg = EVIL if evil and r == 1 else f"regional-{r}"
        g.add_node(reg, role="server", period=10, tier="regional")
        g.add_edge("cloud", reg, rtt_trace="wan", bandwidth_mbps=100.0)
        for e in range(2):
            edge = f"edge-{2 * r + e}"
            g.add_node(edge, role="server", period=2, tier="edge")
            g.add_edge(reg, edge, latency_ms=5.0, up_mbps=50.0, down_mbps=200.0)
            for w in range(2):
                worker = f"worker-{4 * r + 2 * e + w}"
                g.add_node(worker, role="worker", compute_ms=50.0)
                g.add_edge(edge, worker, latency_ms=2.0, bandwidth_trace="lte-bw")
    return g


def _per_iteration_costs(algo: FakeAlgorithm) -> tuple[float, ...]:
    return tuple(cost / p if p else 0.0 for cost, p in zip(LEVEL_COST_S, algo.periods))


def metrics_rows(algo: FakeAlgorithm, seed: int, n_points: int, eval_every: int, stop_at: int | None,
                 legacy: bool = False) -> list[dict]:
    """The runner's columns; ``legacy``: as written before tiers (comm_l<k>_s counting the
    algorithm's own levels, train_loss)."""
    rng = np.random.default_rng(1000 * seed + len(algo.label))
    jitter = 1.0 + 0.03 * seed  # seeds see different trace offsets, hence slightly different clocks
    comm = _per_iteration_costs(algo)
    kept = [lvl for lvl, p in enumerate(algo.periods) if p]
    names = [f"comm_l{k}_s" for k in range(len(kept))] if legacy else [f"comm_{TIERS[lvl]}_s" for lvl in kept]
    rows = []
    for k in range(n_points):
        it = k * eval_every
        acc = 0.1 + 0.75 * (1 - np.exp(-it / algo.tau)) + (rng.normal(0, 0.012) if it else 0.0)
        loss = 2.3 * np.exp(-it / algo.tau) + 0.4
        row = {
            "algorithm": algo.label, "spec": algo.spec, "seed": seed, "iteration": it,
            "compute_s": it * COMPUTE_S, "wait_s": it * 0.004 * jitter,
            **{name: it * comm[lvl] * jitter for name, lvl in zip(names, kept)},
            "train_loss" if legacy else "worker_loss": loss * 0.2, "test_loss": loss + 0.05,
            "test_acc": float(np.clip(acc, 0, 1)), "status": "",
        }  # fmt: skip
        if not legacy:
            row["global_train_loss"] = loss
        row["sim_time_s"] = row["compute_s"] + row["wait_s"] + sum(row[name] for name in names)
        rows.append(row)
        if stop_at is not None and it >= stop_at:
            row.update(test_loss=float("nan"), status=f"diverged: loss is NaN at iteration {it}")
            row["train_loss" if legacy else "worker_loss"] = float("nan")
            break
    return rows


def event_rows(algo: FakeAlgorithm, seed: int, iterations: int, legacy: bool = False) -> list[dict]:
    rows = []
    kept = [lvl for lvl, p in enumerate(algo.periods) if p]
    for own, lvl in enumerate(kept):
        period = algo.periods[lvl]
        for it in range(period, iterations, period * 5):  # a sample of the aggregations
            start = it * 0.08
            # The network clock's schema: t, kind (up/down/barrier/aggregate), level, tier, node, peer, ...
            base = {"algorithm": algo.label, "seed": seed, "t": it, "level": own if legacy else lvl, "node": f"level-{lvl}", "peer": ""}
            if legacy:
                rows.append({**base, "kind": "aggregate", "start_s": start, "end_s": start + LEVEL_COST_S[lvl], "size_bytes": 4936 * 8})
                rows.append({**base, "kind": "up", "start_s": start, "end_s": start + LEVEL_COST_S[lvl] / 2, "size_bytes": 4936})
                continue
            base["tier"] = TIERS[lvl]
            rows.append({**base, "kind": "aggregate", "start_s": start, "end_s": start + LEVEL_COST_S[lvl],
                         "size_bytes": np.nan, "round_bytes": 4936 * 8})
            rows.append({**base, "kind": "up", "start_s": start, "end_s": start + LEVEL_COST_S[lvl] / 2,
                         "size_bytes": 4936, "round_bytes": np.nan})
    return rows


def write_run(
    root: Path,
    *,
    algorithms: tuple[FakeAlgorithm, ...] = ALGORITHMS,
    seeds: tuple[int, ...] = (0, 1),
    n_points: int = 30,
    eval_every: int = 20,
    evil: bool = False,
    diverge: bool = False,
    files: tuple[str, ...] = ("events", "topology", "traces"),
    target_acc: float = 0.5,
    legacy: bool = False,
) -> Path:
    """A run folder in ``root`` (created); returns its path."""
    root.mkdir(parents=True, exist_ok=True)
    algos = tuple(FakeAlgorithm(EVIL, a.spec, a.periods, a.tau) if evil and i == 0 else a for i, a in enumerate(algorithms))
    rows, events = [], []
    for i, algo in enumerate(algos):
        for seed in seeds:
            stop = 120 if diverge and i == len(algos) - 1 and seed == seeds[-1] else None
            rows += metrics_rows(algo, seed, n_points, eval_every, stop, legacy)
            events += event_rows(algo, seed, n_points * eval_every, legacy)
    pd.DataFrame(rows).to_csv(root / "metrics.csv", index=False)
    config = {
        "config": {"topology": "edge3level", "target_acc": target_acc, "seeds": list(seeds), "iterations": n_points * eval_every,
                   "eval_every": eval_every, "lr": 0.05, "dataset": "synthetic", "algorithms": ["auto"],
                   "traces": [f"wan={EVIL}.csv"] if evil else []},
        "preset": "quick",
        "algorithms": [
            {"spec": a.spec, "label": a.label, "tree": [[[0, 1], [2, 3]], [[4, 5], [6, 7]]],
             "periods": [[p] * (2**lvl) for lvl, p in enumerate(a.periods) if p], "server_nodes": ["cloud"],
             "is_local_sgd": a.is_local_sgd, "global_period": a.periods[0]}
            for a in algos
        ],
        "topology": "edge3level",
        "versions": {"python": "3.11.2", "torch": "2.3.0", "plotly": "6.0.0"},
        "git_revision": "0123456789abcdef",
        "created": "2024-05-01T12:00:00+00:00",
        "model_params": 1234,
        "model_bytes": 4936,
    }  # fmt: skip
    (root / "config.json").write_text(json.dumps(config, indent=2))
    if "events" in files:
        pd.DataFrame(events).to_csv(root / "events.csv", index=False)
    if "topology" in files:
        (root / "topology.json").write_text(json.dumps(nx.node_link_data(edge3level(evil), edges="links")))
    if "traces" in files:
        (root / "traces").mkdir(exist_ok=True)
        rng = np.random.default_rng(7)
        t = np.arange(500) * 0.5
        pd.DataFrame({"t_s": t, "rtt_ms": 40 + rng.lognormal(2.0, 0.6, t.size)}).to_csv(root / "traces" / "wan.csv", index=False)
        pd.DataFrame({"t_s": t[:300], "mbps": rng.gamma(4.0, 5.0, 300)}).to_csv(root / "traces" / "lte-bw.csv", index=False)
    return root


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_run(name="run", **options)`` writes a fake run folder under tmp_path."""

    def make(name: str = "run", **options) -> Path:
        return write_run(tmp_path / name, **options)

    return make


@pytest.fixture
def run_dir(make_run) -> Path:
    return make_run()


@pytest.fixture
def make_topology() -> Callable[..., nx.Graph]:
    """Factory: ``make_topology(evil=False)`` returns the fake edge3level graph."""
    return edge3level
