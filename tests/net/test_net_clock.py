"""The synchronous schedule priced by NetworkClock: event logs, analytic cases,
the breakdown identity, and equality of the vector and SimPy backends."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from testbed.net import FLUID, NetworkClock, load_topology, price_schedule

TOL = 1e-9
S = 1e5  # model bytes: 0.1 s on an 8 Mbit/s link


def _log(clock: NetworkClock, kinds=("up", "barrier", "down")) -> list[tuple[str, str, float]]:
    """(event, node, end time) in time order (ties keep the log's order)."""
    ev = sorted((e for e in clock.events if e.kind in kinds), key=lambda e: e.end_s)
    return [(e.kind, e.node, round(e.end_s, 9)) for e in ev]


def test_event_log_of_local_then_global_rounds(helpers):
    # access 5 ms + 8 Mbit/s (0.1 s per model), uplink 20 ms + 80 Mbit/s (0.01 s); 10 ms compute
    clock = NetworkClock(helpers.two_level(groups=(2, 2), periods=(4, 2)), model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    for t in (1, 2):
        clock.advance(t)
    # two rounds at t=2 (one per server); ties stay in log order, round by round
    local = [("up", "w0", 0.125), ("up", "w1", 0.125), ("barrier", "s0", 0.125),
             ("up", "w2", 0.125), ("up", "w3", 0.125), ("barrier", "s1", 0.125)]
    local += [("down", w, 0.23) for w in ("w0", "w1", "w2", "w3")]
    assert _log(clock) == local
    assert clock.now_s == pytest.approx(0.23, abs=TOL)
    for t in (3, 4):
        clock.advance(t)  # t=3 computes only; t=4 is a global round starting at 0.25
    glob = [("up", w, 0.355) for w in ("w0", "w1", "w2", "w3")]
    glob += [("barrier", "s0", 0.355), ("barrier", "s1", 0.355)]
    glob += [("up", "s0", 0.385), ("up", "s1", 0.385), ("barrier", "cloud", 0.385)]
    glob += [("down", "s0", 0.415), ("down", "s1", 0.415)]
    glob += [("down", w, 0.52) for w in ("w0", "w1", "w2", "w3")]
    assert _log(clock) == local + glob
    aggs = [(e.t, e.kind, e.level, e.node, round(e.start_s, 9), round(e.end_s, 9)) for e in clock.events
            if e.kind == "aggregate"]
    assert aggs == [(2, "aggregate", 1, "s0", 0.02, 0.23), (2, "aggregate", 1, "s1", 0.02, 0.23),
                    (4, "aggregate", 0, "cloud", 0.25, 0.52)]
    b = clock.breakdown()
    assert b["compute_s"] == pytest.approx(0.04, abs=TOL)
    assert b["comm_level_1_s"] == pytest.approx(0.21, abs=TOL)
    assert b["comm_cloud_s"] == pytest.approx(0.27, abs=TOL)
    assert b["wait_s"] == pytest.approx(0.0, abs=TOL)
    assert b["elapsed_s"] == pytest.approx(0.52, abs=TOL)


def test_a_straggler_holds_the_barrier(helpers):
    g = helpers.star(2, period=1)
    g.nodes["w1"]["slowdown"] = 3.0  # 30 ms per iteration instead of 10
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    clock.advance(1)
    assert _log(clock) == [("up", "w0", 0.115), ("up", "w1", 0.135), ("barrier", "cloud", 0.135),
                           ("down", "w0", 0.24), ("down", "w1", 0.24)]
    barrier = next(e for e in clock.events if e.kind == "barrier")
    assert (barrier.start_s, barrier.end_s) == (pytest.approx(0.115), pytest.approx(0.135))
    wb = clock.worker_breakdown()
    np.testing.assert_allclose(wb["compute_s"], [0.01, 0.03], atol=TOL)
    np.testing.assert_allclose(wb["comm_cloud_s"], [0.21, 0.21], atol=TOL)
    np.testing.assert_allclose(wb["wait_s"], [0.02, 0.0], atol=TOL)  # w0 waits for w1
    np.testing.assert_allclose(wb["clock_s"], [0.24, 0.24], atol=TOL)


def test_compute_between_aggregations_needs_no_waiting(helpers):
    g = helpers.two_level(groups=(1, 1), periods=(4, 2))
    g.nodes["w1"]["compute_ms"] = 50.0
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    clock.advance(1)
    np.testing.assert_allclose(clock.clocks_s, [0.01, 0.05], atol=TOL)  # independent clocks
    assert clock.events == []


def test_window_cap_and_asymmetric_links_in_a_round(helpers, mbps):
    g = helpers.star(1, period=1, link={"latency_ms": 40.0, "up_mbps": 20.0, "down_mbps": 150.0})
    w = 2**16  # 64 KiB over an 80 ms RTT: 0.82 MB/s, below both directions' capacity
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=w, tcp=FLUID, compute_ms=0.0)
    clock.advance(1)
    up = 0.04 + S / min(20 * mbps, w / 0.08)
    down = 0.04 + S / min(150 * mbps, w / 0.08)
    assert clock.now_s == pytest.approx(up + down, abs=TOL)
    clock2 = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID, compute_ms=0.0)
    clock2.advance(1)
    assert clock2.now_s == pytest.approx(0.08 + S / (20 * mbps) + S / (150 * mbps), abs=TOL)


