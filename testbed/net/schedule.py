"""One synchronous aggregation round: hierarchical reduce up to a server, then broadcast.

A round at top server ``s`` (level ``l``): every participating worker of ``s``'s subtree
sends its model to its bottom server; a server waits for all its participating children
(the barrier), averages (free) and sends one model to its own parent, up to ``s``; then
the average goes back down hop by hop to every worker of the subtree. A transfer over a
hop costs the hop's one-way latency and then its bytes at the flow's max-min share.

The servers that complete an averaging at the same iteration head disjoint subtrees
(:meth:`AggregationTree.top_aggregating`), so their rounds are independent: a
:class:`Forest` groups those on one level and every function here prices all of them
at once, level by level (100 edge servers cost about what one does).

Two backends compute the same round:

* ``simpy``: SimPy processes per transfer and server over :class:`FlowNetwork`; general
  (links shared by several transfers, e.g. behind a router).
* ``vector``: numpy over the levels of the tree, each transfer at its solo rate
  min(link capacities, window cap), ramped up by slow start and HyStart's exit
  (:mod:`testbed.net.tcp`) unless the model is fluid. Exact whenever no shared link can saturate: always
  in a pure tree (each hop has links of its own), and behind routers when the solo
  rates of a phase's transfers sum to at most each shared link's capacity, which
  :func:`solo_rates_fit` checks round by round.

Random draws happen in :func:`plan_round`, before either backend runs, in a fixed order
(bandwidth samples by link id; up-hop RTTs level by level from the workers up; down-hop
RTTs from the top down; left to right within a level). Every link has its own sampler
and belongs to one subtree, so each link sees the same sequence of draws whether its
subtree is priced alone or in a forest, and the result does not depend on event order.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import simpy

from .flows import FlowNetwork, directed
from .forest import Forest, TreeIndex, concat_ranges, segment_starts
from .links import LinkModel, window_cap
from .tcp import Connections, slow_start_s


@dataclass
class RoundPlan:
    """Everything random about one round, drawn up front. Lists are indexed by level d."""

    forest: Forest
    everyone: bool  # everyone takes part: ``active`` holds the forest's all-True masks
    active: list  # bool arrays: participating workers / servers with a participant below
    up_latency_s: list  # per node of the level, NaN where inactive (d > level)
    up_rtt_s: list
    down_latency_s: list
    down_rtt_s: list
    cap_up: np.ndarray  # bytes/s per link id (this round's draws for traced links)
    cap_down: np.ndarray


def plan_round(idx: TreeIndex, links: LinkModel, forest: Forest, participants: np.ndarray | None) -> RoundPlan:
    """Draw the round's samples (``participants`` None: everyone). Every subtree of the
    forest must have a participant (a subtree without one sends nothing)."""
    l, M = forest.level, idx.M
    active: list = [None] * (M + 1)
    if participants is None:
        active[l:] = [level.everyone for level in forest.levels]
    else:
        active[M] = participants[forest[M].nodes]  # a copy: the log keeps it
        for d in range(M - 1, l - 1, -1):  # a server is active iff a child is
            active[d] = np.logical_or.reduceat(active[d + 1], forest[d].children)
    if links.bw_links.size:
        traced = forest.links[links.bw_member[forest.links] >= 0]
        cap_up, cap_down = links.up_bytes_per_s.copy(), links.down_bytes_per_s.copy()
        u, dn = links.draw_capacities(traced)
        cap_up[traced], cap_down[traced] = u, dn
    else:
        cap_up, cap_down = links.up_bytes_per_s, links.down_bytes_per_s
    up_lat, up_rtt = [None] * (M + 1), [None] * (M + 1)
    for d in range(M, l, -1):  # up: from the workers toward the top
        if participants is None:
            rtt = _hop_rtt_s(links, forest, d, None, reverse=False)
        else:
            rtt = np.full(len(forest[d].nodes), np.nan)
            on = np.flatnonzero(active[d])
            rtt[on] = _hop_rtt_s(links, forest, d, on, reverse=False)
        up_rtt[d], up_lat[d] = rtt, rtt / 2
    down_lat, down_rtt = [None] * (M + 1), [None] * (M + 1)
    for d in range(l + 1, M + 1):  # down: from the top to every node
        rtt = _hop_rtt_s(links, forest, d, None, reverse=True)
        down_rtt[d], down_lat[d] = rtt, rtt / 2
    return RoundPlan(forest, participants is None, active, up_lat, up_rtt, down_lat, down_rtt, cap_up, cap_down)


def _hop_rtt_s(links: LinkModel, forest: Forest, d: int, nodes: np.ndarray | None, *,
               reverse: bool) -> np.ndarray:
    """Sum of one RTT draw per link of each listed node's hop (None: all), in seconds."""
    flat, seg = forest[d].hops_down if reverse else forest[d].hops, forest[d].hop_seg
    if seg is None:  # one link per hop, none shared
        return links.draw_rtt_ms(flat if nodes is None else flat[nodes], unique=True) / 1e3
    if nodes is not None:
        if len(nodes) == 0:
            return np.empty(0)
        counts = np.diff(seg, append=len(flat))[nodes]
        flat, seg = flat[concat_ranges(seg[nodes], counts)], segment_starts(counts)
    return np.add.reduceat(links.draw_rtt_ms(flat), seg) / 1e3  # a shared link draws once per hop


