"""Loss after slow-start overshoot, worked out by hand (testbed.net.tcp, overshoot.py).

Two uploads cross one bottleneck router -> cloud of 1e6 B/s (8 Mbit/s) with RTT 20 ms
(the access links are free), with 1000-byte segments, no headers, an initial window of
one segment and HyStart off, so every round trip's window is a round number. The pipe
holds 20 kB; the drop-tail buffer is max(10 packets, one BDP) = 20 kB; so windows that
add up to more than 40 kB overflow it. Together the flows move 1, 2, 4, 8 kB each per
round trip (15 kB each by 80 ms of flow time), then share the link (0.5e6 B/s each,
25 kB each by 100 ms), when their windows reach 32 kB each: 64 kB > 40 kB, both lose.
Each flow's share of pipe + buffer is 20 kB. The loss is detected one loaded RTT (20 ms
+ 20 ms of full buffer) after that round trip ends, at 160 ms of flow time (55 kB moved
each), and the RTO fires 200 ms + one loaded RTT later, at 400 ms."""

from __future__ import annotations

import networkx as nx
import pytest

from testbed.net import NetworkClock, TcpModel, simulate_flows

TOL = 1e-9
LOSSY = TcpModel(initial_window=1, mss_bytes=1000, header_bytes=0, hystart_ack_delta_ms=0.0, buffer_floor_pkts=10)
NO_LOSS = TcpModel(initial_window=1, mss_bytes=1000, header_bytes=0, hystart_ack_delta_ms=0.0, loss="none")
LATENCY_S = 0.01  # one way, before the first byte


def _shared(n: int = 2) -> nx.Graph:
    g = nx.Graph(name="shared")
    g.add_node("cloud", role="cloud", period=1)
    g.add_node("r", role="router")
    g.add_edge("cloud", "r", latency_ms=10.0, bandwidth_mbps=8.0)
    for k in range(n):
        g.add_node(f"w{k}", role="worker", compute_ms=0.0)
        g.add_edge("r", f"w{k}", latency_ms=0.0, bandwidth_mbps=1e5)
    return g


def _uploads(size: float, tcp: TcpModel, n: int = 2) -> list[float]:
    return simulate_flows(_shared(n), [(f"w{k}", "cloud", size, 0.0) for k in range(n)], window_bytes=None, tcp=tcp)


def test_two_flows_that_finish_before_the_timeout_wait_for_it_and_resend_their_lost_retransmissions():
    # 100 kB each: 45 kB left at the detection (> the 20 kB share), all moved by 250 ms,
    # then held until the RTO at 400 ms; 0.25 x 20 kB = 5 kB resent by slow start from one
    # segment: 1 + 2 kB in two round trips, the last 2 kB at 4 kB per 20 ms
    assert _uploads(100e3, LOSSY) == pytest.approx([LATENCY_S + 0.4 + 0.04 + 0.01] * 2, abs=TOL)  # 0.46 s
    assert _uploads(100e3, NO_LOSS) == pytest.approx([LATENCY_S + 0.1 + 75e3 / 0.5e6] * 2, abs=TOL)  # 0.26 s


def test_flows_still_sending_at_the_timeout_restart_from_one_segment_up_to_half_their_window():
    # 1 MB each: 175 kB moved by the RTO at 400 ms; slow start from 1 kB up to ssthresh =
    # 32 kB / 2 = 16 kB moves 1 + 2 + 4 + 8 kB in 80 ms, then the 810 kB left at 0.5e6 B/s
    assert _uploads(1e6, LOSSY) == pytest.approx([LATENCY_S + 0.4 + 0.08 + 810e3 / 0.5e6] * 2, abs=TOL)  # 2.11 s
    assert _uploads(1e6, NO_LOSS) == pytest.approx([LATENCY_S + 0.1 + 975e3 / 0.5e6] * 2, abs=TOL)  # 2.06 s


def test_an_overshoot_in_the_last_flight_costs_no_timeout():
    # 70 kB each: 15 kB left at the detection fits in the 20 kB share: no RTO
    expected = [LATENCY_S + 0.1 + 45e3 / 0.5e6] * 2  # 0.2 s
    assert _uploads(70e3, LOSSY) == pytest.approx(expected, abs=TOL)
    assert _uploads(70e3, NO_LOSS) == pytest.approx(expected, abs=TOL)


def test_no_overshoot_is_unchanged():
    # a buffer of 1000 packets (1 MB) holds both windows until the flows are done
    deep = TcpModel(initial_window=1, mss_bytes=1000, header_bytes=0, hystart_ack_delta_ms=0.0, buffer_floor_pkts=1000)
    assert _uploads(1e6, deep) == _uploads(1e6, NO_LOSS)
    # a flow alone never loses (HyStart's delay test ends its slow start): windows of
    # 1, 2, 4, 8, 16 kB (31 kB in 100 ms), then 969 kB at the link rate
    (t,) = _uploads(1e6, LOSSY, n=1)
    assert t == pytest.approx(LATENCY_S + 0.1 + 969e3 / 1e6, abs=TOL)
    assert _uploads(1e6, NO_LOSS, n=1) == [t]


def test_an_aggregation_round_prices_the_same_loss_in_the_event_log():
    # both uploads as above (0.46 s), then both downloads over the shared link from fresh
    # connections: the same overshoot and timeout, 0.46 s again
    clock = NetworkClock(_shared(), model_bytes=100e3, seed=0, window_bytes=None, tcp=LOSSY)
    clock.advance(1)
    assert clock.rounds_by_engine == {"vector": 0, "simpy": 1}
    log = [(e.kind, e.node, round(e.start_s, 9), round(e.end_s, 9)) for e in clock.events
           if e.kind in ("up", "down", "barrier")]
    assert log == [("up", "w0", 0.0, 0.46), ("up", "w1", 0.0, 0.46), ("barrier", "cloud", 0.46, 0.46),
                   ("down", "w0", 0.46, 0.92), ("down", "w1", 0.46, 0.92)]


def test_loss_settings_are_validated():
    with pytest.raises(ValueError, match="^loss: must be one of overshoot, none"):
        TcpModel(loss="rack")
    with pytest.raises(ValueError, match="^relost_share: must be a fraction from 0 to 1"):
        TcpModel(relost_share=1.5)
    with pytest.raises(ValueError, match="^buffer_floor_pkts: must be an integer"):
        TcpModel(buffer_floor_pkts=-1)
    assert TcpModel().buffer_bytes(1e6, 0.02) == 100 * 1448  # the floor
    assert TcpModel().buffer_bytes(1e9, 0.02) == 2e7  # one BDP
    assert "overshoot" in TcpModel().describe() and "no loss" in NO_LOSS.describe()


def test_config_keys_and_run_folders_saved_before_the_loss_model():
    from testbed.experiment.config import ExperimentConfig

    with pytest.raises(ValueError, match="^tcp_loss: must be one of"):
        ExperimentConfig(tcp_loss="rto")
    assert ExperimentConfig().tcp().loss == "overshoot"
    assert ExperimentConfig(tcp_buffer_floor_pkts=50, tcp_relost_share=0.5).tcp().buffer_floor_pkts == 50
    # a run folder saved before the loss model keeps the clock it was priced with
    saved = {"tcp_model": "tcp", "tcp_hystart_ack_delta_ms": 2.0, "topology": "star"}
    assert ExperimentConfig.from_saved(saved, "config.json").tcp().loss == "none"
    assert ExperimentConfig.from_saved({**saved, "tcp_loss": "overshoot"}, "x").tcp().loss == "overshoot"
