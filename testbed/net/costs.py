"""What one aggregation round costs at each level of a topology, priced by the clock.

The wall-clock of H-SGD with periods (G, I) is, per local iteration,

    c + c_g / G + c_l (1/I - 1/G)

(c: compute, c_g: a global round, c_l: a local round), so the ratio c_l / c_g decides
whether local aggregation can pay off: H-SGD needs at least as many iterations as local
SGD with period I, hence it can beat it on time only when c_l < c_g, and by a wide
margin only when c_l << c_g. :func:`round_costs` prices rounds of each level with the
project's own :class:`~testbed.net.NetworkClock` (whatever flow model it uses), so the
numbers are exactly what a run on that network pays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import networkx as nx
import numpy as np

from ..tree import AggregationTree
from .clock import price_schedule
from .probe import DEFAULT_WINDOW_BYTES
from .tcp import TcpModel
from .topology import Topology, load_topology

ROUNDS = 8  # rounds priced per level; their mean is the cost (the traces vary round to round)
NO_PAYOFF_RATIO = 0.8
"""A local round costing this share of a global round or more saves at most a fifth of
the communication of local SGD with the same local period: local aggregation cannot pay
off (H-SGD also needs at least as many iterations as that local SGD)."""
CHEAP_RATIO = 0.2
"""Below this share a local round is cheap: H-SGD pays nearly only for its global rounds."""


@dataclass(frozen=True)
class LevelCost:
    """One round whose top server is at ``level`` (0 = the cloud: a global round)."""

    level: int
    servers: tuple[str, ...]  # the topology's servers at this level
    cost_s: float  # mean duration of one round, all subtrees of the level in parallel
    ratio: float  # cost_s / the global round's cost_s
    bottleneck: str  # the slowest link (up direction) a worker's model crosses in such a round
    bottleneck_mbps: float | None  # its capacity; None when it is a bandwidth trace

    def to_dict(self) -> dict:
        return {"level": self.level, "servers": list(self.servers), "cost_s": self.cost_s, "ratio": self.ratio,
                "bottleneck": self.bottleneck, "bottleneck_mbps": self.bottleneck_mbps}


@dataclass(frozen=True)
class CostStructure:
    """Round costs per aggregation level, and the global round of flat local SGD."""

    model_bytes: float
    window_bytes: int | None
    levels: tuple[LevelCost, ...]  # top (global) first
    local_sgd_global_s: float  # local SGD: every worker straight to the cloud, servers only relay

    def to_dict(self) -> dict:
        return {"model_bytes": self.model_bytes, "window_bytes": self.window_bytes,
                "levels": [lc.to_dict() for lc in self.levels], "local_sgd_global_s": self.local_sgd_global_s}


def round_costs(
    topology: Topology | nx.Graph | str | os.PathLike,
    *,
    model_bytes: float,
    window_bytes: int | None = DEFAULT_WINDOW_BYTES,
    seed: int = 0,
    rounds: int = ROUNDS,
    trace_overrides: Mapping[str, str | os.PathLike] | None = None,
    tcp: TcpModel | None = None,
) -> CostStructure:
    """Price ``rounds`` rounds at each aggregation level (compute 0, every worker taking
    part) and one flat local-SGD global round set, on the clock with the TCP model
    ``tcp`` (default: the clock's). The rounds follow each other, so under slow start the
    first starts from the initial window and the rest from the windows the previous one
    left (as rounds that follow within an RTO do in a run)."""
    topo = load_topology(topology, trace_overrides=trace_overrides)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    n_levels = len(topo.periods)
    opts = dict(model_bytes=model_bytes, seed=seed, window_bytes=window_bytes, compute_ms=0.0, record="none", tcp=tcp)
    priced = []
    for level in range(n_levels):
        # levels above `level` never aggregate within `rounds` iterations; it and those below every iteration
        periods = [rounds + 1] * level + [1] * (n_levels - level)
        clock = price_schedule(topo.with_periods(periods), rounds, **opts)
        priced.append(clock.now_s / rounds)
    flat = price_schedule(_flat(topo, period=1), rounds, **opts).now_s / rounds
    top = priced[0]
    levels = []
    for level, cost in enumerate(priced):
        servers = tuple(n for n in topo.server_nodes if topo.level[n] == level)
        name, mbps = _bottleneck(topo, level)
        levels.append(LevelCost(level, servers, float(cost), float(cost / top) if top > 0 else float("nan"), name, mbps))
    return CostStructure(float(model_bytes), window_bytes, tuple(levels), float(flat))


def _flat(topo: Topology, period: int) -> Topology:
    """Local SGD on the same network: the cloud aggregates, the servers only relay."""
    return topo.with_tree(AggregationTree(list(range(topo.n_workers)), [period]), [0])


def _bottleneck(topo: Topology, level: int) -> tuple[str, float | None]:
    """The link of least upward capacity between worker 0 and its level-``level`` server."""
    node, links = topo.worker_nodes[0], []
    while topo.level[node] > level:
        links += topo.uplink(node)
        node = topo.agg_parent[node]  # type: ignore[assignment]
    best: tuple[float, int] | None = None
    for i in links:
        link = topo.links[i]
        cap = np.inf if link.up_mbps is None else float(link.up_mbps)
        if best is None or cap < best[0]:
            best = (cap, i)
    if best is None:
        return "", None
    link = topo.links[best[1]]
    if link.up_mbps is None:
        return f"{link.child} -> {link.parent} (bandwidth trace {link.bandwidth_trace})", None
    return f"{link.child} -> {link.parent}", float(link.up_mbps)


def payoff_sentence(costs: CostStructure) -> str:
    """One plain sentence on whether local aggregation can pay off on this network."""
    if len(costs.levels) < 2:
        return "This topology has one aggregation level: every round is a global round (local SGD only)."
    worst = max(costs.levels[1:], key=lambda lc: lc.ratio)
    top = costs.levels[0]
    if worst.ratio >= NO_PAYOFF_RATIO:
        shared = worst.bottleneck_mbps is not None and worst.bottleneck == top.bottleneck
        why = (f"every round crosses the {worst.bottleneck_mbps:g} Mbit/s link {worst.bottleneck}: "
               if shared else "")
        return (f"Local aggregation cannot pay off on this network: {why}a level-{worst.level} round costs "
                f"{worst.ratio:.1%} of a global round ({_s(worst.cost_s)} vs {_s(top.cost_s)}), so H-SGD saves at most "
                f"{1 - worst.ratio:.1%} of the communication of local SGD with its local period, and needs at least "
                f"as many iterations.")
    if worst.ratio >= CHEAP_RATIO:
        return (f"Local aggregation can pay off only in part: a level-{worst.level} round costs {worst.ratio:.1%} of a "
                f"global round ({_s(worst.cost_s)} vs {_s(top.cost_s)}; slowest link {worst.bottleneck}), so H-SGD "
                f"saves at most {1 - worst.ratio:.1%} of the communication of local SGD with its local period.")
    return (f"Local aggregation is cheap here: a level-{worst.level} round costs {worst.ratio:.1%} of a global round "
            f"({_s(worst.cost_s)} vs {_s(top.cost_s)}), so H-SGD can trade global rounds for local ones.")


def _s(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"
