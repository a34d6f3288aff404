"""One synchronous aggregation round: hierarchical reduce up to a server, then broadcast.

A round at top server ``s`` (level ``l``): every participating worker of ``s``'s subtree
sends its model to its bottom server; a server waits for all its participating children
(the barrier), averages (free) and sends one model to its own parent, up to ``s``; then
the average goes back down hop by hop to every worker of the subtree. A transfer over a
hop costs the hop's one-way latency and then its bytes at the flow's max-min share.

Two backends compute the same round:

* ``simpy``: SimPy processes per transfer and server over :class:`FlowNetwork`; general
  (links shared by several transfers, e.g. behind a router).
* ``vector``: numpy over the levels of the tree, each transfer at its solo rate
  min(link capacities, window cap). Exact whenever no shared link can saturate: always
  in a pure tree (each hop has links of its own), and behind routers when the solo
  rates of a phase's transfers sum to at most each shared link's capacity, which
  :func:`solo_rates_fit` checks round by round.

Random draws happen in :func:`plan_round`, before either backend runs, in a fixed order
(bandwidth samples by link id; up-hop RTTs level by level from the workers up; down-hop
RTTs from the top down; left to right within a level), so both backends see identical
samples and the result does not depend on event order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from .flows import FlowNetwork, directed
from .links import LinkModel, window_cap
from .topology import Topology


class TreeIndex:
    """Level-ordered arrays of the aggregation tree. Level d < M holds servers (left to
    right), level M the workers; a node's children are contiguous in the next level."""

    def __init__(self, topo: Topology):
        tree = topo.tree
        self.M = M = tree.n_levels
        self.n_workers = tree.n_workers
        self.level_nodes: list[list[str]] = []
        self.server_pos: dict[int, tuple[int, int]] = {}
        for d in range(M):
            servers = tree.level(d)
            self.level_nodes.append([topo.server_nodes[s.id] for s in servers])
            for pos, s in enumerate(servers):
                self.server_pos[s.id] = (d, pos)
        self.level_nodes.append(list(topo.worker_nodes))
        pos_of = [{n: i for i, n in enumerate(nodes)} for nodes in self.level_nodes]
        self.parent_pos: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        self.child_start: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        for d in range(1, M + 1):
            pp = np.array([pos_of[d - 1][topo.agg_parent[n]] for n in self.level_nodes[d]], dtype=np.int64)
            if np.any(np.diff(pp) < 0):
                raise AssertionError("children must be contiguous in level order")
            self.parent_pos.append(pp)
            counts = np.bincount(pp, minlength=len(self.level_nodes[d - 1]))
            self.child_start.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        # hops: uplink links of each node, bottom first, as CSR per level
        self.hop_ptr: list[np.ndarray] = [np.zeros(2, dtype=np.int64)]
        self.hop_links: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        uses = np.zeros(len(topo.links), dtype=np.int64)
        for d in range(1, M + 1):
            ups = [topo.uplink(n) for n in self.level_nodes[d]]
            self.hop_ptr.append(np.concatenate([[0], np.cumsum([len(u) for u in ups])]).astype(np.int64))
            flat = np.array([l for u in ups for l in u], dtype=np.int64)
            self.hop_links.append(flat)
            np.add.at(uses, flat, 1)
        self.single_link = all(np.all(np.diff(p) == 1) for p in self.hop_ptr[1:])
        # links crossed by two or more hops (behind a router); all their users are siblings
        self.shared_links = np.flatnonzero(uses > 1)
        self.links_shared = bool(len(self.shared_links))
        compact = np.full(len(uses), -1, dtype=np.int64)
        compact[self.shared_links] = np.arange(len(self.shared_links))
        # per level: (node position, shared link index) pairs, sorted by position
        self.share_pos: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        self.share_link: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        for d in range(1, M + 1):
            pos = np.repeat(np.arange(len(self.level_nodes[d])), np.diff(self.hop_ptr[d]))
            keep = compact[self.hop_links[d]] >= 0
            self.share_pos.append(pos[keep])
            self.share_link.append(compact[self.hop_links[d]][keep])
        self._subtrees: dict[int, Subtree] = {}

    def hop_slice(self, d: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(links, per-node counts) of the hops of nodes lo..hi-1 at level d."""
        p = self.hop_ptr[d]
        return self.hop_links[d][p[lo] : p[hi]], np.diff(p[lo : hi + 1])

    def subtree(self, sid: int) -> "Subtree":
        """Index ranges and segment arrays of server ``sid``'s subtree (cached)."""
        if sid not in self._subtrees:
            l, pos = self.server_pos[sid]
            r: list = [None] * l + [(pos, pos + 1)]
            for d in range(l + 1, self.M + 1):
                cs = self.child_start[d]
                r.append((int(cs[r[d - 1][0]]), int(cs[r[d - 1][1]])))
            seg: list = [None] * (self.M + 1)
            pp: list = [None] * (self.M + 1)
            for d in range(l, self.M):
                seg[d] = self.child_start[d + 1][r[d][0] : r[d][1]] - r[d + 1][0]
                pp[d + 1] = self.parent_pos[d + 1][r[d + 1][0] : r[d + 1][1]] - r[d][0]
            hops: list = [None] * (self.M + 1)
            for d in range(l + 1, self.M + 1):
                hops[d] = self.hop_slice(d, *r[d])[0]
            full = [None] * l + [np.ones(r[d][1] - r[d][0], dtype=bool) for d in range(l, self.M + 1)]
            self._subtrees[sid] = Subtree(sid, l, r, seg, pp, hops, np.unique(np.concatenate(hops[l + 1 :])), full)
        return self._subtrees[sid]


@dataclass(frozen=True)
class Subtree:
    """Geometry of one server's subtree; lists are indexed by level d (None outside)."""

    sid: int
    level: int
    ranges: list  # [lo, hi) in level order
    seg: list  # d < M: start of each level-d node's children, relative to ranges[d + 1]
    pp: list  # d > level: each node's parent position, relative to ranges[d - 1]
    hops: list  # d > level: the hop link ids of the level's nodes (CSR order)
    links: np.ndarray  # every link inside the subtree, sorted
    full: list  # all-True activity masks (everyone takes part)


@dataclass
class RoundPlan:
    """Everything random about one round, drawn up front. Lists are indexed by level d."""

    sub: Subtree
    active: list  # bool arrays: participating workers / servers with a participant below
    up_latency_s: list  # per node of the level, NaN where inactive (d > level)
    up_rtt_s: list
    down_latency_s: list
    down_rtt_s: list
    cap_up: np.ndarray  # bytes/s per link id (this round's draws for traced links)
    cap_down: np.ndarray


def plan_round(idx: TreeIndex, links: LinkModel, sub: Subtree, participants: np.ndarray | None) -> RoundPlan | None:
    """Draw the round's samples (``participants`` None: everyone); ``None`` when nobody
    in the subtree takes part."""
    l, M, r = sub.level, idx.M, sub.ranges
    if participants is None:
        active = sub.full
    else:
        act_w = participants[r[M][0] : r[M][1]].copy()  # the log keeps it
        if not act_w.any():
            return None
        active = [None] * (M + 1)
        active[M] = act_w
        for d in range(M - 1, l - 1, -1):  # a server is active iff a child is
            active[d] = np.logical_or.reduceat(active[d + 1], sub.seg[d])
    if links.bw_links.size:
        traced = sub.links[links.bw_member[sub.links] >= 0]
        cap_up, cap_down = links.up_bytes_per_s.copy(), links.down_bytes_per_s.copy()
        u, dn = links.draw_capacities(traced)
        cap_up[traced], cap_down[traced] = u, dn
    else:
        cap_up, cap_down = links.up_bytes_per_s, links.down_bytes_per_s
    up_lat, up_rtt = [None] * (M + 1), [None] * (M + 1)
    for d in range(M, l, -1):  # up: from the workers toward s
        if participants is None:
            rtt = _hop_rtt_s(idx, links, sub, d, None, reverse=False)
        else:
            rtt = np.full(r[d][1] - r[d][0], np.nan)
            on = np.flatnonzero(active[d])
            rtt[on] = _hop_rtt_s(idx, links, sub, d, on, reverse=False)
        up_rtt[d], up_lat[d] = rtt, rtt / 2
    down_lat, down_rtt = [None] * (M + 1), [None] * (M + 1)
    for d in range(l + 1, M + 1):  # down: from s to every node
        rtt = _hop_rtt_s(idx, links, sub, d, None, reverse=True)
        down_rtt[d], down_lat[d] = rtt, rtt / 2
    return RoundPlan(sub, active, up_lat, up_rtt, down_lat, down_rtt, cap_up, cap_down)


def _hop_rtt_s(idx: TreeIndex, links: LinkModel, sub: Subtree, d: int, nodes: np.ndarray | None, *,
               reverse: bool) -> np.ndarray:
    """Sum of one RTT draw per link of each listed node's hop (None: all), in seconds."""
    if idx.single_link:
        ids = sub.hops[d] if nodes is None else sub.hops[d][nodes]
        return links.draw_rtt_ms(ids, unique=True) / 1e3
    lo = sub.ranges[d][0]
    if nodes is None:
        nodes = np.arange(sub.ranges[d][1] - lo)
    if len(nodes) == 0:
        return np.empty(0)
    p = idx.hop_ptr[d]
    segs = [idx.hop_links[d][p[lo + i] : p[lo + i + 1]] for i in nodes]
    flat = np.concatenate([s[::-1] if reverse else s for s in segs])
    ms = links.draw_rtt_ms(flat)
    return np.add.reduceat(ms, np.concatenate([[0], np.cumsum([len(s) for s in segs])[:-1]])) / 1e3


@dataclass
class RoundTimes:
    """When things happened in a round; arrays per level d, NaN where nothing happened."""

    up_start: list
    up_end: list
    first_arrival: list  # servers: first active child's arrival
    barrier: list  # servers: last active child's arrival
    down_start: list
    down_end: list


def _hop_rate(idx: TreeIndex, plan: RoundPlan, d: int, up: bool, rtt_s: np.ndarray,
              window_bytes: int | None) -> np.ndarray:
    """Each hop's flow rate when alone: its narrowest link, capped by the window."""
    sub = plan.sub
    cap = plan.cap_up if up else plan.cap_down
    if idx.single_link:
        link_cap = cap[sub.hops[d]]
    else:
        flat, counts = idx.hop_slice(d, *sub.ranges[d])
        link_cap = np.minimum.reduceat(cap[flat], np.concatenate([[0], np.cumsum(counts)[:-1]]))
    return link_cap if window_bytes is None else np.minimum(link_cap, window_cap(rtt_s, window_bytes))


def solo_rates(idx: TreeIndex, plan: RoundPlan, window_bytes: int | None) -> tuple[list, list]:
    """(up, down) rate of every hop's transfer if it had its links to itself, per level."""
    M, l = idx.M, plan.sub.level
    up, down = [None] * (M + 1), [None] * (M + 1)
    for d in range(l + 1, M + 1):
        up[d] = _hop_rate(idx, plan, d, True, plan.up_rtt_s[d], window_bytes)
        down[d] = _hop_rate(idx, plan, d, False, plan.down_rtt_s[d], window_bytes)
    return up, down


def solo_rates_fit(idx: TreeIndex, plan: RoundPlan, up: list, down: list) -> bool:
    """True when no shared link can saturate in this round: on each, the solo rates of
    all its transfers of one phase sum to at most its capacity. Then max-min gives every
    flow its solo rate whatever the timing, and :func:`vector_round` is exact."""
    if not idx.links_shared:
        return True
    sub, n = plan.sub, len(idx.shared_links)
    for d in range(sub.level + 1, idx.M + 1):
        lo, hi = sub.ranges[d]
        pos, link = idx.share_pos[d], idx.share_link[d]
        a, b = np.searchsorted(pos, [lo, hi])
        if a == b:
            continue
        pos, link = pos[a:b] - lo, link[a:b]
        used = np.unique(link)
        up_w = np.where(plan.active[d][pos], up[d][pos], 0.0)  # only participants send up
        for w, cap in ((up_w, plan.cap_up), (down[d][pos], plan.cap_down)):
            total = np.bincount(link, weights=w, minlength=n)
            if np.any(total[used] > cap[idx.shared_links[used]] * (1 + 1e-12)):
                return False
    return True


def vector_round(idx: TreeIndex, plan: RoundPlan, clock_s: np.ndarray, floor_s: float,
                 size_bytes: float, rates: tuple[list, list]) -> RoundTimes:
    """The round in closed form, level by level, each transfer at its solo rate (exact
    when :func:`solo_rates_fit`). Inactive nodes carry NaN, which fmax/fmin skip."""
    M, sub = idx.M, plan.sub
    l, r = sub.level, sub.ranges
    up_rate, down_rate = rates
    t = RoundTimes(*([None] * (M + 1) for _ in range(6)))
    start = clock_s[r[M][0] : r[M][1]].copy()  # the caller's clocks change after the round
    if plan.active[M] is not sub.full[M]:
        start = np.where(plan.active[M], start, np.nan)
    for d in range(M, l - 1, -1):
        if d < M:  # barrier of the level-d servers over their children's arrivals
            t.barrier[d] = start = np.fmax.reduceat(t.up_end[d + 1], sub.seg[d])
            t.first_arrival[d] = np.fmin.reduceat(t.up_end[d + 1], sub.seg[d])
        if d > l:
            t.up_start[d] = start
            t.up_end[d] = start + plan.up_latency_s[d] + size_bytes / up_rate[d]
    ready = np.array([max(float(t.barrier[l][0]), floor_s)])
    for d in range(l + 1, M + 1):
        t.down_start[d] = ready = ready[sub.pp[d]]
        t.down_end[d] = ready = ready + plan.down_latency_s[d] + size_bytes / down_rate[d]
    return t


def simpy_round(idx: TreeIndex, plan: RoundPlan, clock_s: np.ndarray, floor_s: float,
                size_bytes: float, window_bytes: int | None) -> RoundTimes:
    """The round as SimPy processes over a :class:`FlowNetwork` (general: shared links)."""
    M, sub = idx.M, plan.sub
    l, r = sub.level, sub.ranges
    capacity = {directed(int(i), True): float(plan.cap_up[i]) for i in sub.links}
    capacity.update({directed(int(i), False): float(plan.cap_down[i]) for i in sub.links})
    env = simpy.Environment()
    net = FlowNetwork(env, capacity)
    t = RoundTimes(*([None] * (M + 1) for _ in range(6)))
    for d in range(l, M + 1):
        n = r[d][1] - r[d][0]
        for field in ("up_start", "up_end", "first_arrival", "barrier", "down_start", "down_end"):
            getattr(t, field)[d] = np.full(n, np.nan)
    arrived = {d: [env.event() for _ in range(r[d][1] - r[d][0])] for d in range(l + 1, M + 1)}
    ready = {d: [env.event() for _ in range(r[d][1] - r[d][0])] for d in range(l, M + 1)}

    def hop(d: int, i: int, up: bool) -> list[int]:
        ids = [int(x) for x in idx.hop_links[d][idx.hop_ptr[d][r[d][0] + i] : idx.hop_ptr[d][r[d][0] + i + 1]]]
        return [directed(x, True) for x in ids] if up else [directed(x, False) for x in reversed(ids)]

    def send_up(d: int, i: int, start_s: float | None):
        if start_s is not None:
            yield env.timeout(start_s)  # from time 0, so the start is exact
        t.up_start[d][i] = env.now
        rtt = plan.up_rtt_s[d][i]
        cap = float(window_cap(rtt, window_bytes))
        yield net.transfer(hop(d, i, True), size_bytes, latency_s=plan.up_latency_s[d][i], cap_bytes_per_s=cap)
        t.up_end[d][i] = env.now
        arrived[d][i].succeed()

    def server(d: int, i: int):
        c0 = int(sub.seg[d][i])
        c1 = int(sub.seg[d][i + 1]) if i + 1 < len(sub.seg[d]) else r[d + 1][1] - r[d + 1][0]
        kids = [arrived[d + 1][c] for c in range(c0, c1) if plan.active[d + 1][c]]
        yield env.all_of(kids)
        t.first_arrival[d][i] = min(t.up_end[d + 1][c] for c in range(c0, c1) if plan.active[d + 1][c])
        t.barrier[d][i] = env.now
        if d > l:
            yield from send_up(d, i, None)
        else:
            if floor_s > env.now:  # the previous broadcast in this subtree is still arriving
                yield env.timeout(floor_s - env.now)
            ready[l][0].succeed()

    def send_down(d: int, i: int):
        yield ready[d - 1][int(sub.pp[d][i])]
        t.down_start[d][i] = env.now
        cap = float(window_cap(plan.down_rtt_s[d][i], window_bytes))
        yield net.transfer(hop(d, i, False), size_bytes, latency_s=plan.down_latency_s[d][i], cap_bytes_per_s=cap)
        t.down_end[d][i] = env.now
        ready[d][i].succeed()

    lo = r[M][0]
    for i in np.flatnonzero(plan.active[M]):
        env.process(send_up(M, int(i), float(clock_s[lo + i])))
    for d in range(M - 1, l - 1, -1):
        for i in np.flatnonzero(plan.active[d]):
            env.process(server(d, int(i)))
    for d in range(l + 1, M + 1):
        for i in range(r[d][1] - r[d][0]):
            env.process(send_down(d, i))
    env.run()
    return t
