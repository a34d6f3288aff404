"""Who is averaged with whom, and with what weight: pure arithmetic on the tree.

A hierarchical average is a weighted mean over the workers of a subtree, the weight of a
worker being the product of its share at every level on the way up. Computing those
per-worker weights once turns every aggregation, however deep, into one segment mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from testbed.tree import AggregationTree, Server

Weighting = Literal["uniform", "samples"]
WEIGHTINGS = ("uniform", "samples")


def subtree_weights(
    tree: AggregationTree,
    server: Server,
    weighting: Weighting,
    sample_counts: np.ndarray,
    participants: np.ndarray | None = None,
) -> np.ndarray:
    """Per-worker weights [n_workers] of ``server``'s average; zero outside its subtree.

    ``uniform`` averages the participating children equally at every level (Algorithm 1:
    the global model is the mean of the group means); ``samples`` weights every child by
    the samples it holds (FedAvg), which equals a flat sample-weighted mean.
    """
    weights = np.zeros(tree.n_workers)
    active = np.ones(tree.n_workers, bool) if participants is None else participants

    def fill(s: Server, share: float) -> None:
        if not s.children:
            members = [w for w in s.workers if active[w]]
            if weighting == "uniform":
                part = np.full(len(members), 1.0 / len(members))
            else:
                counts = sample_counts[members].astype(float)
                part = counts / counts.sum()
            weights[members] = share * part
            return
        kids = [tree.servers[c] for c in s.children if active[list(tree.servers[c].workers)].any()]
        if weighting == "uniform":
            shares = np.full(len(kids), 1.0 / len(kids))
        else:
            mass = np.array([sample_counts[[w for w in k.workers if active[w]]].sum() for k in kids], float)
            shares = mass / mass.sum()
        for kid, kid_share in zip(kids, shares):
            fill(kid, share * kid_share)

    if not active[list(server.workers)].any():
        raise ValueError(f"server {server.id} has no participating worker to average")
    fill(server, 1.0)
    return weights


@dataclass(frozen=True)
class AggregationPlan:
    """The averages due at one iteration, as segments over workers.

    ``segment[j]`` is the index of the average worker j receives (-1: untouched), and
    ``weight[j]`` its weight in that average (0 for members that do not contribute,
    e.g. non-participants, who still receive the average).
    """

    servers: tuple[int, ...]
    segment: np.ndarray  # int64 [n_workers]
    weight: np.ndarray  # float64 [n_workers]

    @property
    def n_segments(self) -> int:
        return len(self.servers)

    @property
    def covers_all(self) -> bool:
        return bool((self.segment >= 0).all())


def plan_aggregation(
    tree: AggregationTree,
    servers: list[Server],
    weighting: Weighting,
    sample_counts: np.ndarray,
    participants: np.ndarray | None = None,
) -> AggregationPlan:
    """Build the plan for a set of disjoint aggregating subtrees (``tree.top_aggregating(t)``)."""
    segment = np.full(tree.n_workers, -1, np.int64)
    weight = np.zeros(tree.n_workers)
    for k, s in enumerate(servers):
        members = list(s.workers)
        segment[members] = k
        weight[members] = subtree_weights(tree, s, weighting, sample_counts, participants)[members]
    return AggregationPlan(tuple(s.id for s in servers), segment, weight)
