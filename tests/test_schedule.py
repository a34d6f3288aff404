"""The Schedule shared by training and the clock, and training under deadlines."""

import math

import networkx as nx
import numpy as np
import pytest
import torch

import testbed
from testbed.experiment.timer import NetworkTimer
from testbed.net import FLUID, NetworkClock
from testbed.schedule import Drop, Schedule, Step
from testbed.tree import AggregationTree

S = 1e5  # model bytes: 0.1 s on the 8 Mbit/s access links


def linear_model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def workers(sizes):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(m, 4, generator=g) + j, torch.randint(0, 3, (m,), generator=g)) for j, m in enumerate(sizes)]


def _two_level(size: int = 2) -> nx.Graph:
    """cloud -> s0 {w0, w1, ...}, s1 {...}: access 5 ms + 8 Mbit/s, uplink 20 ms + 80 Mbit/s, 10 ms compute."""
    g = nx.Graph(name="twolevel")
    g.add_node("cloud", role="cloud", period=4)
    for s in range(2):
        g.add_node(f"s{s}", role="server", period=2)
        g.add_edge("cloud", f"s{s}", latency_ms=20.0, bandwidth_mbps=80.0)
        for w in range(size * s, size * (s + 1)):
            g.add_node(f"w{w}", role="worker", compute_ms=10.0)
            g.add_edge(f"s{s}", f"w{w}", latency_ms=5.0, bandwidth_mbps=8.0)
    return g


def test_steps_name_the_round_and_the_aggregating_servers():
    tree = AggregationTree([[0, 1], [2, 3]], [4, 2])
    schedule = Schedule(tree)
    steps = [schedule.next(t) for t in range(1, 5)]
    assert [(s.t, s.round_start, s.aggregating_servers, s.ends_round) for s in steps] == [
        (1, True, (), False), (2, False, (1, 2), False), (3, False, (), False), (4, False, (0,), True)]
    assert all(s.participants is None and s.contributors is None for s in steps)
    with pytest.raises(ValueError, match="next is 5"):
        schedule.next(7)


def test_participants_come_from_the_same_stream_as_before():
    """One generator, one draw per round start, group by group: the draws training always made."""
    tree = AggregationTree([[0, 1, 2], [3, 4, 5]], [3, 1])
    seq = np.random.SeedSequence(7)
    schedule, rng = Schedule(tree, 0.5, seq), np.random.default_rng(seq)
    for t in range(1, 13):
        step = schedule.next(t)
        if (t - 1) % 3 == 0:
            expected = np.zeros(6, bool)
            for group in ([0, 1, 2], [3, 4, 5]):
                expected[rng.choice(np.array(group), size=2, replace=False)] = True
        np.testing.assert_array_equal(step.participants, expected)


def test_the_record_replays_and_survives_json():
    tree = AggregationTree([[0, 1], [2, 3]], [2, 1])
    schedule = Schedule(tree, 0.5, 3)
    live = []
    for t in range(1, 7):
        step = schedule.next(t)
        if t == 4:
            step = step.without([Drop(int(np.flatnonzero(step.participants)[0]), 0, 0.25)], tree.n_workers)
        schedule.record(step)
        live.append(step)
    schedule.timing = "deadline_s"
    again = Schedule.from_json(tree, schedule.to_json(), "here")
    for a, b in zip(live, again.replay(6)):
        assert (a.t, a.aggregating_servers, a.dropped) == (b.t, b.aggregating_servers, b.dropped)
        np.testing.assert_array_equal(a.contributors, b.contributors)
    assert again.timing == "deadline_s"
    with pytest.raises(ValueError, match="here: recorded for 4 workers and rounds of 2 iterations, but the tree has 4 and 3"):
        Schedule.from_json(AggregationTree([[0, 1], [2, 3]], [3, 1]), schedule.to_json(), "here")


