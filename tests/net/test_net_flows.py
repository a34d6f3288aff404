"""The flow-level model: exact analytic cases (to 1e-9) and max-min fairness."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import simpy

from testbed.net import FLUID, FlowNetwork, max_min_rates, simulate_flows

S = 1e6  # bytes
TOL = 1e-9


def _chain(*links: dict) -> nx.Graph:
    """cloud - n1 - n2 - ... - worker, with the given edge attributes top first;
    intermediate nodes are routers."""
    g = nx.Graph()
    g.add_node("cloud", role="cloud", period=1)
    prev = "cloud"
    for k, attrs in enumerate(links):
        node = "w" if k == len(links) - 1 else f"r{k}"
        g.add_node(node, **({"role": "worker", "compute_ms": 1} if node == "w" else {"role": "router"}))
        g.add_edge(prev, node, **attrs)
        prev = node
    return g


def _bottleneck(n: int, *, cap_mbps: float, latency_ms: float = 0.0) -> nx.Graph:
    """n workers behind a router whose link to the cloud is the bottleneck."""
    g = nx.Graph()
    g.add_node("cloud", role="cloud", period=1)
    g.add_node("r", role="router")
    g.add_edge("cloud", "r", latency_ms=latency_ms, bandwidth_mbps=cap_mbps)
    for k in range(n):
        g.add_node(f"w{k}", role="worker", compute_ms=1)
        g.add_edge("r", f"w{k}", latency_ms=0.0, bandwidth_mbps=1e6)
    return g


def test_one_flow(mbps):
    g = _chain({"latency_ms": 7.0, "bandwidth_mbps": 8.0})
    (t,) = simulate_flows(g, [("w", "cloud", S, 0.5)], window_bytes=None, tcp=FLUID)
    assert t == pytest.approx(0.5 + 0.007 + S / (8 * mbps), abs=TOL)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_n_flows_sharing_a_bottleneck_each_take_n_s_over_c(mbps, n):
    g = _bottleneck(n, cap_mbps=40.0)
    times = simulate_flows(g, [(f"w{k}", "cloud", S, 0.0) for k in range(n)], window_bytes=None, tcp=FLUID)
    for t in times:
        assert t == pytest.approx(n * S / (40 * mbps), abs=TOL)


def test_staggered_starts_change_shares_mid_flow(mbps):
    c = 8 * mbps
    t1 = 0.3  # the second flow starts while the first has S - c*t1 bytes left
    g = _bottleneck(2, cap_mbps=8.0)
    a, b = simulate_flows(g, [("w0", "cloud", S, 0.0), ("w1", "cloud", S, t1)], window_bytes=None, tcp=FLUID)
    # both at c/2 until A ends at 2S/c - t1; then B alone at c with c*t1 bytes left
    assert a == pytest.approx(2 * S / c - t1, abs=TOL)
    assert b == pytest.approx(2 * S / c, abs=TOL)


def test_a_short_flow_leaves_early_and_the_long_one_speeds_up(mbps):
    c = 8 * mbps
    g = _bottleneck(2, cap_mbps=8.0)
    a, b = simulate_flows(g, [("w0", "cloud", S, 0.0), ("w1", "cloud", 3 * S, 0.0)], window_bytes=None, tcp=FLUID)
    assert a == pytest.approx(2 * S / c, abs=TOL)
    assert b == pytest.approx(2 * S / c + 2 * S / c, abs=TOL)  # 2S left at full rate


def test_latency_only_path_sums_one_way_latencies():
    g = _chain({"latency_ms": 3.0, "bandwidth_mbps": 1}, {"latency_ms": 4.5, "bandwidth_mbps": 1},
               {"latency_ms": 0.25, "bandwidth_mbps": 1})
    (t,) = simulate_flows(g, [("w", "cloud", 0.0, 1.0)])
    assert t == pytest.approx(1.0 + 0.00775, abs=TOL)


def test_window_limited_long_rtt_path(mbps):
    w = 4 * 2**20
    g = _chain({"latency_ms": 50.0, "bandwidth_mbps": 10_000.0}, {"latency_ms": 10.0, "bandwidth_mbps": 10_000.0})
    rtt = 2 * 0.060
    assert w / rtt < 10_000 * mbps  # the window binds, not the links
    (t,) = simulate_flows(g, [("w", "cloud", 10 * S, 0.0)], window_bytes=w, tcp=FLUID)
    assert t == pytest.approx(rtt / 2 + 10 * S / (w / rtt), abs=TOL)
    (t,) = simulate_flows(g, [("w", "cloud", 10 * S, 0.0)], window_bytes=None, tcp=FLUID)
    assert t == pytest.approx(rtt / 2 + 10 * S / (10_000 * mbps), abs=TOL)


def test_asymmetric_up_and_down_bandwidth(mbps):
    g = _chain({"latency_ms": 1.0, "up_mbps": 20.0, "down_mbps": 150.0})
    up, down = simulate_flows(g, [("w", "cloud", S, 0.0), ("cloud", "w", S, 0.0)], window_bytes=None, tcp=FLUID)
    assert up == pytest.approx(0.001 + S / (20 * mbps), abs=TOL)
    assert down == pytest.approx(0.001 + S / (150 * mbps), abs=TOL)  # full duplex: no sharing


def test_up_mbps_overrides_bandwidth_mbps_per_direction(mbps):
    g = _chain({"latency_ms": 0.0, "bandwidth_mbps": 100.0, "up_mbps": 10.0})
    up, down = simulate_flows(g, [("w", "cloud", S, 0.0), ("cloud", "w", S, 0.0)], window_bytes=None, tcp=FLUID)
    assert (up, down) == (pytest.approx(S / (10 * mbps)), pytest.approx(S / (100 * mbps)))


def test_bandwidth_trace_gives_one_capacity_per_run(helpers, trace_dir, mbps):
    from testbed.net import load_topology

    g = _chain({"latency_ms": 0.0, "bandwidth_trace": "bw_a"})
    topo = load_topology(g, trace_dir=trace_dir)
    (t,) = simulate_flows(topo, [("w", "cloud", S, 0.0)], seed=5, window_bytes=None, tcp=FLUID)
    assert any(t == pytest.approx(S / (v * mbps), abs=TOL) for v in (4.0, 8.0, 16.0))


def test_rtt_trace_latency_is_half_a_sample(trace_dir):
    from testbed.net import load_topology

    g = _chain({"rtt_trace": "rtt_a", "bandwidth_mbps": 8.0})
    topo = load_topology(g, trace_dir=trace_dir)
    times = simulate_flows(topo, [("w", "cloud", 0.0, 0.0)] * 4, seed=1)
    assert sorted(times) == pytest.approx([0.005, 0.010, 0.015, 0.020], abs=TOL)  # each sample once (replay)


def test_flow_spec_errors_name_the_flow():
    g = _chain({"latency_ms": 1.0, "bandwidth_mbps": 1.0})
    with pytest.raises(ValueError, match="flow 1: .*unknown node 'mars'"):
        simulate_flows(g, [("w", "cloud", 1, 0), ("w", "mars", 1, 0)])
    with pytest.raises(ValueError, match="flow 0: size_bytes must be a finite number >= 0"):
        simulate_flows(g, [("w", "cloud", -1, 0)])


# ---- max-min itself -----------------------------------------------------------------------
def test_max_min_textbook_example():
    # links A (1) and B (2); f0 on A, f1 on A and B, f2 on B: f0 = f1 = 0.5, f2 = 1.5
    rates = max_min_rates([[0], [0, 1], [1]], {0: 1.0, 1: 2.0})
    assert rates == pytest.approx([0.5, 0.5, 1.5], abs=1e-12)


def test_max_min_respects_per_flow_caps():
    rates = max_min_rates([[0], [0], [0]], {0: 9.0}, [1.0, math.inf, math.inf])
    assert rates == pytest.approx([1.0, 4.0, 4.0], abs=1e-12)


def test_flow_events_in_simpy_order_and_only_the_component_is_rerated():
    """SimPy-style log of (event, flow, time); disjoint flows never re-rate each other."""
    env = simpy.Environment()
    net = FlowNetwork(env, {0: 100.0, 1: 100.0, 2: 50.0})
    log: list[tuple[str, str, float]] = []

    def flow(name: str, links: list[int], size: float, start: float, latency: float):
        yield env.timeout(start)
        log.append(("start", name, env.now))
        yield net.transfer(links, size, latency_s=latency)
        log.append(("end", name, env.now))

    env.process(flow("a", [0], 150.0, 0.0, 0.5))  # alone on link 0: 0.5 + 1.5
    env.process(flow("b", [1, 2], 50.0, 0.0, 0.0))  # links 1+2, bottleneck 50: ends at 1 unless shared
    env.process(flow("c", [2], 25.0, 0.5, 0.0))  # joins link 2 at 0.5: b, c at 25 each
    env.run()
    # b: 25 bytes by 0.5, then 25 at 25/s -> 1.5; c: 25 at 25/s -> 1.5
    assert log == [("start", "a", 0.0), ("start", "b", 0.0), ("start", "c", 0.5),
                   ("end", "b", 1.5), ("end", "c", 1.5), ("end", "a", 2.0)]
    # a was rated once; b twice (start, c joins); c once; none when a ended
    assert net.n_recomputes == 1 + 1 + 2


def test_disjoint_flows_cost_linear_work():
    env = simpy.Environment()
    n = 300
    net = FlowNetwork(env, {k: 1.0 + k for k in range(n)})
    for k in range(n):
        net.transfer([k], 10.0)
    env.run()
    assert net.n_recomputes == n  # each flow re-rated once: O(F), not O(F^2)


def test_vectorised_filling_matches_the_reference_on_random_instances():
    import numpy as np

    from testbed.net.flows import _fill

    rng = np.random.default_rng(0)
    for _ in range(200):
        n_links, n_flows = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        cap = {k: float(rng.choice([1.0, 2.0, 5.0, rng.uniform(0.5, 10)])) for k in range(n_links)}
        paths = [sorted(set(rng.integers(0, n_links, size=int(rng.integers(1, 4))).tolist())) for _ in range(n_flows)]
        caps = [float(rng.choice([math.inf, rng.uniform(0.1, 4)])) for _ in range(n_flows)]
        ref = max_min_rates(paths, cap, caps)
        inc_slot = np.array([i for i, p in enumerate(paths) for _ in p])
        inc_link = np.array([link for p in paths for link in p])
        got = _fill(inc_slot, inc_link, np.array([cap[k] for k in range(n_links)]), np.array(caps),
                    np.ones(n_flows, dtype=bool))
        np.testing.assert_allclose(got, ref, rtol=1e-9)
        for link, c in cap.items():  # feasible, and every flow is bottlenecked somewhere
            assert sum(r for r, p in zip(got, paths) if link in p) <= c * (1 + 1e-9)


def test_a_flow_bridging_two_groups_merges_them():
    env = simpy.Environment()
    net = FlowNetwork(env, {0: 10.0, 1: 10.0})
    ends = {}

    def flow(name, links, size, start):
        yield env.timeout(start)
        ends[name] = yield net.transfer(links, size)

    env.process(flow("a", [0], 10.0, 0.0))  # alone: 10/s
    env.process(flow("b", [1], 10.0, 0.0))  # alone: 10/s
    env.process(flow("c", [0, 1], 10.0, 0.5))  # from 0.5 shares both links: all at 5/s
    env.run()
    # a, b: 5 bytes by 0.5, then 5 at 5/s -> 1.5; c: 5 by 1.5 then alone at 10/s -> 2.0
    assert ends == {"a": pytest.approx(1.5), "b": pytest.approx(1.5), "c": pytest.approx(2.0)}