@dataclass
class RoundTimes:
    """When things happened in a round; arrays per level d, NaN where nothing happened."""

    up_start: list
    up_end: list
    first_arrival: list  # servers: first active child's arrival
    barrier: list  # servers: last active child's arrival
    down_start: list
    down_end: list


def _hop_rate(plan: RoundPlan, d: int, up: bool, rtt_s: np.ndarray, window_bytes: int | None) -> np.ndarray:
    """Each hop's flow rate when alone: its narrowest link, capped by the window."""
    forest = plan.forest
    link_cap = (plan.cap_up if up else plan.cap_down)[forest[d].hops]
    if forest[d].hop_seg is not None:
        link_cap = np.minimum.reduceat(link_cap, forest[d].hop_seg)
    return link_cap if window_bytes is None else np.minimum(link_cap, window_cap(rtt_s, window_bytes))


def solo_rates(plan: RoundPlan, window_bytes: int | None) -> tuple[list, list]:
    """(up, down) rate of every hop's transfer if it had its links to itself, per level."""
    M = len(plan.active) - 1
    up, down = [None] * (M + 1), [None] * (M + 1)
    for d in range(plan.forest.level + 1, M + 1):
        up[d] = _hop_rate(plan, d, True, plan.up_rtt_s[d], window_bytes)
        down[d] = _hop_rate(plan, d, False, plan.down_rtt_s[d], window_bytes)
    return up, down


def solo_rates_fit(idx: TreeIndex, plan: RoundPlan, up: list, down: list) -> bool:
    """True when no shared link can saturate in this round: on each, the solo rates of
    all its transfers of one phase sum to at most its capacity. Then max-min gives every
    flow its solo rate whatever the timing, and :func:`vector_round` is exact. (A shared
    link's users are siblings, so they are all in one subtree of the forest.)"""
    if not idx.links_shared:
        return True
    n = len(idx.shared_links)
    for d in range(plan.forest.level + 1, idx.M + 1):
        pos, link = plan.forest[d].share
        if not len(pos):
            continue
        used = np.unique(link)
        up_w = np.where(plan.active[d][pos], up[d][pos], 0.0)  # only participants send up
        for w, cap in ((up_w, plan.cap_up), (down[d][pos], plan.cap_down)):
            total = np.bincount(link, weights=w, minlength=n)
            if np.any(total[used] > cap[idx.shared_links[used]] * (1 + 1e-12)):
                return False
    return True


def vector_round(plan: RoundPlan, clock_s: np.ndarray, floor_s: np.ndarray, size_bytes: float,
                 rates: tuple[list, list], conn: Connections | None = None) -> RoundTimes:
    """The round in closed form, level by level, each transfer at its solo rate (exact
    when :func:`solo_rates_fit`). Inactive nodes carry NaN, which fmax/fmin skip.
    ``floor_s``: per subtree, when its previous broadcast arrived everywhere; ``conn``:
    the TCP connections' windows (None: fluid flows, at their rate from the first byte)."""
    forest = plan.forest
    M, l = len(plan.active) - 1, forest.level
    up_rate, down_rate = rates
    t = RoundTimes(*([None] * (M + 1) for _ in range(6)))
    start = clock_s[forest[M].nodes]  # a copy: the caller's clocks change after the round
    if not plan.everyone:
        start = np.where(plan.active[M], start, np.nan)
    for d in range(M, l - 1, -1):
        if d < M:  # barrier of the level-d servers over their children's arrivals
            t.barrier[d] = start = np.fmax.reduceat(t.up_end[d + 1], forest[d].children)
            t.first_arrival[d] = np.fmin.reduceat(t.up_end[d + 1], forest[d].children)
        if d > l:
            t.up_start[d] = start
            if conn is None:
                t.up_end[d] = start + plan.up_latency_s[d] + size_bytes / up_rate[d]
            else:
                flow_s = _tcp_flows_s(conn, True, d, plan, start, size_bytes, up_rate[d],
                                      None if plan.everyone else plan.active[d])
                t.up_end[d] = start + plan.up_latency_s[d] + flow_s
    ready = np.maximum(t.barrier[l], floor_s)
    for d in range(l + 1, M + 1):
        t.down_start[d] = ready = ready[forest[d].parent]
        if conn is None:
            t.down_end[d] = ready = ready + plan.down_latency_s[d] + size_bytes / down_rate[d]
        else:
            flow_s = _tcp_flows_s(conn, False, d, plan, ready, size_bytes, down_rate[d], None)
            t.down_end[d] = ready = ready + plan.down_latency_s[d] + flow_s
    return t