class PreAndPost(testbed.Callback):
    """The stacked weights just before and just after the averages of iteration ``at``."""

    def __init__(self, at):
        self.at, self.steps = at, []

    def on_start(self, run):
        self.run = run

    def admit(self, step):  # called after the clock's admit: the step the engine will average
        if step.t == self.at:
            self.pre = {k: v.clone() for k, v in self.run.engine.state_dict()["params"].items()}
        return step

    def on_step(self, step):
        self.steps.append(step)
        if step.t == self.at:
            self.post = {k: v.clone() for k, v in self.run.engine.state_dict()["params"].items()}


def _deadline_run(deadline_s, iterations=2, participation=1.0, seed=0, size=2):
    g = _two_level(size)
    g.nodes["w1"]["slowdown"] = 3.0  # reaches s0 at 0.165, its deadline is 0.15
    clock = NetworkClock(g, model_bytes=S, seed=seed, window_bytes=None, tcp=FLUID, deadline_s=deadline_s)
    probe = PreAndPost(2)
    tree = [list(range(size)), list(range(size, 2 * size))]
    result = testbed.simulate(linear_model(), workers([8] * 2 * size), tree, [4, 2], iterations=iterations,
                              lr=0.1, batch_size=4, participation=participation, seed=seed,
                              callbacks=[NetworkTimer(clock), probe])
    return result, probe, clock


def test_a_dropped_straggler_is_left_out_of_its_group_average_and_resynchronised():
    result, probe, clock = _deadline_run((math.inf, 0.15, 0.15))
    (step,) = [s for s in probe.steps if s.t == 2]
    assert step.dropped == (Drop(1, 1, pytest.approx(0.015)),)
    for k, pre in probe.pre.items():
        post = probe.post[k]
        torch.testing.assert_close(post[0], pre[0])  # s0's average is w0 alone
        torch.testing.assert_close(post[1], pre[0])  # w1 receives it (resynchronised)
        torch.testing.assert_close(post[2], (pre[2] + pre[3]) / 2)
        torch.testing.assert_close(post[3], post[2])
    assert result.schedule.drops == {2: step.dropped} and result.schedule.timing == "deadline_s"
    assert clock.now_s == pytest.approx(0.255)


def test_a_deadline_that_drops_nobody_trains_and_prices_as_no_deadline():
    plain, _, plain_clock = _deadline_run(None, iterations=12)
    generous, _, clock = _deadline_run(10.0, iterations=12)
    assert not generous.schedule.drops
    for k, v in plain.global_state.items():
        assert torch.equal(v, generous.global_state[k])
    assert plain.metrics.equals(generous.metrics)
    assert plain_clock.events_frame().equals(clock.events_frame())


def test_deadline_runs_are_deterministic_and_combine_with_partial_participation():
    a, pa, _ = _deadline_run((math.inf, 0.15, 0.15), iterations=16, participation=0.6, seed=1, size=3)
    b, pb, _ = _deadline_run((math.inf, 0.15, 0.15), iterations=16, participation=0.6, seed=1, size=3)
    assert a.schedule.to_json() == b.schedule.to_json()
    assert a.metrics.equals(b.metrics)
    for s in pa.steps:  # only a round's participants can be dropped
        assert all(s.participants[d.worker] for d in s.dropped)
    assert any(s.dropped for s in pa.steps) and any(s.participants is not None for s in pa.steps)


def test_a_clock_for_another_tree_is_refused():
    clock = NetworkClock(_two_level(), model_bytes=S, seed=0)
    with pytest.raises(ValueError, match="is not the clock's"):
        testbed.simulate(linear_model(), workers([8] * 4), [[0, 1], [2, 3]], [2, 1], iterations=2, lr=0.1,
                         callbacks=[NetworkTimer(clock)])


def test_step_without_drops_is_the_step():
    step = Step.at(AggregationTree([0, 1], [1]), 1)
    assert step.without([], 2) is step
