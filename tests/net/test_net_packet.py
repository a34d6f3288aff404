"""The fluid flow model (``tcp=FLUID``) is the limit of a fixed-window packet model.

This checks the flow-level machinery (max-min sharing, the W / RTT cap, multi-hop
paths) against packets; it is not a validation of the clock against TCP, since the
packet model below was written here with the fluid model's own assumptions (no slow
start). The TCP model is validated against ns-3 in ``bench/netval`` and
``test_net_netval.py``.

The packet model: each direction of a link is a store-and-forward port that sends one
packet at a time at the link's rate, serving the flows with queued packets round robin
(fair queueing, whose fluid limit is max-min fairness), then the packet propagates for
the link's one-way latency. A source keeps at most W bytes un-acknowledged (a fixed TCP
window; ACKs come back after the reverse path's propagation delay). Scenarios use the
shipped topologies with each RTT trace frozen at its median, so both models see the same
latencies. Completion times of transfers of 1 MB or more must agree within 10%.
"""

from __future__ import annotations

from collections import deque

import networkx as nx
import numpy as np
import pytest
import simpy

from testbed.net import FLUID, load_topology, simulate_flows
from testbed.net.topology import Topology

MSS = 9000  # bytes per packet: jumbo frames keep the test fast (1500 B moved every error by < 0.05 points)
WINDOW = 4 * 2**20
MB = 1e6


class _Port:
    """One direction of a link: round-robin over flows, serialisation, then propagation."""

    def __init__(self, env: simpy.Environment, rate_bytes_per_s: float, prop_s: float):
        self.env, self.rate, self.prop = env, rate_bytes_per_s, prop_s
        self.queues: dict[int, deque] = {}
        self.turn: deque[int] = deque()
        self.busy = False

    def put(self, pkt: list) -> None:
        q = self.queues.setdefault(pkt[0].id, deque())
        if not q:
            self.turn.append(pkt[0].id)
        q.append(pkt)
        if not self.busy:
            self._serve()

    def _serve(self) -> None:
        if not self.turn:
            self.busy = False
            return
        fid = self.turn.popleft()
        q = self.queues[fid]
        pkt = q.popleft()
        if q:
            self.turn.append(fid)
        self.busy = True
        self.env.timeout(pkt[1] / self.rate).callbacks.append(lambda _e: self._sent(pkt))

    def _sent(self, pkt: list) -> None:
        self.env.timeout(self.prop).callbacks.append(lambda _e: pkt[0].hop(pkt))
        self._serve()


class _Source:
    """A window-limited sender of ``size`` bytes along ``ports``."""

    def __init__(self, env, fid: int, ports: list[_Port], size: float, start_s: float, ack_s: float):
        self.env, self.id, self.ports, self.size, self.ack_s = env, fid, ports, size, ack_s
        self.sent = self.inflight = self.got = 0.0
        self.finish_s = np.nan
        env.timeout(start_s).callbacks.append(lambda _e: self._send())

    def _send(self) -> None:
        while self.sent < self.size and self.inflight + min(MSS, self.size - self.sent) <= WINDOW:
            n = min(MSS, self.size - self.sent)
            self.sent += n
            self.inflight += n
            self.ports[0].put([self, n, 0])

    def hop(self, pkt: list) -> None:
        pkt[2] += 1
        if pkt[2] < len(self.ports):
            self.ports[pkt[2]].put(pkt)
            return
        self.got += pkt[1]
        if self.got >= self.size:
            self.finish_s = self.env.now
        self.env.timeout(self.ack_s).callbacks.append(lambda _e: self._ack(pkt[1]))

    def _ack(self, n: float) -> None:
        self.inflight -= n
        self._send()


def packet_finish_times(topo: Topology, flows) -> list[float]:
    env = simpy.Environment()
    ports: dict[tuple[int, bool], _Port] = {}
    for i, link in enumerate(topo.links):
        prop = link.latency_ms / 1e3
        ports[(i, True)] = _Port(env, link.up_mbps * 1e6 / 8, prop)
        ports[(i, False)] = _Port(env, link.down_mbps * 1e6 / 8, prop)
    sources = []
    for k, (src, dst, size, start) in enumerate(flows):
        path = topo.path(src, dst)
        ack = sum(topo.links[i].latency_ms for i, _ in path) / 1e3
        sources.append(_Source(env, k, [ports[p] for p in path], size, start, ack))
    env.run()
    return [s.finish_s for s in sources]