def _tcp_flows_s(conn: Connections, up: bool, d: int, plan: RoundPlan, start_s: np.ndarray, size_bytes: float,
                 rate: np.ndarray, active: np.ndarray | None) -> np.ndarray:
    """Slow-start flow times of level d's transfers starting at ``start_s`` (NaN where
    ``active`` is False: no transfer; None: every node sends); their connections' windows are updated."""
    span = plan.forest[d].span
    rtt = (plan.up_rtt_s if up else plan.down_rtt_s)[d]
    cwnd = conn.start_windows(up, d, span, start_s, rtt)
    exit_round = conn.model.exit_round(rtt, cwnd, _hop_rate(plan, d, up, rtt, None))
    flow_s = slow_start_s(size_bytes, rate, rtt, cwnd, exit_round, conn.model.ca_growth)
    if active is None:
        conn.finish(up, d, span, cwnd, size_bytes, start_s + flow_s, exit_round)
    else:
        conn.finish(up, d, plan.forest[d].nodes[active], cwnd[active], size_bytes, (start_s + flow_s)[active],
                    exit_round[active])
    return flow_s


def simpy_round(plan: RoundPlan, clock_s: np.ndarray, floor_s: np.ndarray, size_bytes: float,
                window_bytes: int | None, conn: Connections | None = None) -> RoundTimes:
    """The round as SimPy processes over a :class:`FlowNetwork` (general: shared links).
    The forest's subtrees share no link, so their flows never meet. ``conn``: as in
    :func:`vector_round`."""
    forest = plan.forest
    M, l = len(plan.active) - 1, forest.level
    capacity = {directed(int(i), True): float(plan.cap_up[i]) for i in forest.links}
    capacity.update({directed(int(i), False): float(plan.cap_down[i]) for i in forest.links})
    env = simpy.Environment()
    net = FlowNetwork(env, capacity, None if conn is None else conn.model)
    t = RoundTimes(*([None] * (M + 1) for _ in range(6)))
    size = [len(forest[d].nodes) if d >= l else 0 for d in range(M + 1)]
    for d in range(l, M + 1):
        for field in ("up_start", "up_end", "first_arrival", "barrier", "down_start", "down_end"):
            getattr(t, field)[d] = np.full(size[d], np.nan)
    arrived = {d: [env.event() for _ in range(size[d])] for d in range(l + 1, M + 1)}
    ready = {d: [env.event() for _ in range(size[d])] for d in range(l, M + 1)}

    def hop(d: int, i: int, up: bool) -> list[int]:
        return [directed(int(x), up) for x in forest.hop(d, i, up=up)]

    def transfer(d: int, i: int, up: bool):
        """One hop's transfer, from now; with TCP, on its connection's window."""
        rtt, latency = (plan.up_rtt_s if up else plan.down_rtt_s)[d][i], (plan.up_latency_s if up else plan.down_latency_s)[d][i]
        cap = float(window_cap(rtt, window_bytes))
        if conn is None:
            yield net.transfer(hop(d, i, up), size_bytes, latency_s=latency, cap_bytes_per_s=cap)
            return
        node, links = forest[d].nodes[i : i + 1], hop(d, i, up)
        cwnd = float(conn.start_windows(up, d, node, env.now, rtt)[0])
        ramp = conn.model.ramp(float(rtt), cwnd, min(capacity[link] for link in links))
        yield net.transfer(links, size_bytes, latency_s=latency, cap_bytes_per_s=cap, slow_start=ramp)
        conn.finish(up, d, node, cwnd, size_bytes, env.now - latency, ramp.exit_round)

    def send_up(d: int, i: int, start_s: float | None):
        if start_s is not None:
            yield env.timeout(start_s)  # from time 0, so the start is exact
        t.up_start[d][i] = env.now
        yield from transfer(d, i, True)
        t.up_end[d][i] = env.now
        arrived[d][i].succeed()

    def server(d: int, i: int):
        children = forest[d].children
        c0 = int(children[i])
        c1 = int(children[i + 1]) if i + 1 < len(children) else size[d + 1]
        kids = [arrived[d + 1][c] for c in range(c0, c1) if plan.active[d + 1][c]]
        yield env.all_of(kids)
        t.first_arrival[d][i] = min(t.up_end[d + 1][c] for c in range(c0, c1) if plan.active[d + 1][c])
        t.barrier[d][i] = env.now
        if d > l:
            yield from send_up(d, i, None)
        else:
            if floor_s[i] > env.now:  # the previous broadcast in this subtree is still arriving
                yield env.timeout(floor_s[i] - env.now)
            ready[l][i].succeed()

    def send_down(d: int, i: int):
        yield ready[d - 1][int(forest[d].parent[i])]
        t.down_start[d][i] = env.now
        yield from transfer(d, i, False)
        t.down_end[d][i] = env.now
        ready[d][i].succeed()

    workers = forest[M].nodes
    for i in np.flatnonzero(plan.active[M]):
        env.process(send_up(M, int(i), float(clock_s[workers[i]])))
    for d in range(M - 1, l - 1, -1):
        for i in np.flatnonzero(plan.active[d]):
            env.process(server(d, int(i)))
    for d in range(l + 1, M + 1):
        for i in range(size[d]):
            env.process(send_down(d, i))
    env.run()
    return t
