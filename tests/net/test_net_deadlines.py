"""Round deadlines on the NetworkClock: who admit() leaves out, and how the round is priced."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from testbed.net import FLUID, NetworkClock
from testbed.schedule import Drop, Step

TOL = 1e-9
S = 1e5  # model bytes: 0.1 s on an 8 Mbit/s link
INF = math.inf


def _log(clock: NetworkClock, t: int) -> list[tuple[str, str, float]]:
    ev = sorted((e for e in clock.events if e.t == t and e.kind in ("up", "barrier", "down")), key=lambda e: e.end_s)
    return [(e.kind, e.node, round(e.end_s, 9)) for e in ev]


def _run(clock: NetworkClock, T: int, masks=None) -> list[Step]:
    """Admit and price iterations 1..T; the steps as priced."""
    steps = []
    for t in range(1, T + 1):
        step = clock.admit(Step.at(clock.tree, t, None if masks is None else masks[t - 1]))
        clock.advance(step)
        steps.append(step)
    return steps


def test_a_straggler_misses_its_servers_deadline(helpers):
    # cloud(id 0) -> s0(1) {w0, w1}, s1(2) {w2, w3}; access 5 ms + 0.1 s per model; 10 ms compute, w1 30 ms
    g = helpers.two_level(groups=(2, 2), periods=(4, 2))
    g.nodes["w1"]["slowdown"] = 3.0
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID, deadline_s=(INF, 0.15, 0.15))
    clock.advance(clock.admit(Step.at(clock.tree, 1)))
    step = clock.admit(Step.at(clock.tree, 2))
    # w1 computes until 0.06 and its model would reach s0 at 0.06 + 0.105 = 0.165: 0.015 s after the deadline
    assert [(d.worker, d.server) for d in step.dropped] == [(1, 1)]
    assert step.dropped[0].late_s == pytest.approx(0.015, abs=TOL)
    np.testing.assert_array_equal(step.contributors, [True, False, True, True])
    assert clock.t == 1 and clock.events == []  # admit leaves the clock as it was
    clock.advance(step)
    # s0 averages w0 alone at its deadline 0.15 (it cannot know w1 will not come); s1 when both arrived
    assert _log(clock, 2) == [("up", "w0", 0.125), ("barrier", "s0", 0.125),
                              ("up", "w2", 0.125), ("up", "w3", 0.125), ("barrier", "s1", 0.125),
                              ("down", "w2", 0.23), ("down", "w3", 0.23),
                              ("down", "w0", 0.255), ("down", "w1", 0.255)]
    np.testing.assert_allclose(clock.clocks_s, [0.255, 0.255, 0.23, 0.23], atol=TOL)  # w1 receives the average
    wb = clock.worker_breakdown()
    total = wb["compute_s"] + wb["comm_level_1_s"] + wb["comm_cloud_s"] + wb["wait_s"]
    np.testing.assert_allclose(total, wb["clock_s"], atol=TOL)
    # the next round of s0 counts from 0.255, when its average reached w0 and w1
    clock.advance(clock.admit(Step.at(clock.tree, 3)))
    clock.advance(clock.admit(Step.at(clock.tree, 4)))  # the cloud has no deadline
    step5, step6 = clock.admit(Step.at(clock.tree, 5)), None
    clock.advance(step5)
    step6 = clock.admit(Step.at(clock.tree, 6))
    assert [d.worker for d in step6.dropped] == [1]


def test_nobody_in_time_keeps_the_first_arrival(helpers):
    g = helpers.star(3, period=1)
    g.nodes["w1"]["slowdown"] = 0.5  # 5 ms: the first to arrive (0.005 + 0.105)
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID, deadline_s=0.05)
    step = clock.admit(Step.at(clock.tree, 1))
    assert [d.worker for d in step.dropped] == [0, 2]
    assert [round(d.late_s, 9) for d in step.dropped] == [0.065, 0.065]
    clock.advance(step)
    assert _log(clock, 1)[:2] == [("up", "w1", 0.11), ("barrier", "cloud", 0.11)]


def test_a_deadline_that_drops_nobody_prices_exactly_as_none():
    """Traced links, TCP slow start, partial participation: admit() restores every sampler and window."""
    rng = np.random.default_rng(3)
    masks = rng.random((40, 24)) < 0.7
    masks[:, 0] = True  # every bottom group keeps someone in every round
    opts = dict(model_bytes=1e6, seed=5)
    plain = NetworkClock("edge3level", **opts)
    for t in range(1, 41):
        plain.advance(t, masks[t - 1])
    generous = NetworkClock("edge3level", deadline_s=1e6, **opts)
    steps = _run(generous, 40, masks)
    assert not any(s.dropped for s in steps)
    pd.testing.assert_frame_equal(generous.events_frame(), plain.events_frame(), check_exact=True)
    assert generous.breakdown() == plain.breakdown()
    np.testing.assert_array_equal(generous.clocks_s, plain.clocks_s)


def test_partial_participation_with_a_deadline(helpers):
    # w0 sits the round out; w1 is the straggler; only participants can be dropped
    g = helpers.two_level(groups=(3, 1), periods=(2, 2))
    g.nodes["w1"]["slowdown"] = 10.0  # 0.1 s per iteration: its model would reach the cloud at 0.2 + 0.135
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID, deadline_s=(0.3, INF, INF))
    mask = np.array([False, True, True, True])
    steps = _run(clock, 2, [mask, mask])
    assert [(d.worker, d.server, round(d.late_s, 9)) for d in steps[1].dropped] == [(1, 0, 0.035)]
    np.testing.assert_array_equal(steps[1].contributors, [False, False, True, True])
    ups = sorted(e.node for e in clock.events if e.kind == "up")
    assert ups == ["s0", "s1", "w2", "w3"]  # neither w0 (not drawn) nor w1 (late) sends
    downs = sorted(e.node for e in clock.events if e.kind == "down")
    assert downs == ["s0", "s1", "w0", "w1", "w2", "w3"]  # everyone receives the average
    agg = next(e for e in clock.events if e.kind == "aggregate")
    barrier = next(e for e in clock.events if e.kind == "barrier" and e.node == "cloud")
    assert barrier.end_s < 0.3
    down_s0 = next(e for e in clock.events if e.kind == "down" and e.node == "s0")
    assert down_s0.start_s == pytest.approx(0.3, abs=TOL)  # the cloud averaged at its deadline
    assert agg.node == "cloud"
    np.testing.assert_allclose(clock.worker_breakdown()["compute_s"], [0, 0.2, 0.02, 0.02], atol=TOL)


def test_a_server_nodes_own_deadline(helpers):
    g = helpers.two_level(groups=(2, 2), periods=(4, 2))
    g.nodes["w1"]["slowdown"] = g.nodes["w3"]["slowdown"] = 3.0
    g.nodes["s0"]["deadline_s"] = 0.15  # s1 has none: w3 is waited for
    clock = NetworkClock(g, model_bytes=S, seed=0, window_bytes=None, tcp=FLUID)
    assert clock.has_deadlines
    steps = _run(clock, 2)
    assert [(d.worker, d.server) for d in steps[1].dropped] == [(1, 1)]


def test_a_bad_node_deadline_is_refused(helpers):
    g = helpers.two_level()
    g.nodes["s1"]["deadline_s"] = -1
    with pytest.raises(ValueError, match="node 's1'.*'deadline_s' must be a number of seconds > 0, got -1"):
        NetworkClock(g, model_bytes=S, seed=0)


@pytest.mark.parametrize("bad, match", [(0.0, "deadline_s must be > 0"), ((1.0, 2.0), "one per server")])
def test_bad_deadlines_are_refused(helpers, bad, match):
    with pytest.raises(ValueError, match=match):
        NetworkClock(helpers.star(2), model_bytes=S, seed=0, deadline_s=bad)


def test_drop_records_worker_server_and_lateness():
    assert Drop(1, 2, 0.5) == Drop(worker=1, server=2, late_s=0.5)
