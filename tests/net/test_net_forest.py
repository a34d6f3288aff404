"""The subtrees that aggregate at one iteration are priced together, one forest per level
of their top servers. Pricing them one subtree at a time must give the same run: the same
draws per link, the same clocks and the same event log, bit for bit."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from testbed.net import NetworkClock, load_topology, price_schedule
from testbed.net.forest import TreeIndex, concat_ranges


def _per_server_periods() -> nx.Graph:
    """Three levels, unequal groups, per-server periods: at t=4 the level-1 server r1
    aggregates between level-2 servers of r0 and r2 (forests on two levels interleave);
    half the edge uplinks replay an RTT trace."""
    g = nx.Graph(name="per-server")
    g.add_node("cloud", role="cloud", period=24)
    w = 0
    for r, (period, edge_periods) in enumerate([(12, [2, 3]), (4, [2, 4, 1]), (8, [4, 2])]):
        g.add_node(f"r{r}", role="server", period=period)
        g.add_edge("cloud", f"r{r}", latency_ms=20.0 + r, bandwidth_mbps=100.0)
        for e, ep in enumerate(edge_periods):
            edge = f"r{r}e{e}"
            g.add_node(edge, role="server", period=ep)
            delay = {"rtt_trace": "synth_home_access"} if (r + e) % 2 else {"latency_ms": 3.0}
            g.add_edge(f"r{r}", edge, bandwidth_mbps=50.0, **delay)
            for _ in range(2 + e):
                g.add_node(f"w{w}", role="worker", compute_ms=5.0 + w % 3)
                g.add_edge(edge, f"w{w}", latency_ms=4.0, up_mbps=10.0, down_mbps=40.0)
                w += 1
    return g


def _behind_routers(access_mbps: tuple[float, ...]) -> nx.Graph:
    """Each server reaches its three workers through a router: the server-router link is
    shared by three hops (it saturates where its capacity is low)."""
    g = nx.Graph(name="routers")
    g.add_node("cloud", role="cloud", period=4)
    for a, mbps in enumerate(access_mbps):
        g.add_node(f"a{a}", role="server", period=2)
        g.add_edge("cloud", f"a{a}", latency_ms=10.0, bandwidth_mbps=100.0)
        g.add_node(f"r{a}", role="router")
        g.add_edge(f"a{a}", f"r{a}", latency_ms=1.0, bandwidth_mbps=mbps)
        for k in range(3):
            g.add_node(f"w{a}{k}", role="worker", compute_ms=3.0)
            g.add_edge(f"r{a}", f"w{a}{k}", latency_ms=2.0, bandwidth_mbps=50.0)
    return g


def _one_subtree_at_a_time(clock: NetworkClock) -> NetworkClock:
    """Make ``clock`` price each top server's subtree alone, in the tree's (pre-)order."""
    idx = clock._idx

    def tops(servers: tuple[int, ...]):
        return [idx.forest([s]) for s in sorted(servers)]

    clock._top_forests = tops
    return clock


def _price(topo, T: int, alone: bool, masks, **options) -> NetworkClock:
    clock = NetworkClock(topo, model_bytes=2e6, seed=4, **options)
    if alone:
        _one_subtree_at_a_time(clock)
    for t in range(1, T + 1):
        clock.advance(t, None if masks is None else masks[t - 1])
    return clock


def _masks(n: int, T: int, seed: int = 9) -> np.ndarray:
    return np.random.default_rng(seed).random((T, n)) < 0.6


CASES = {
    "per-server periods": (_per_server_periods, {}),
    "bootstrap, no window": (_per_server_periods, {"sampling": "bootstrap", "window_bytes": None}),
    "simpy backend": (_per_server_periods, {"engine": "simpy"}),
    "routers that fit": (lambda: _behind_routers((1e4, 1e4, 1e4)), {}),
    "edge3level, aggregations only": (lambda: "edge3level", {"record": "aggregations"}),
}


@pytest.mark.parametrize("partial", [False, True], ids=["everyone", "partial"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_forest_prices_like_its_subtrees_one_by_one(case, partial):
    build, options = CASES[case]
    topo = load_topology(build())
    T = 2 * topo.tree.servers[0].period + 3
    masks = _masks(topo.n_workers, T) if partial else None
    together, alone = (_price(topo, T, a, masks, **options) for a in (False, True))
    assert together.events_frame().equals(alone.events_frame())
    wa, wb = together.worker_breakdown(), alone.worker_breakdown()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    assert together.rounds_by_engine == alone.rounds_by_engine
    levels = {e.level for e in together.events if e.kind == "aggregate"}
    assert len(levels) > 1  # rounds of more than one level were priced


def test_interleaved_forests_log_subtrees_left_to_right():
    clock = price_schedule(_per_server_periods(), 4, model_bytes=1e6, seed=0, record="aggregations")
    at4 = [e.node for e in clock.events if e.t == 4]
    assert at4 == ["r0e0", "r1", "r2e0", "r2e1"]  # the tree's order, though r1 is priced in its own forest


def test_a_saturating_subtree_sends_its_whole_forest_through_simpy():
    topo = load_topology(_behind_routers((8.0, 1e4, 8.0)))  # a0's and a2's shared links saturate
    together, alone = (_price(topo, 8, a, None) for a in (False, True))
    assert alone.rounds_by_engine == {"vector": 2, "simpy": 4 + 2}  # a1 alone fits, twice
    assert together.rounds_by_engine == {"vector": 0, "simpy": 8}
    a, b = together.events_frame(), alone.events_frame()
    assert a[["t", "kind", "node", "peer"]].equals(b[["t", "kind", "node", "peer"]])
    np.testing.assert_allclose(a[["start_s", "end_s"]], b[["start_s", "end_s"]], rtol=0, atol=1e-9)


def test_a_subtree_without_participants_is_left_out_of_its_forest():
    topo = load_topology(_per_server_periods())
    nobody_under_r0e0 = np.ones(topo.n_workers, dtype=bool)
    nobody_under_r0e0[:2] = False
    clock = NetworkClock(topo, model_bytes=1e6, seed=0)
    clock.advance(1)
    clock.advance(2, nobody_under_r0e0)
    at2 = [e.node for e in clock.events if e.t == 2 and e.kind == "aggregate"]
    assert at2 == ["r1e0", "r1e2", "r2e1"]  # r0e0 is due too, but nobody under it took part
    assert clock.clocks_s[:2].tolist() == [0.005, 0.006]  # w0, w1: one iteration's compute, nothing sent


def test_forest_geometry_and_errors():
    idx = TreeIndex(load_topology(_per_server_periods()))
    r1, r0e0, r2e1 = 4, 2, 10  # pre-order server ids
    with pytest.raises(ValueError, match="share one level"):
        idx.forest([r1, r0e0])
    f = idx.forest([r2e1, r0e0])  # given in any order, kept left to right
    assert f.roots == (r0e0, r2e1)
    assert f[2].nodes.tolist() == [0, 6]
    assert f[3].nodes.tolist() == [0, 1, 16, 17, 18]  # two workers under r0e0, three under r2e1
    assert f[2].children.tolist() == [0, 2] and f[3].parent.tolist() == [0, 0, 1, 1, 1]
    assert f.worker_seg.tolist() == [0, 2]
    whole = idx.forest([0])
    assert whole.workers == slice(0, idx.n_workers) and isinstance(f.workers, np.ndarray)  # a slice where contiguous


@pytest.mark.parametrize("reverse", [False, True])
def test_concat_ranges_matches_the_loop(reverse):
    rng = np.random.default_rng(0)
    starts, counts = rng.integers(0, 50, 20), rng.integers(1, 6, 20)
    want = np.concatenate([np.arange(s, s + c)[:: -1 if reverse else 1] for s, c in zip(starts, counts)])
    np.testing.assert_array_equal(concat_ranges(starts, counts, reverse=reverse), want)
    assert len(concat_ranges(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))) == 0
