"""Build regular hierarchical topologies in code (benchmarks, tests, scaled-up variants).

    g = hierarchy_graph([8, 5, 25], periods=[40, 10, 2], links=[wan, metro, access])

gives a cloud over 8 servers, each over 5 servers, each over 25 workers (1000 workers,
three aggregation levels). ``links[d]`` are the edge attributes between level d and
d + 1 (top first); ``periods[d]`` the period of the level-d servers.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import networkx as nx


def hierarchy_graph(
    fanouts: Sequence[int],
    periods: Sequence[int],
    links: Sequence[Mapping[str, object]],
    *,
    compute_ms: float = 4.0,
    name: str = "hierarchy",
) -> nx.Graph:
    """A tree with ``fanouts[d]`` children per level-d node; workers at the bottom."""
    M = len(fanouts)
    if not M or len(periods) != M or len(links) != M:
        raise ValueError(
            f"hierarchy_graph: fanouts ({len(fanouts)}), periods ({len(periods)}) and links ({len(links)}) "
            f"need one entry per server level (>= 1)"
        )
    if any(f < 1 for f in fanouts):
        raise ValueError(f"hierarchy_graph: fanouts must be >= 1, got {list(fanouts)}")
    g = nx.Graph(name=name)
    g.add_node("cloud", role="cloud", period=int(periods[0]))
    frontier = ["cloud"]
    n_workers = 0
    for d in range(M):
        nxt = []
        for parent in frontier:
            for _ in range(fanouts[d]):
                if d == M - 1:
                    node = f"w{n_workers}"
                    n_workers += 1
                    g.add_node(node, role="worker", compute_ms=compute_ms)
                else:
                    node = f"s{d + 1}_{sum(1 for _ in nxt)}"
                    g.add_node(node, role="server", period=int(periods[d + 1]))
                g.add_edge(parent, node, **dict(links[d]))
                nxt.append(node)
        frontier = nxt
    return g
