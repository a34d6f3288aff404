"""Import a Topology Zoo GraphML file (PoPs with Latitude/Longitude, links with
LinkSpeedRaw in bit/s) as a testbed topology by assigning roles.

The Zoo graph is a backbone of points of presence (PoPs), usually with cycles. The
import keeps the shortest-latency tree from the cloud's PoP to every server PoP (the
routes traffic would take), makes those PoPs ``router`` nodes, hangs the ``cloud`` off
its PoP and one edge ``server`` off each chosen PoP, and gives each server
``workers_per_server`` workers on access links. Backbone links get a one-way latency from
the great-circle distance between their ends (fiber at about 2/3 of c: 200 km per ms)
and their bandwidth from LinkSpeedRaw (or a default). Servers share backbone links on
their way to the cloud, so the result exercises max-min sharing.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from .rules import natural_key

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class ZooImport:
    """Which PoPs host what, and the links the Zoo file does not describe."""

    cloud: str  # label of the PoP hosting the cloud (global server)
    servers: tuple[str, ...]  # labels of the PoPs hosting an edge server each
    cloud_period: int = 20  # global period, local iterations
    server_period: int = 5  # edge-server period, local iterations
    workers_per_server: int = 2
    worker_compute_ms: float = 4.0
    access_rtt_trace: str | None = "synth_home_access"  # worker <-> edge server link
    access_latency_ms: float | None = None  # used instead of the trace when given
    access_up_mbps: float = 20.0
    access_down_mbps: float = 150.0
    site_latency_ms: float = 0.05  # cloud/server <-> the PoP router in the same building
    site_mbps: float = 10_000.0
    default_link_mbps: float = 10_000.0  # backbone links without LinkSpeedRaw
    fiber_km_per_ms: float = 200.0  # propagation speed in fiber

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", tuple(self.servers))
        if not self.servers:
            raise ValueError("ZooImport.servers: name at least one PoP to host an edge server")
        if len(set(self.servers)) != len(self.servers):
            raise ValueError(f"ZooImport.servers: duplicate PoP labels in {list(self.servers)}")
        for key in ("cloud_period", "server_period", "workers_per_server"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ZooImport.{key} must be an int >= 1, got {v!r}")
        if self.cloud_period % self.server_period:
            raise ValueError(
                f"ZooImport.cloud_period ({self.cloud_period}) must be a multiple of "
                f"server_period ({self.server_period})"
            )
        if (self.access_rtt_trace is None) == (self.access_latency_ms is None):
            raise ValueError("ZooImport: give exactly one of access_rtt_trace or access_latency_ms")
        for key in ("access_up_mbps", "access_down_mbps", "site_mbps", "default_link_mbps", "fiber_km_per_ms"):
            if not getattr(self, key) > 0:
                raise ValueError(f"ZooImport.{key} must be > 0, got {getattr(self, key)!r}")
        for key in ("worker_compute_ms", "site_latency_ms"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"ZooImport.{key} must be >= 0, got {getattr(self, key)!r}")


def import_zoo(source: str | os.PathLike | nx.Graph, options: ZooImport) -> nx.Graph:
    """A topology graph (roles and link attributes set) from a Zoo GraphML file or graph."""
    if isinstance(source, nx.Graph):
        zoo, label = source, str(source.graph.get("Network") or source.graph.get("label") or "<graph>")
    else:
        path = Path(source)
        try:
            zoo = nx.read_graphml(path)
        except (nx.NetworkXError, SyntaxError, ValueError) as err:
            raise ValueError(f"{path}: cannot parse as GraphML: {err}") from None
        label = str(path)
    zoo = nx.Graph(zoo)  # Zoo files are undirected; drop multi-edges if any
    by_label: dict[str, str] = {}
    for n, a in zoo.nodes(data=True):
        name = str(a.get("label", n))
        if name in by_label:
            raise ValueError(f"{label}: two PoPs are labelled {name!r}; labels must be unique to be addressed")
        by_label[name] = n
    for pop in (options.cloud, *options.servers):
        if pop not in by_label:
            raise ValueError(f"{label}: no PoP labelled {pop!r}; PoPs: {sorted(by_label, key=natural_key)}")

    def latency_ms(u: str, v: str) -> float:
        for n in (u, v):
            a = zoo.nodes[n]
            if "Latitude" not in a or "Longitude" not in a:
                raise ValueError(
                    f"{label}: PoP {a.get('label', n)!r} has no Latitude/Longitude; cannot derive link latency"
                )
        return _great_circle_km(zoo.nodes[u], zoo.nodes[v]) / options.fiber_km_per_ms

    for u, v, a in zoo.edges(data=True):
        a["_latency_ms"] = latency_ms(u, v)
    root = by_label[options.cloud]
    _, paths = nx.single_source_dijkstra(zoo, root, weight="_latency_ms")
    g = nx.Graph(name=Path(label).stem if label != "<graph>" else "zoo",
                 description=f"imported from Topology Zoo file {Path(label).name}",
                 source=Path(label).name)
    g.add_node("cloud", role="cloud", period=options.cloud_period)
    pop_name = {n: str(zoo.nodes[n].get("label", n)) for n in zoo}
    g.add_node(pop_name[root], role="router")
    g.add_edge("cloud", pop_name[root], latency_ms=options.site_latency_ms, bandwidth_mbps=options.site_mbps)
    for pop in options.servers:
        nodes = paths.get(by_label[pop])
        if nodes is None:
            raise ValueError(f"{label}: PoP {pop!r} is not connected to the cloud's PoP {options.cloud!r}")
        for u, v in zip(nodes, nodes[1:]):  # the shortest-latency route, as router hops
            g.add_node(pop_name[v], role="router")
            a = zoo.edges[u, v]
            mbps = float(a["LinkSpeedRaw"]) / 1e6 if a.get("LinkSpeedRaw") else options.default_link_mbps
            g.add_edge(pop_name[u], pop_name[v], latency_ms=round(a["_latency_ms"], 4), bandwidth_mbps=mbps)
        server = f"edge-{pop}"
        g.add_node(server, role="server", period=options.server_period)
        site = {"latency_ms": options.site_latency_ms, "bandwidth_mbps": options.site_mbps}
        g.add_edge(pop_name[by_label[pop]], server, **site)
        for j in range(options.workers_per_server):
            worker = f"{server}-w{j}"
            g.add_node(worker, role="worker", compute_ms=options.worker_compute_ms)
            access = {"up_mbps": options.access_up_mbps, "down_mbps": options.access_down_mbps}
            if options.access_rtt_trace is not None:
                access["rtt_trace"] = options.access_rtt_trace
            else:
                access["latency_ms"] = options.access_latency_ms
            g.add_edge(server, worker, **access)
    return g


def _great_circle_km(a: dict, b: dict) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (float(a["Latitude"]), float(a["Longitude"]),
                                                float(b["Latitude"]), float(b["Longitude"])))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))
