"""Round deadlines: when each server's round started, and who arrives too late.

A server's round starts when its previous average reached all its workers (time 0 for
the first); its deadline counts from there. A participant is late when its model, sent
up its own path (the hop durations a tentative pricing of the round gives it, barrier
waits for slower siblings excluded), would reach the round's top server after the
deadline. Every round keeps at least its first arrival, so every average has a member.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from testbed.schedule import Drop

from .forest import Forest
from .topology import Topology


class Deadlines:
    """Per-server deadlines (inf: none) and the start of each such server's current round."""

    def __init__(self, topology: Topology, deadline_s: float | Sequence[float] | None):
        """``deadline_s``: one for every server or one per server id (None: none); a server
        node's own ``deadline_s`` attribute takes precedence."""
        self.tree = tree = topology.tree
        n = len(tree.servers)
        if np.ndim(deadline_s) and len(deadline_s) != n:
            raise ValueError(f"deadline_s has {len(deadline_s)} values but the topology has {n} servers; "
                             f"give one per server (by AggregationTree id) or one for all")
        given = np.inf if deadline_s is None else deadline_s
        self.deadline_s = np.broadcast_to(np.asarray(given, dtype=float), (n,)).copy()
        for s in range(n):
            own = topology.graph.nodes[topology.server_nodes[s]].get("deadline_s")
            if own is not None:
                self.deadline_s[s] = float(own)
        self.round_start_s: dict[int, float] = {}

    @property
    def any(self) -> bool:
        return bool(np.isfinite(self.deadline_s).any())

    def due_s(self, server: int) -> float:
        """When ``server``'s current round must be averaged."""
        return self.round_start_s.get(server, 0.0) + self.deadline_s[server]

    def late(self, forest: Forest, senders: np.ndarray, arrival_s: np.ndarray) -> list[Drop]:
        """The forest's senders (a mask over its workers) whose ``arrival_s`` at their top
        server is after its deadline; each subtree keeps its first arrival."""
        drops = []
        workers = forest.levels[-1].nodes
        ends = [*forest.worker_seg[1:], len(workers)]
        for root, start, end in zip(forest.roots, forest.worker_seg, ends):
            on, arrival, due = senders[start:end], arrival_s[start:end], self.due_s(root)
            late = on & (arrival > due)
            if late.any() and late.sum() == on.sum():  # nobody in time: the first to arrive is averaged
                late[np.nanargmin(np.where(on, arrival, np.nan))] = False
            drops += [Drop(int(w), int(root), float(a - due)) for w, a in zip(workers[start:end][late], arrival[late])]
        return drops

    def restart(self, forest: Forest, delivered_s: np.ndarray) -> None:
        """A new round starts for every server with a deadline in the forest's subtrees,
        when its average reached the last of its workers (``delivered_s`` per worker)."""
        stack = list(forest.roots)
        while stack:
            s = self.tree.servers[stack.pop()]
            stack += s.children
            if np.isfinite(self.deadline_s[s.id]):
                self.round_start_s[s.id] = float(delivered_s[list(s.workers)].max())