def frozen(name: str) -> Topology:
    """A shipped topology with every RTT trace replaced by half its median as latency_ms."""
    topo = load_topology(name)
    g = nx.Graph(topo.graph)
    for _, _, a in g.edges(data=True):
        if "rtt_trace" in a:
            a["latency_ms"] = float(np.median(topo.traces[a.pop("rtt_trace")].values)) / 2
    return load_topology(g)


def _scenarios() -> dict[str, tuple[str, list]]:
    p2 = load_topology("paper2level")
    e3 = load_topology("edge3level")
    zoo = load_topology("zoo_usbackbone")
    star = load_topology("star")
    edge_a = e3.worker_nodes[:4]  # the four homes of one edge server
    edge_b = e3.worker_nodes[4:8]
    return {
        # a global round's two hops at once: homes -> near EC2 (20 Mbit/s), near -> far EC2
        # (window-limited: 4 MiB over a 64 ms RTT), VGG-11-sized models (37 MB)
        "paper2level: homes and local servers upload": (
            "paper2level",
            [(w, p2.agg_parent[w], 10 * MB, 0.0) for w in p2.worker_nodes]
            + [(s, "far-ec2", 37 * MB, 0.0) for s in p2.server_nodes[1:]],
        ),
        # the five edge servers upload to Chicago at once: three share a 622 Mbit/s link
        "zoo_usbackbone: edge servers upload to the cloud": (
            "zoo_usbackbone",
            [(s, "cloud", 20 * MB, 0.0) for s in zoo.server_nodes[1:]],
        ),
        # staggered downloads sharing home downlinks, plus uploads over three hops
        "edge3level: staggered downloads and multi-hop uploads": (
            "edge3level",
            [("use1", w, 10 * MB, 0.0) for w in edge_a]
            + [(e3.agg_parent[edge_a[0]], w, 5 * MB, 0.2) for w in edge_a[:2]]
            + [(w, "use1", 5 * MB, 0.0) for w in edge_b],
        ),
        # the far server broadcasts to ten homes (150 Mbit/s each, 78 ms RTT)
        "star: broadcast to the homes": ("star", [("far-ec2", w, 5 * MB, 0.0) for w in star.worker_nodes]),
    }


@pytest.mark.parametrize("scenario", sorted(_scenarios()))
def test_flow_model_matches_packet_model_within_10_percent(scenario):
    name, flows = _scenarios()[scenario]
    topo = frozen(name)
    fluid = simulate_flows(topo, flows, window_bytes=WINDOW, tcp=FLUID)
    packet = packet_finish_times(topo, flows)
    errors = [(f - p) / p for f, p in zip(fluid, packet)]
    print(f"\n{scenario}: flow vs packet completion time")
    for (src, dst, size, start), f, p, e in zip(flows, fluid, packet, errors):
        print(f"  {src:>18} -> {dst:<18} {size / MB:5.1f} MB @ {start:.1f}s  flow {f:8.4f} s  "
              f"packet {p:8.4f} s  error {100 * e:+6.2f}%")
    print(f"  max |error| {100 * max(abs(e) for e in errors):.2f}%")
    for (_, _, size, _), e in zip(flows, errors):
        if size >= 1 * MB:
            assert abs(e) < 0.10


def test_window_limited_error_is_below_one_rtt_and_shrinks_with_size():
    """Known limit of the fluid window cap min(B, W/RTT): a real window sends W bytes at
    line rate and then waits for ACKs, a staircase the fluid rate smooths out. The flow
    model is late by the fraction of a window left over, times the RTT: never early,
    never by a whole RTT, and relatively less as the transfer grows."""
    topo = frozen("paper2level")
    rtt = 2 * sum(topo.links[i].latency_ms for i, _ in topo.path("near-ec2-0", "far-ec2")) / 1e3
    print(f"\nwindow-limited near EC2 -> far EC2 (RTT {1e3 * rtt:.1f} ms, W = 4 MiB)")
    rel = []
    for size_mb in (1, 2, 4, 8, 16, 37, 74, 148):
        flows = [("near-ec2-0", "far-ec2", size_mb * MB, 0.0)]
        (f,), (p,) = simulate_flows(topo, flows, window_bytes=WINDOW, tcp=FLUID), packet_finish_times(topo, flows)
        rel.append((f - p) / p)
        print(f"  {size_mb:4d} MB  flow {f:7.4f} s  packet {p:7.4f} s  error {100 * rel[-1]:+6.1f}%  "
              f"({(f - p) / rtt:.2f} RTT)")
        assert -1e-3 * p <= f - p < rtt
    assert abs(rel[-1]) < 0.05