def test_partial_participation(helpers):
    clock = NetworkClock(helpers.two_level(groups=(2, 2), periods=(2, 2)), model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    mask = np.array([True, False, False, False])
    clock.advance(1, mask)
    np.testing.assert_allclose(clock.clocks_s, [0.01, 0, 0, 0], atol=TOL)  # non-participants do not compute
    clock.advance(2, mask)
    ups = [(e.node, e.peer) for e in clock.events if e.kind == "up"]
    assert ups == [("w0", "s0"), ("s0", "cloud")]  # s1 has no participant: it sends nothing
    downs = sorted(e.node for e in clock.events if e.kind == "down")
    assert downs == ["s0", "s1", "w0", "w1", "w2", "w3"]  # everyone receives the average
    wb = clock.worker_breakdown()
    np.testing.assert_allclose(wb["compute_s"], [0.02, 0, 0, 0], atol=TOL)
    total = wb["compute_s"] + wb["comm_cloud_s"] + wb["wait_s"]
    np.testing.assert_allclose(total, wb["clock_s"], atol=TOL)
    nobody = np.zeros(4, dtype=bool)
    clock.advance(3, nobody)
    before = len(clock.events)
    clock.advance(4, nobody)  # a round with nobody sends nothing
    assert len(clock.events) == before


def test_previous_broadcast_must_finish_before_the_next(helpers, mbps):
    """w1's slow downlink is still receiving round 1 when round 2 (w0 only) is ready."""
    g = helpers.star(2, period=1)
    g.edges["cloud", "w1"]["bandwidth_mbps"] = 0.8  # 1 s per model
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    clock.advance(1)
    d1 = max(e.end_s for e in clock.events if e.kind == "down" and e.node == "w1")
    assert d1 == pytest.approx(0.01 + 1.005 + 1.005, abs=TOL)  # w1's slow up, then slow down
    clock.advance(2, np.array([True, False]))
    ev = [e for e in clock.events if e.t == 2]
    barrier = next(e for e in ev if e.kind == "barrier")
    down_w0 = next(e for e in ev if e.kind == "down" and e.node == "w0")
    assert barrier.end_s < d1
    assert down_w0.start_s == pytest.approx(d1, abs=TOL)  # waits for the previous broadcast
    wb = clock.worker_breakdown()
    assert wb["wait_s"][0] >= d1 - barrier.end_s - TOL


def _masks(n: int, t_max: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((t_max, n)) < 0.7


def _as_local_sgd(topo):
    """Every server but the cloud only relays (a router): local SGD over the same links."""
    g = nx.Graph(topo.graph)
    for node in topo.server_nodes[1:]:
        g.nodes[node].clear()
        g.nodes[node]["role"] = "router"
    g.nodes[topo.cloud]["period"] = 4
    return load_topology(g)


@pytest.mark.parametrize("name", ["edge3level", "paper2level", "star", "zoo_usbackbone", "edge3level-local-sgd"])
def test_vector_and_simpy_backends_agree_exactly(name, trace_dir):
    topo = load_topology(name.removesuffix("-local-sgd"))
    if name.endswith("local-sgd"):  # shared links behind routers that never saturate
        topo = _as_local_sgd(topo)
    elif name == "edge3level":  # a compute trace and a straggler, too
        g = nx.Graph(topo.graph)
        w = topo.worker_nodes[3]
        del g.nodes[w]["compute_ms"]
        g.nodes[w]["compute_trace"] = "compute_a"
        g.nodes[topo.worker_nodes[5]]["slowdown"] = 2.5
        link = g.edges[topo.worker_nodes[7], topo.agg_parent[topo.worker_nodes[7]]]  # and a bandwidth trace
        del link["up_mbps"], link["down_mbps"]
        link["bandwidth_trace"] = "bw_a"
        topo = load_topology(g, trace_overrides={"compute_a": trace_dir / "compute_a.csv",
                                                 "bw_a": trace_dir / "bw_a.csv"})
    T = 2 * topo.tree.servers[0].period
    masks = _masks(topo.n_workers, T, 1)
    frames = {}
    for engine in ("auto", "simpy"):
        clock = price_schedule(topo, T, participants=masks, model_bytes=4e6, seed=11, engine=engine)
        frames[engine] = (clock.events_frame(), clock.worker_breakdown(), clock.breakdown())
        if engine == "auto" and name != "zoo_usbackbone":
            assert clock.rounds_by_engine["simpy"] == 0  # the closed form was exact every round
    ev_v, wb_v, b_v = frames["auto"]
    ev_s, wb_s, b_s = frames["simpy"]
    assert len(ev_v) == len(ev_s) > 0
    for col in ("t", "kind", "level", "tier", "node", "peer", "size_bytes", "round_bytes"):
        assert ev_v[col].equals(ev_s[col])
    np.testing.assert_allclose(ev_v[["start_s", "end_s"]].to_numpy(), ev_s[["start_s", "end_s"]].to_numpy(),
                               rtol=0, atol=TOL)
    for key in wb_v:
        np.testing.assert_allclose(wb_v[key], wb_s[key], rtol=0, atol=TOL)
    assert b_v == pytest.approx(b_s, abs=TOL)


@pytest.mark.parametrize("name", ["edge3level", "paper2level", "star", "zoo_usbackbone"])
def test_breakdown_identity_holds_per_worker(name):
    topo = load_topology(name)
    T = 2 * topo.tree.servers[0].period
    clock = price_schedule(topo, T, participants=lambda t: _masks(topo.n_workers, 1, t)[0],
                           model_bytes=2e6, seed=3)
    wb = clock.worker_breakdown()
    comm = sum(wb[c] for c in clock.comm_columns)
    assert len(clock.comm_columns) == topo.tree.n_levels
    np.testing.assert_allclose(wb["compute_s"] + comm + wb["wait_s"], wb["clock_s"], rtol=1e-12, atol=TOL)
    assert np.all(wb["wait_s"] >= -TOL)
    b = clock.breakdown()
    assert b["compute_s"] + b["comm_s"] + b["wait_s"] == pytest.approx(b["elapsed_s"], abs=TOL)
    assert b["now_s"] == pytest.approx(wb["clock_s"].max())


def test_aggregations_follow_the_tree_schedule():
    topo = load_topology("edge3level")
    clock = price_schedule(topo, 80, model_bytes=1e5, seed=0, record="aggregations")
    got = [(e.t, e.node) for e in clock.events]
    want = [(t, topo.server_nodes[s.id]) for t in range(1, 81) for s in topo.tree.top_aggregating(t)]
    assert got == want
    assert {e.kind for e in clock.events} == {"aggregate"}


def test_same_seed_same_run_other_seed_other_run():
    runs = [price_schedule("paper2level", 50, model_bytes=1e6, seed=s).events_frame() for s in (5, 5, 6)]
    assert runs[0].equals(runs[1])
    assert not runs[0]["end_s"].equals(runs[2]["end_s"])


def test_trace_override_changes_the_network(tmp_path):
    slow = tmp_path / "slow.csv"
    slow.write_text("t_s,rtt_ms\n0,500\n")
    base = price_schedule("star", 10, model_bytes=1e5, seed=0)
    swapped = price_schedule("star", 10, model_bytes=1e5, seed=0, trace_overrides={"synth_home_access": slow})
    assert swapped.now_s > base.now_s
    assert swapped.breakdown()["comm_cloud_s"] > base.breakdown()["comm_cloud_s"] + 0.4  # 500 vs ~78 ms RTT


def test_routers_share_links_and_use_the_simpy_backend(helpers, mbps):
    g = nx.Graph()
    g.add_node("cloud", role="cloud", period=1)
    g.add_node("r", role="router")
    g.add_edge("cloud", "r", latency_ms=0.0, bandwidth_mbps=8.0)  # shared by both server uploads
    for k in range(2):
        g.add_node(f"s{k}", role="server", period=1)
        g.add_edge("r", f"s{k}", latency_ms=0.0, bandwidth_mbps=1e4)
        g.add_node(f"w{k}", role="worker", compute_ms=0.0)
        g.add_edge(f"s{k}", f"w{k}", latency_ms=0.0, bandwidth_mbps=1e4)
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    with pytest.raises(ValueError, match="engine='vector' is exact only"):
        NetworkClock(g, model_bytes=S, seed=0, engine="vector")
    clock.advance(1)
    assert clock.rounds_by_engine == {"vector": 0, "simpy": 1}  # the shared link saturates
    ups = {e.node: e for e in clock.events if e.kind == "up"}
    fast = S / (1e4 * mbps)
    for k in range(2):  # both server uploads share 8 Mbit/s: 2 S / C each
        assert ups[f"s{k}"].end_s - ups[f"s{k}"].start_s == pytest.approx(2 * S / (8 * mbps), abs=TOL)
        assert ups[f"w{k}"].end_s == pytest.approx(fast, abs=TOL)
    g.edges["cloud", "r"]["bandwidth_mbps"] = 1e5  # now it cannot saturate: the closed form is exact
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    clock.advance(1)
    assert clock.rounds_by_engine == {"vector": 1, "simpy": 0}


def test_compute_override_slowdown_and_compute_traces(helpers, trace_dir):
    g = helpers.star(3, period=100)
    g.nodes["w1"]["slowdown"] = 2.0
    del g.nodes["w2"]["compute_ms"]
    g.nodes["w2"]["compute_trace"] = "compute_a"  # values 5, 10, 15: mean 10
    topo = load_topology(g, trace_dir=trace_dir)
    clock = NetworkClock(topo, model_bytes=S, seed=0)
    for t in range(1, 4):
        clock.advance(t)
    np.testing.assert_allclose(clock.clocks_s, [0.03, 0.06, 0.03], atol=TOL)  # a full trace cycle
    clock = NetworkClock(topo, model_bytes=S, seed=0, compute_ms=4.0)
    for t in range(1, 4):
        clock.advance(t)
    np.testing.assert_allclose(clock.clocks_s, [0.012, 0.024, 0.012], atol=TOL)  # trace rescaled to mean 4
    clock = NetworkClock(topo, model_bytes=S, seed=0, compute_ms=[1.0, 2.0, 3.0])
    clock.advance(1)
    assert clock.clocks_s[:2] == pytest.approx([0.001, 0.004])
    with pytest.raises(ValueError, match="compute_ms has 2 values but the topology has 3 workers"):
        NetworkClock(topo, model_bytes=S, seed=0, compute_ms=[1.0, 2.0])


def test_usage_errors_are_clear(helpers):
    g = helpers.star(2)
    del g.nodes["w1"]["compute_ms"]
    with pytest.raises(ValueError, match="worker 'w1' has neither 'compute_ms' nor 'compute_trace'"):
        NetworkClock(g, model_bytes=S, seed=0)
    clock = NetworkClock(g, model_bytes=S, seed=0, compute_ms=1.0)
    with pytest.raises(ValueError, match=r"advance\(2\) after iteration 0: .* next is 1"):
        clock.advance(2)
    with pytest.raises(ValueError, match="participants must be a bool array of shape"):
        clock.advance(1, np.array([1, 0]))
    for bad in ({"model_bytes": -1}, {"seed": -1}, {"window_bytes": 0}, {"sampling": "shuffle"},
                {"engine": "fast"}, {"record": "some"}):
        kwargs = {"model_bytes": S, "seed": 0, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            NetworkClock(g, compute_ms=1.0, **kwargs)


def test_record_modes_and_frame(helpers):
    g = helpers.two_level()
    for mode, kinds in (("all", {"up", "down", "barrier", "aggregate"}), ("aggregations", {"aggregate"}),
                        ("none", set())):
        clock = price_schedule(g, 4, model_bytes=S, seed=0, record=mode)
        frame = clock.events_frame()
        assert set(frame["kind"]) == kinds
        assert list(frame.columns) == ["t", "kind", "level", "tier", "node", "peer", "start_s", "end_s",
                                       "size_bytes", "round_bytes"]
        assert len(frame) == len(clock.events)
    frame = price_schedule(g, 4, model_bytes=S, seed=0).events_frame()
    agg = frame.query("kind == 'aggregate' and t == 4")
    assert agg["round_bytes"].item() == S * (4 + 2 + 2 + 4)  # 6 uploads + 6 downloads
    assert agg["size_bytes"].isna().all() and frame.query("kind == 'barrier'")[["size_bytes", "round_bytes"]].isna().all().all()


def test_event_bytes_add_up(helpers):
    """Each byte is counted once: the transfers' size_bytes sum to the rounds' round_bytes."""
    frame = price_schedule(helpers.two_level(), 8, model_bytes=S, seed=0).events_frame()
    transfers = frame[frame.kind.isin(["up", "down"])]
    assert transfers["size_bytes"].notna().all() and frame["size_bytes"].sum() == transfers["size_bytes"].sum()
    assert frame["size_bytes"].sum() == frame["round_bytes"].sum() > 0
    per_round = transfers.groupby("t").size_bytes.sum()
    assert per_round.to_dict() == frame[frame.kind == "aggregate"].groupby("t").round_bytes.sum().to_dict()


def test_levels_named_by_the_topology_tiers(helpers):
    g = helpers.two_level()
    for node, attrs in g.nodes(data=True):
        if attrs["role"] == "server":
            attrs["tier"] = "edge"
    clock = price_schedule(g, 4, model_bytes=S, seed=0)
    assert clock.comm_columns == ("comm_cloud_s", "comm_edge_s")
    assert {"comm_cloud_s", "comm_edge_s"} <= set(clock.breakdown())
    frame = clock.events_frame()
    assert dict(zip(frame.level, frame.tier)) == {0: "cloud", 1: "edge"}
    g.nodes["cloud"]["tier"] = "edge"
    with pytest.raises(ValueError, match="repeat a name"):
        price_schedule(g, 1, model_bytes=S, seed=0)
    g.nodes["cloud"]["tier"] = "Cloud!"
    with pytest.raises(ValueError, match="'tier' must be a lowercase name"):
        price_schedule(g, 1, model_bytes=S, seed=0)


def test_bootstrap_sampling_is_seeded():
    a = price_schedule("paper2level", 10, model_bytes=1e6, seed=2, sampling="bootstrap")
    b = price_schedule("paper2level", 10, model_bytes=1e6, seed=2, sampling="bootstrap")
    assert a.now_s == b.now_s


def test_bandwidth_trace_gives_each_round_one_capacity(helpers, trace_dir, mbps):
    g = helpers.star(1, period=1, link={"latency_ms": 0.0, "bandwidth_trace": "bw_a"})  # 4, 8, 16 Mbit/s
    clock = price_schedule(load_topology(g, trace_dir=trace_dir), 6, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID,
                           compute_ms=0.0)
    ups = [e.end_s - e.start_s for e in clock.events if e.kind == "up"]
    downs = [e.end_s - e.start_s for e in clock.events if e.kind == "down"]
    caps = [S / d / mbps for d in ups]
    assert sorted(set(np.round(caps, 9))) == [4.0, 8.0, 16.0]  # replayed: every value, in turn
    assert ups == pytest.approx(downs, abs=TOL)  # the same sample for both directions in a round
