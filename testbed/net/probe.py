"""Probe the flow model without training: finish times of a list of transfers."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import networkx as nx
import numpy as np
import simpy

from .flows import FlowNetwork, directed
from .links import LinkModel, window_cap
from .tcp import SlowStart, TcpModel
from .topology import Topology, load_topology

DEFAULT_WINDOW_BYTES = 4 * 2**20
FlowSpec = tuple[str, str, float, float]  # (src node, dst node, size_bytes, start_s)


def simulate_flows(
    topology: Topology | nx.Graph | str | os.PathLike,
    flows: Sequence[FlowSpec],
    *,
    seed: int = 0,
    window_bytes: int | None = DEFAULT_WINDOW_BYTES,
    sampling: str = "replay",
    trace_overrides: Mapping[str, str | os.PathLike] | None = None,
    tcp: TcpModel | None = None,
) -> list[float]:
    """Finish time (s) of each flow ``(src, dst, size_bytes, start_s)`` routed over the
    tree path between two nodes: it waits the path's one-way latency (half an RTT sample
    per traced link, in flow order then path order), then shares links max-min fairly,
    each flow capped at ``window_bytes`` / path RTT (``None``: no cap) and, under the
    default TCP model, by slow start from the initial window (each flow is a fresh
    connection; ``tcp=TcpModel(kind='fluid')`` for plain max-min). Links with a
    bandwidth trace draw one capacity for the whole run, in link order."""
    tcp = TcpModel() if tcp is None else tcp
    topo = load_topology(topology, trace_overrides=trace_overrides)
    links = LinkModel(topo, seed=seed, sampling=sampling, payload_share=tcp.payload_share)
    paths: list[list[tuple[int, bool]]] = []
    for k, f in enumerate(flows):
        if len(f) != 4:
            raise ValueError(f"flow {k}: expected (src, dst, size_bytes, start_s), got {f!r}")
        src, dst, size, start = f
        for name, x in (("size_bytes", size), ("start_s", start)):
            if not np.isfinite(x) or x < 0:
                raise ValueError(f"flow {k}: {name} must be a finite number >= 0, got {x!r}")
        try:
            paths.append(topo.path(str(src), str(dst)))
        except ValueError as err:
            raise ValueError(f"flow {k}: {err}") from None
    flat = np.array([link for p in paths for link, _ in p], dtype=np.int64)
    rtt_ms = links.draw_rtt_ms(flat)
    bounds = np.cumsum([0] + [len(p) for p in paths])
    all_links = np.arange(len(topo.links))
    up, down = links.draw_capacities(all_links)
    capacity = {directed(i, True): float(up[i]) for i in all_links}
    capacity.update({directed(i, False): float(down[i]) for i in all_links})

    env = simpy.Environment()
    net = FlowNetwork(env, capacity, tcp)
    procs = []
    for k, (f, p) in enumerate(zip(flows, paths, strict=True)):
        rtt_s = float(rtt_ms[bounds[k] : bounds[k + 1]].sum()) / 1e3
        cap = float(window_cap(rtt_s, window_bytes))
        links_k = [directed(link, up) for link, up in p]
        ramp = None if tcp.fluid else tcp.ramp(rtt_s, tcp.initial_window_bytes, min(capacity[x] for x in links_k))
        procs.append(env.process(_flow(env, net, links_k, float(f[2]), float(f[3]), rtt_s / 2, cap, ramp)))
    env.run()
    return [float(p.value) for p in procs]


def _flow(env: simpy.Environment, net: FlowNetwork, links: list[int], size: float, start_s: float,
          latency_s: float, cap: float, slow_start: SlowStart | None):
    if start_s > 0:
        yield env.timeout(start_s)
    finish = yield net.transfer(links, size, latency_s=latency_s, cap_bytes_per_s=cap, slow_start=slow_start)
    return finish
