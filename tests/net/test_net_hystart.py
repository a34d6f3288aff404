"""HyStart's exit from slow start and the growth after it, worked out by hand.

Segments of 1000 bytes without headers, an initial window of one segment, HyStart's
low window at 4 segments and a growth of 1/2 per round trip, so every round trip's
window is a round number: 1, 2, 4 kB, then 6, 9, 13.5 kB... on a path whose ACK
trains run from one round into the next (RTT under the 2 ms ACK delta)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from testbed.experiment.config import ExperimentConfig
from testbed.net import NetworkClock, TcpModel, simulate_flows
from testbed.net.tcp import SlowStart, slow_start_s, window_after

TOL = 1e-9
LAN = dict(initial_window=1, mss_bytes=1000, header_bytes=0, hystart_low_window=4, ca_growth=0.5)


def _star(link: dict) -> nx.Graph:
    g = nx.Graph(name="one")
    g.add_node("cloud", role="cloud", period=1)
    g.add_node("w", role="worker", compute_ms=0.0)
    g.add_edge("cloud", "w", **link)
    return g


def _log(clock: NetworkClock) -> list[tuple[int, str, str, float, float]]:
    return [(e.t, e.kind, e.node, round(e.start_s, 9), round(e.end_s, 9)) for e in clock.events
            if e.kind in ("up", "down")]


def test_on_a_lan_the_window_stops_doubling_at_the_low_window():
    # RTT 1 ms, 1e10 B/s: the link never limits. Windows 1, 2, 4 (7 kB in three round
    # trips; 4 kB is HyStart's low window), then 6 kB (13 kB), then 9 kB per round trip:
    # the last 3 kB take a third of it. Without the exit: 1, 2, 4, 8 kB, then 1 kB of 16.
    g = _star({"latency_ms": 0.5, "bandwidth_mbps": 8e4})
    (t,) = simulate_flows(g, [("w", "cloud", 16e3, 0.0)], window_bytes=None, tcp=TcpModel(**LAN))
    assert t == pytest.approx(0.5e-3 + 4e-3 + 1e-3 / 3, abs=TOL)
    (t,) = simulate_flows(g, [("w", "cloud", 16e3, 0.0)], window_bytes=None,
                          tcp=TcpModel(**LAN, hystart_ack_delta_ms=0.0))
    assert t == pytest.approx(0.5e-3 + 4e-3 + 1e-3 / 16, abs=TOL)


def test_the_growth_reaches_the_link_rate():
    # 1e7 B/s x 1 ms: at most 10 kB per round trip. 1 + 2 + 4 + 6 + 9 = 22 kB in five
    # round trips, then 13.5 kB would exceed the link: 18 kB at 10 kB per ms
    g = _star({"latency_ms": 0.5, "bandwidth_mbps": 80.0})
    (t,) = simulate_flows(g, [("w", "cloud", 40e3, 0.0)], window_bytes=None, tcp=TcpModel(**LAN))
    assert t == pytest.approx(0.5e-3 + 5e-3 + 1.8e-3, abs=TOL)


def test_between_two_and_four_ms_the_train_forms_before_the_pipe_is_full():
    # RTT 3 ms, 8e6 B/s: the pipe holds 24 kB. A round's burst of w bytes reaches the far
    # end in w / B, so its ACKs run into the next round's once 3 ms - w / B <= 2 ms: the
    # window of the round after is 2 B (RTT - 2 ms) = 16 kB. With growth 1/4: windows 1, 2, 4,
    # 8, 16 (31 kB), 20, then the link's 24 kB per round trip: 75 kB in seven round trips.
    tcp = TcpModel(**{**LAN, "ca_growth": 0.25})
    g = _star({"latency_ms": 1.5, "bandwidth_mbps": 64.0})
    (t,) = simulate_flows(g, [("w", "cloud", 75e3, 0.0)], window_bytes=None, tcp=tcp)
    assert t == pytest.approx(1.5e-3 + 7 * 3e-3, abs=TOL)
    assert tcp.exit_round(3e-3, 1e3, 8e6) == 4
    # without the exit the window reaches the pipe a round earlier: 31 + 24 kB, 20 kB of 24
    (t,) = simulate_flows(g, [("w", "cloud", 75e3, 0.0)], window_bytes=None,
                          tcp=TcpModel(**{**LAN, "hystart_ack_delta_ms": 0.0}))
    assert t == pytest.approx(1.5e-3 + 6 * 3e-3 + 20 / 24 * 3e-3, abs=TOL)


def test_on_long_paths_the_exit_changes_nothing():
    # RTT >= 4 ms: the train forms only once the window exceeds the pipe, which the
    # rate no longer feels (the defaults, 20 and 100 ms, 100 Mbit/s)
    for latency_ms in (10.0, 50.0):
        g = _star({"latency_ms": latency_ms, "bandwidth_mbps": 100.0})
        flows = [("w", "cloud", size, 0.0) for size in (1e5, 1e6, 1e7)]
        assert simulate_flows(g, flows) == simulate_flows(g, flows, tcp=TcpModel(hystart_ack_delta_ms=0.0))


@pytest.mark.parametrize("engine", ["vector", "simpy"])
def test_a_warm_lan_connection_grows_from_its_window(engine):
    # round 1, up and down from fresh connections: 0.5 + 4 + 1/3 ms each (the first test).
    # The upload's window is then 1 + (1 + 2) kB of slow start + 1/2 of the 13 kB acknowledged
    # after the exit = 10.5 kB: at or above the low window, so round 2 grows by 1/2 from
    # its first round trip: 10.5 kB, then 5.5 of 15.75 kB: 0.5 + 1 + 5.5 / 15.75 ms.
    assert window_after(1e3, 16e3, None, 2, 0.5) == 10.5e3
    g = _star({"latency_ms": 0.5, "bandwidth_mbps": 8e4})
    clock = NetworkClock(g, model_bytes=16e3, seed=0, window_bytes=None, tcp=TcpModel(**LAN, idle="keep"),
                         engine=engine)
    clock.advance(1)
    clock.advance(2)
    cold, warm = 0.5e-3 + 4e-3 + 1e-3 / 3, 0.5e-3 + 1e-3 + 5.5e-3 / 15.75
    ends = np.cumsum([0.0, cold, cold, warm, warm])
    assert _log(clock) == [(t, kind, "w", round(ends[k], 9), round(ends[k + 1], 9))
                           for k, (t, kind) in enumerate([(1, "up"), (1, "down"), (2, "up"), (2, "down")])]


def test_the_closed_form_walks_the_round_trips():
    # the closed form (vector rounds) equals a walk over SlowStart's windows (SimPy rounds)
    rng = np.random.default_rng(1)
    for _ in range(300):
        size, peak, rtt, cwnd = rng.uniform(1e3, 1e7), rng.uniform(1e4, 1e9), rng.uniform(1e-4, 0.5), rng.uniform(1e3, 1e5)
        ramp = SlowStart(rtt, cwnd, float(rng.integers(0, 8)), float(rng.uniform(0.01, 1.0)))
        left, t, k = size, 0.0, 0
        while left > min(peak, ramp.window_bytes(k) / rtt) * rtt:
            left -= min(peak, ramp.window_bytes(k) / rtt) * rtt
            t, k = t + rtt, k + 1
        t += left / min(peak, ramp.window_bytes(k) / rtt)
        assert slow_start_s(size, peak, rtt, cwnd, ramp.exit_round, ramp.growth) == pytest.approx(t, rel=1e-9)


def test_hystart_settings_are_validated_and_named_by_their_config_key():
    for bad, key in ((dict(hystart_low_window=0), "hystart_low_window"),
                     (dict(hystart_ack_delta_ms=-1.0), "hystart_ack_delta_ms"), (dict(ca_growth=0.0), "ca_growth")):
        with pytest.raises(ValueError, match=f"^{key}: must be"):
            TcpModel(**bad)
    with pytest.raises(ValueError, match="^tcp_ca_growth: must be a fraction"):
        ExperimentConfig(tcp_ca_growth=2.0)
    assert ExperimentConfig(tcp_hystart_ack_delta_ms=0.0).tcp().hystart_ack_delta_ms == 0.0
    # a run folder saved before HyStart was modelled keeps the clock it was priced with
    saved = {"tcp_model": "tcp", "topology": "star"}
    assert ExperimentConfig.from_saved(saved, "config.json").tcp_hystart_ack_delta_ms == 0.0
    assert ExperimentConfig.from_saved({**saved, "tcp_hystart_ack_delta_ms": 2.0}, "x").tcp().hystart_ack_delta_ms == 2.0
