"""Topologies: a networkx graph whose tree, rooted at the cloud, is the aggregation tree.

``load_topology("edge3level")`` reads ``<repo>/topologies/edge3level.json``; a path to a
node-link JSON, GraphML or GML file, or a networkx graph, works too. Attribute names and
rules are in :mod:`testbed.net.rules`. Nodes with role ``router`` forward traffic but do
not aggregate: a node's aggregation parent is its nearest cloud/server ancestor, and the
transfer between them crosses every link of the path between.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import networkx as nx

from ..tree import AggregationTree, PeriodSpec
from .rules import LinkSpec, RootedTree, check_graph, natural_key, tier_names
from .graphfiles import SUFFIXES, read_graph, write_graph
from .traces import REPO_DIR, Trace, load_trace, resolve_trace_path

DEFAULT_TOPOLOGY_DIR = REPO_DIR / "topologies"
__all__ = ["Topology", "available_topologies", "find_topology", "load_topology", "read_graph", "write_graph"]

TRACE_KINDS = {"rtt_trace": "rtt_ms", "bandwidth_trace": "mbps", "compute_trace": "compute_ms"}


class Topology:
    """A validated topology. Workers are numbered 0..n-1 in depth-first order from the
    cloud (children in natural name order: w2 before w10); servers take the
    AggregationTree's pre-order ids."""

    def __init__(
        self,
        graph: nx.Graph,
        *,
        source: str = "<graph>",
        trace_dir: str | os.PathLike | None = None,
        trace_overrides: Mapping[str, str | os.PathLike] | None = None,
        _traces: dict[str, Trace] | None = None,
    ):
        if any(not isinstance(n, str) for n in graph):
            mapping = {n: str(n) for n in graph}
            first: dict[str, object] = {}
            for node, text in mapping.items():
                if text in first:
                    raise ValueError(
                        f"{source}: node names collide when written as text: {first[text]!r} and {node!r} "
                        f"are both {text!r}; give every node a distinct name"
                    )
                first[text] = node
            graph = nx.relabel_nodes(graph, mapping)
        self.source = source
        self.name: str = str(graph.graph.get("name") or Path(source).stem or "topology")
        rooted: RootedTree = check_graph(graph, source)
        self.graph: nx.Graph = nx.freeze(graph.copy())
        self.cloud = rooted.cloud
        self._rooted = rooted
        self.trace_dir = trace_dir
        self.trace_overrides = dict(trace_overrides or {})
        self.traces: dict[str, Trace] = {}
        self._load_traces(dict(_traces or {}))

        nodes = self.graph.nodes
        self.role: dict[str, str] = {n: nodes[n]["role"] for n in rooted.order}
        # aggregation parent: the nearest ancestor that aggregates (routers only forward)
        self.agg_parent: dict[str, str | None] = {self.cloud: None}
        for n in rooted.order[1:]:
            p = rooted.parent[n]
            while self.role[p] == "router":  # type: ignore[index]
                p = rooted.parent[p]  # type: ignore[index]
            self.agg_parent[n] = p
        self.level: dict[str, int] = {}
        for n in rooted.order:
            if self.role[n] == "router":
                continue
            p = self.agg_parent[n]
            self.level[n] = 0 if p is None else self.level[p] + 1
        self.worker_nodes: list[str] = [n for n in rooted.order if self.role[n] == "worker"]
        depths = {self.level[w] for w in self.worker_nodes}
        if len(depths) > 1:
            by_depth = {self.level[w]: w for w in reversed(self.worker_nodes)}
            (d1, w1), (d2, w2) = sorted(by_depth.items())[:2]
            raise ValueError(
                f"{source}: worker {w1!r} sits {d1} aggregation level(s) below the cloud but worker {w2!r} "
                f"sits {d2}; all workers must be at the same depth (give the shallow one a server of its own)"
            )
        self._check_periods()
        nested = self._nested(self.cloud)
        self.server_nodes: list[str] = [n for n in rooted.order if self.role[n] in ("cloud", "server")]
        self.tree = AggregationTree(nested, self.periods)
        by_level: list[list[str | None]] = [[] for _ in range(self.tree.n_levels)]
        for n in self.server_nodes:
            by_level[self.level[n]].append(self.graph.nodes[n].get("tier"))
        # names every per-level column and event: comm_<tier>_s
        self.tiers: tuple[str, ...] = tier_names(by_level, source)
        self.links: list[LinkSpec] = [rooted.links[n] for n in rooted.order[1:]]
        self._link_id = {link.child: i for i, link in enumerate(self.links)}
        self._depth = {self.cloud: 0}
        for n in rooted.order[1:]:
            self._depth[n] = self._depth[rooted.parent[n]] + 1  # type: ignore[index]

    # ---- structure ---------------------------------------------------------------------
    @property
    def n_workers(self) -> int:
        return len(self.worker_nodes)

    @property
    def periods(self) -> list[list[int]]:
        """Per server level, top first, the period of each server left to right."""
        by_level: dict[int, list[int]] = {}
        for n in self._rooted.order:
            if self.role[n] in ("cloud", "server"):
                by_level.setdefault(self.level[n], []).append(int(self.graph.nodes[n]["period"]))
        return [by_level[l] for l in sorted(by_level)]

    def uplink(self, node: str) -> list[int]:
        """Link ids from ``node`` up to its aggregation parent, bottom first."""
        out, n, stop = [], node, self.agg_parent[node]
        while n != stop:
            out.append(self._link_id[n])
            n = self._rooted.parent[n]  # type: ignore[assignment]
        return out

    def uplink_path(self, node: str) -> list[str]:
        """Nodes from ``node`` to its aggregation parent (both included; routers between)."""
        return [node] + [self.links[i].parent for i in self.uplink(node)]

    def path(self, src: str, dst: str) -> list[tuple[int, bool]]:
        """The links from ``src`` to ``dst`` as (link id, going up toward the cloud)."""
        for n in (src, dst):
            if n not in self._depth:
                raise ValueError(f"{self.source}: unknown node {n!r}")
        up, down, a, b = [], [], src, dst
        parent = self._rooted.parent
        while self._depth[a] > self._depth[b]:  # climb to the common ancestor
            up.append(self._link_id[a])
            a = parent[a]  # type: ignore[assignment]
        while self._depth[b] > self._depth[a]:
            down.append(self._link_id[b])
            b = parent[b]  # type: ignore[assignment]
        while a != b:
            up.append(self._link_id[a])
            a = parent[a]  # type: ignore[assignment]
            down.append(self._link_id[b])
            b = parent[b]  # type: ignore[assignment]
        return [(i, True) for i in up] + [(i, False) for i in reversed(down)]

    def worker_compute(self, w: int) -> tuple[float | None, str | None, float]:
        """(compute_ms or None, compute_trace or None, slowdown) of worker ``w``."""
        a = self.graph.nodes[self.worker_nodes[w]]
        cm = a.get("compute_ms")
        return (None if cm is None else float(cm)), a.get("compute_trace"), float(a.get("slowdown", 1.0))

    # ---- variants ----------------------------------------------------------------------
    def with_periods(self, periods: PeriodSpec) -> "Topology":
        """The same network with other periods (one entry per server level, top first)."""
        tree = AggregationTree(self.tree.nested, periods)  # validates the spec
        return self.with_tree(tree, range(len(self.server_nodes)))

    def with_tree(self, tree: AggregationTree, server_ids: Sequence[int]) -> "Topology":
        """The same network aggregating as ``tree`` does: its server k (pre-order) is the
        topology's server ``server_ids[k]``, with k's period. The servers left out only relay
        traffic (they become routers), so local SGD's models cross the edge and regional
        links one per worker. Kept servers keep their tier: columns and events name the
        same servers whatever aggregates."""
        periods = {self.server_nodes[i]: tree.servers[k].period for k, i in enumerate(server_ids)}
        graph = nx.Graph(self.graph)
        for node in self.server_nodes:
            if node in periods:
                graph.nodes[node]["period"] = periods[node]
                graph.nodes[node]["tier"] = self.tiers[self.level[node]]
            else:
                graph.nodes[node].clear()
                graph.nodes[node]["role"] = "router"
        priced = Topology(graph, source=self.source, trace_dir=self.trace_dir,
                          trace_overrides=self.trace_overrides, _traces=self.traces)
        if priced.worker_nodes != self.worker_nodes or repr(priced.tree) != repr(tree):  # the same groups and periods
            raise RuntimeError(f"{self.source}: {tree!r} does not sit on the servers {list(server_ids)}")
        return priced

    def with_trace_overrides(self, overrides: Mapping[str, str | os.PathLike]) -> "Topology":
        """The same network with some trace names pointing at other files."""
        merged = {**self.trace_overrides, **overrides}
        return Topology(nx.Graph(self.graph), source=self.source, trace_dir=self.trace_dir, trace_overrides=merged)

    def summary(self) -> dict:
        """Counts per role, levels, periods, links and traces (for `testbed topo show`)."""
        roles: dict[str, int] = {}
        for r in self.role.values():
            roles[r] = roles.get(r, 0) + 1
        return {
            "name": self.name,
            "source": self.source,
            "nodes": roles,
            "server_levels": self.tree.n_levels,
            "tiers": list(self.tiers),
            "periods": self.periods,
            "workers_per_bottom_server": [len(s.workers) for s in self.tree.level(self.tree.n_levels - 1)],
            "links": len(self.links),
            "traces": {k: f"{t.column}, {len(t)} rows" for k, t in sorted(self.traces.items())},
        }

    def __repr__(self) -> str:
        return f"Topology({self.name!r}, workers={self.n_workers}, periods={self.periods})"

    # ---- internals ---------------------------------------------------------------------
    def _nested(self, node: str) -> list:
        kids: list = []
        stack = list(reversed(self._rooted.children[node]))
        while stack:  # descend through routers; keep depth-first order
            c = stack.pop()
            if self.role[c] == "router":
                stack.extend(reversed(self._rooted.children[c]))
            else:
                kids.append(c)
        index = {w: i for i, w in enumerate(self.worker_nodes)}
        return [index[c] if self.role[c] == "worker" else self._nested(c) for c in kids]

    def _check_periods(self) -> None:
        for n in self._rooted.order:
            p = self.agg_parent[n]
            if p is None or self.role[n] not in ("server",):
                continue
            pp, cp = int(self.graph.nodes[p]["period"]), int(self.graph.nodes[n]["period"])
            if pp % cp:
                raise ValueError(
                    f"{self.source}: {self.role[p]} {p!r} has period {pp}, which is not a multiple of its child "
                    f"server {n!r}'s period {cp}; each period must be a multiple of the periods below it"
                )

    def _user_folder(self) -> Path | None:
        """The folder of a topology file outside topologies/: its own traces may sit next to it."""
        path = Path(self.source)
        if self.trace_dir is not None or not path.is_file() or path.resolve().parent == DEFAULT_TOPOLOGY_DIR.resolve():
            return None
        return path.parent

    def _load_traces(self, cache: dict[str, Trace]) -> None:
        items = [(f"edge ({u!r}, {v!r})", key, a[key])  # named as in the file
                 for u, v, a in self.graph.edges(data=True)
                 for key in ("rtt_trace", "bandwidth_trace") if key in a]
        items += [(f"node {n!r}", "compute_trace", a["compute_trace"])
                  for n, a in self.graph.nodes(data=True) if "compute_trace" in a]
        for where, key, name in items:
            where = f"{self.source}: {where}"
            if name not in self.traces:
                if name in cache and name not in self.trace_overrides:
                    self.traces[name] = cache[name]
                else:
                    path = resolve_trace_path(name, trace_dir=self.trace_dir, overrides=self.trace_overrides,
                                              near=self._user_folder(), where=where)
                    self.traces[name] = load_trace(path, name=name)
            if self.traces[name].column != TRACE_KINDS[key]:
                raise ValueError(
                    f"{where}: {key} {name!r} is a {self.traces[name].column!r} trace; "
                    f"a {key} must have a {TRACE_KINDS[key]!r} column"
                )


