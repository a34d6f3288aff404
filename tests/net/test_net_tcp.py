"""The TCP-aware flow model, worked out by hand: slow start's staircase, header
overhead, the socket window, bottleneck sharing during the ramp, and what a connection
remembers between rounds (keep vs restart after an idle RTO).

Most cases use 1000-byte segments without headers and an initial window of one segment,
so every round trip's window is a round number; one case uses the defaults."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from testbed.net import FLUID, NetworkClock, TcpModel, simulate_flows
from testbed.net.tcp import Connections, slow_start_s, window_after

TOL = 1e-9
ONE_SEGMENT = TcpModel(initial_window=1, mss_bytes=1000, header_bytes=0)  # IW = 1000 B


def _log(clock: NetworkClock) -> list[tuple[int, str, str, float, float]]:
    return [(e.t, e.kind, e.node, round(e.start_s, 9), round(e.end_s, 9)) for e in clock.events
            if e.kind in ("up", "down", "barrier")]


def _star(link: dict, compute_ms: float = 0.0) -> nx.Graph:
    g = nx.Graph(name="one")
    g.add_node("cloud", role="cloud", period=1)
    g.add_node("w", role="worker", compute_ms=compute_ms)
    g.add_edge("cloud", "w", **link)
    return g


def test_one_flow_climbs_the_staircase_then_runs_at_the_link_rate(helpers):
    # 8 Mbit/s = 1e6 B/s, RTT 20 ms: the path holds 20 windows of 1000 B, so slow start
    # needs ceil(log2 20) = 5 round trips (1+2+4+8+16 kB = 31 kB), then 69 kB at 1e6 B/s
    g = _star({"latency_ms": 10.0, "bandwidth_mbps": 8.0})
    (t,) = simulate_flows(g, [("w", "cloud", 1e5, 0.0)], window_bytes=None, tcp=ONE_SEGMENT)
    assert t == pytest.approx(0.01 + 5 * 0.02 + 0.069, abs=TOL)
    (t,) = simulate_flows(g, [("w", "cloud", 1e5, 0.0)], window_bytes=None, tcp=FLUID)
    assert t == pytest.approx(0.01 + 0.1, abs=TOL)  # the fluid model has no ramp
    # inside the ramp: 10 kB = 1+2+4 kB in three round trips, then 3 kB at 8 kB per 20 ms
    (t,) = simulate_flows(g, [("w", "cloud", 1e4, 0.0)], window_bytes=None, tcp=ONE_SEGMENT)
    assert t == pytest.approx(0.01 + 3 * 0.02 + 0.02 * 3 / 8, abs=TOL)


def test_the_defaults_count_headers_and_start_at_ten_segments():
    # 12 Mbit/s = 1.5e6 B/s of line rate, of which 1448/1500 is payload: 1.448e6 B/s.
    # IW = 14480 B per 20 ms = 0.724e6 B/s for one round trip, then the link rate.
    g = _star({"latency_ms": 10.0, "bandwidth_mbps": 12.0})
    size = 14480 + 1.448e6 * 0.1
    (t,) = simulate_flows(g, [("w", "cloud", size, 0.0)])
    assert t == pytest.approx(0.01 + 0.02 + 0.1, abs=TOL)


def test_two_flows_share_a_bottleneck_once_their_windows_exceed_half_of_it(helpers):
    # both uploads cross router -> cloud (1e6 B/s, RTT 20 ms); access links are free.
    # Windows 1, 2, 4, 8 kB per round trip fit together (15 kB each by 80 ms); from the
    # 5th round trip each wants 0.8e6 B/s and gets half the link, 0.5e6 B/s.
    g = nx.Graph(name="shared")
    g.add_node("cloud", role="cloud", period=1)
    g.add_node("r", role="router")
    g.add_edge("cloud", "r", latency_ms=10.0, bandwidth_mbps=8.0)
    for k in range(2):
        g.add_node(f"w{k}", role="worker", compute_ms=0.0)
        g.add_edge("r", f"w{k}", latency_ms=0.0, bandwidth_mbps=1e5)
    a, b = simulate_flows(g, [("w0", "cloud", 65e3, 0.0), ("w1", "cloud", 165e3, 0.0)],
                          window_bytes=None, tcp=ONE_SEGMENT)
    assert a == pytest.approx(0.01 + 0.08 + 50e3 / 0.5e6, abs=TOL)  # 0.19 s
    assert b == pytest.approx(a + 100e3 / 1e6, abs=TOL)  # then alone at the full link: 0.29 s

    # the same link in an aggregation round (SimPy backend): both uploads as above, then
    # both downloads over the shared link from fresh connections, the same staircase
    clock = NetworkClock(g, model_bytes=65e3, seed=0, window_bytes=None, tcp=ONE_SEGMENT)
    clock.advance(1)
    assert clock.rounds_by_engine == {"vector": 0, "simpy": 1}
    assert _log(clock) == [(1, "up", "w0", 0.0, 0.19), (1, "up", "w1", 0.0, 0.19), (1, "barrier", "cloud", 0.19, 0.19),
                           (1, "down", "w0", 0.19, 0.38), (1, "down", "w1", 0.19, 0.38)]


def test_window_limited_long_rtt_path():
    # W = 64 KiB over RTT 200 ms caps the rate at 327,680 B/s, far below 100 Mbit/s:
    # windows of 10, 20, 40 kB (three round trips, 70 kB), then W per round trip
    tcp = TcpModel(mss_bytes=1000, header_bytes=0)  # IW = 10 segments = 10 kB
    g = _star({"latency_ms": 100.0, "bandwidth_mbps": 100.0})
    (t,) = simulate_flows(g, [("w", "cloud", 1e6, 0.0)], window_bytes=2**16, tcp=tcp)
    assert t == pytest.approx(0.1 + 0.6 + (1e6 - 70e3) / (2**16 / 0.2), abs=TOL)  # 3.538134765625 s
    clock = NetworkClock(g, model_bytes=1e6, seed=0, window_bytes=2**16, tcp=tcp)
    clock.advance(1)
    assert clock.rounds_by_engine == {"vector": 1, "simpy": 0}
    assert _log(clock) == [(1, "up", "w", 0.0, 3.538134766), (1, "barrier", "cloud", 3.538134766, 3.538134766),
                           (1, "down", "w", 3.538134766, 7.076269531)]


@pytest.mark.parametrize("engine", ["vector", "simpy"])
def test_keep_versus_restart_after_an_idle_rto(engine):
    # 31 kB = exactly the five round trips of slow start (1e6 B/s, RTT 20 ms): 0.01 + 0.1 s
    # per transfer from a fresh window. Afterwards the window is 1 + 31 = 32 kB, more than
    # the path's 20 kB, so a warm connection sends 31 kB in 0.031 s.
    g = _star({"latency_ms": 10.0, "bandwidth_mbps": 8.0}, compute_ms=500.0)
    runs = {}
    for idle in ("keep", "restart"):
        tcp = TcpModel(idle=idle, initial_window=1, mss_bytes=1000, header_bytes=0)
        clock = NetworkClock(g, model_bytes=31e3, seed=0, window_bytes=None, tcp=tcp, engine=engine)
        clock.advance(1)
        clock.advance(2)
        runs[idle] = _log(clock)
    first = [(1, "up", "w", 0.5, 0.61), (1, "barrier", "cloud", 0.61, 0.61), (1, "down", "w", 0.61, 0.72)]
    # keep: the second round runs warm
    assert runs["keep"] == first + [(2, "up", "w", 1.22, 1.261), (2, "barrier", "cloud", 1.261, 1.261),
                                    (2, "down", "w", 1.261, 1.302)]
    # restart: the upload went idle at 0.6 (last byte sent), 0.62 s before the next one, and
    # RTO = 200 + 20 ms: halved twice (Linux halves once per RTO past the first) to 8 kB:
    # 8 + 16 kB in two round trips, 7 kB at the link rate: 0.01 + 0.047 s; the download
    # likewise (idle from 0.71 to 1.277)
    assert runs["restart"] == first + [(2, "up", "w", 1.22, 1.277), (2, "barrier", "cloud", 1.277, 1.277),
                                       (2, "down", "w", 1.277, 1.334)]


def test_a_short_idle_gap_keeps_the_window():
    # 50 ms of compute: the connection is idle 0.17 s < RTO 0.22 s, so restart = keep
    g = _star({"latency_ms": 10.0, "bandwidth_mbps": 8.0}, compute_ms=50.0)
    logs = []
    for idle in ("keep", "restart"):
        tcp = TcpModel(idle=idle, initial_window=1, mss_bytes=1000, header_bytes=0)
        clock = NetworkClock(g, model_bytes=31e3, seed=0, window_bytes=None, tcp=tcp)
        clock.advance(1)
        clock.advance(2)
        logs.append(_log(clock))
    assert logs[0] == logs[1]
    assert logs[0][3] == (2, "up", "w", 0.32, 0.361)


def test_slow_start_closed_form_edges():
    # no RTT: no ramp; zero bytes: no time; no cap at all: pure doubling
    assert slow_start_s(1e6, 1e6, 0.0, 1e3) == pytest.approx(1.0)
    assert slow_start_s(0.0, 1e6, 0.02, 1e3) == 0.0
    assert slow_start_s(7e3, np.inf, 0.1, 1e3) == pytest.approx(0.3)  # 1 + 2 + 4 kB
    # the closed form equals a brute-force walk over round trips
    rng = np.random.default_rng(0)
    for _ in range(200):
        size, peak, rtt, cwnd = rng.uniform(1e3, 1e7), rng.uniform(1e4, 1e9), rng.uniform(1e-4, 0.5), rng.uniform(1e3, 1e5)
        left, t, k = size, 0.0, 0
        while True:
            rate = min(peak, cwnd * 2**k / rtt)
            if left <= rate * rtt:
                t += left / rate
                break
            left -= rate * rtt
            t += rtt
            k += 1
        assert slow_start_s(size, peak, rtt, cwnd) == pytest.approx(t, rel=1e-12)
    assert window_after(1e4, 5e6, 4 * 2**20) == 4 * 2**20
    assert window_after(1e4, 5e3, None) == 1.5e4


def test_connections_halve_once_per_rto_past_the_first():
    conn = Connections(ONE_SEGMENT, [1, 1], None)
    conn.finish(True, 1, np.array([0]), 64e3, 0.0, 0.0)  # window 64 kB, idle since t = 0
    rtt = 0.05  # RTO = 0.25 s
    for idle_s, expect in ((0.25, 64e3), (0.26, 32e3), (0.5, 32e3), (0.51, 16e3), (10.0, 1e3)):
        assert conn.start_windows(True, 1, np.array([0]), idle_s, rtt)[0] == expect


def test_model_settings_are_validated():
    for bad, key in ((dict(kind="reno"), "kind"), (dict(idle="never"), "idle"),
                     (dict(mss_bytes=0), "mss_bytes"), (dict(initial_window=1.5), "initial_window"),
                     (dict(header_bytes=-1), "header_bytes"), (dict(rto_min_ms=float("nan")), "rto_min_ms")):
        with pytest.raises(ValueError, match=key):
            TcpModel(**bad)
    assert FLUID.payload_share == 1.0 and TcpModel().payload_share == pytest.approx(1448 / 1500)