def load_topology(
    source: str | os.PathLike | nx.Graph | Topology,
    *,
    topology_dir: str | os.PathLike | None = None,
    trace_dir: str | os.PathLike | None = None,
    trace_overrides: Mapping[str, str | os.PathLike] | None = None,
) -> Topology:
    """A validated :class:`Topology` from a graph, a file path, or the name of a shipped
    topology (looked up as NAME.json/.graphml/.gml in ``topology_dir``, default
    ``<repo>/topologies``). ``trace_overrides`` maps trace names to other files."""
    if isinstance(source, Topology):
        return source.with_trace_overrides(trace_overrides) if trace_overrides else source
    if isinstance(source, nx.Graph):
        label = str(source.graph.get("name") or "<graph>")
        return Topology(source, source=label, trace_dir=trace_dir, trace_overrides=trace_overrides)
    path = find_topology(source, topology_dir)
    return Topology(read_graph(path), source=str(path), trace_dir=trace_dir, trace_overrides=trace_overrides)


def find_topology(source: str | os.PathLike, topology_dir: str | os.PathLike | None = None) -> Path:
    """The file for a path or a shipped topology's name."""
    path = Path(source)
    if path.is_file():
        return path
    base = Path(topology_dir) if topology_dir is not None else DEFAULT_TOPOLOGY_DIR
    text = str(source)
    if "/" not in text and "\\" not in text and path.suffix not in SUFFIXES:
        for suffix in SUFFIXES:
            if (base / f"{text}{suffix}").is_file():
                return base / f"{text}{suffix}"
    raise FileNotFoundError(
        f"topology {text!r}: no such file, and no {text}.json/.graphml/.gml in {base}; "
        f"known topologies: {available_topologies(base)}"
    )


def available_topologies(topology_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the topology files in ``topology_dir`` (default ``<repo>/topologies``)."""
    base = Path(topology_dir) if topology_dir is not None else DEFAULT_TOPOLOGY_DIR
    if not base.is_dir():
        return []
    return sorted({p.stem for p in base.iterdir() if p.suffix in SUFFIXES and p.is_file()}, key=natural_key)
