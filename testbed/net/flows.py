"""Flow-level network model (SimGrid style) on SimPy.

A transfer first waits its path's one-way latency, then becomes a *flow* that moves its
bytes at a rate set by max-min fairness over the links it crosses (progressive filling),
optionally capped per flow (a TCP window: W / RTT) by a cap that may rise in steps (slow
start: the window doubles every round trip, then grows slower after HyStart's exit,
:mod:`testbed.net.tcp`; with the model's ``loss='overshoot'``, flows in slow start together
on a full link may overflow its drop-tail buffer and each wait for a retransmission
timeout, then slow-start again from one segment). Rates are
recomputed whenever a flow starts, ends or its cap steps, but only inside its *zone*:
the flows whose links are connected through shared links (zones merge as flows bridge
them and never split, so a zone always holds every flow a change could reach). Flows on disjoint links never cost each other
anything, and a zone's flows are re-rated together in numpy with one pending timer.

:func:`max_min_rates` is the plain reference implementation (tests check the numpy one
against it). Directed links are integers; :func:`directed` maps a topology link and a
direction to one.
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping, Sequence

import numpy as np
import simpy

from .overshoot import OvershootLoss
from .tcp import SlowStart, TcpModel

MBPS_TO_BYTES_PER_S = 1e6 / 8.0
_REL_TOL = 1e-12  # relative tolerance for "this link is full" / "this flow is done"


def directed(link: int, up: bool) -> int:
    """Id of one direction of topology link ``link`` (links are full duplex)."""
    return 2 * link + (0 if up else 1)


def max_min_rates(
    paths: Sequence[Sequence[int]],
    capacity: Mapping[int, float],
    rate_caps: Sequence[float] | None = None,
) -> list[float]:
    """Max-min fair rates by progressive filling: all unfrozen flows rise together until a
    link saturates or a flow reaches its own cap; those flows freeze; repeat."""
    n = len(paths)
    caps = list(rate_caps) if rate_caps is not None else [math.inf] * n
    rate = [0.0] * n
    users: dict[int, list[int]] = {}
    for i, p in enumerate(paths):
        for link in p:
            users.setdefault(link, []).append(i)
    rem = {link: float(capacity[link]) for link in users}
    count = {link: len(u) for link, u in users.items()}
    active = set(range(n))
    level = 0.0
    while active:
        inc = math.inf
        for link, c in count.items():
            if c:
                inc = min(inc, rem[link] / c)
        for i in active:
            inc = min(inc, caps[i] - level)
        if inc == math.inf:  # no link and no cap: nothing limits these flows
            for i in active:
                rate[i] = math.inf
            break
        level += inc
        frozen = set()
        for link, c in count.items():
            if c:
                rem[link] -= inc * c
                if rem[link] <= _REL_TOL * capacity[link]:
                    frozen.update(i for i in users[link] if i in active)
        for i in active:
            if caps[i] < math.inf and caps[i] - level <= _REL_TOL * caps[i]:
                frozen.add(i)
        for i in sorted(frozen):
            rate[i] = min(level, caps[i])
            active.discard(i)
            for link in paths[i]:
                count[link] -= 1
    return rate


def _fill(inc_slot: np.ndarray, inc_link: np.ndarray, cap_link: np.ndarray, cap_slot: np.ndarray,
          active: np.ndarray) -> np.ndarray:
    """Vectorised progressive filling (the numpy twin of :func:`max_min_rates`): flows are
    slots, ``inc_slot[k]`` uses link ``inc_link[k]``. At each step the next level is the
    lowest fair share (capacity left / active flows) of any link, or the lowest flow cap;
    the flows on links saturated at that level, or capped by it, freeze there."""
    n_links = len(cap_link)
    rate = np.zeros(len(cap_slot))
    act = active.copy()
    frozen = np.zeros(n_links)  # capacity taken by frozen flows, per link
    finite_cap = np.isfinite(cap_slot)
    while act.any():
        on = act[inc_slot]
        n = np.bincount(inc_link[on], minlength=n_links)
        used = n > 0
        fair = np.full(n_links, np.inf)
        fair[used] = (cap_link[used] - frozen[used]) / n[used]
        level = min(fair.min(), cap_slot[act].min())
        if level == np.inf:  # no link and no cap limits these flows
            rate[act] = np.inf
            break
        tol = level * (1 + _REL_TOL)
        hit = np.zeros(len(cap_slot), dtype=bool)
        hit[inc_slot[on & (used & (fair <= tol))[inc_link]]] = True
        freeze = act & (hit | (finite_cap & (cap_slot <= tol)))
        rate[freeze] = np.minimum(level, cap_slot[freeze])
        frozen += np.bincount(inc_link, weights=np.where(freeze[inc_slot], rate[inc_slot], 0.0), minlength=n_links)
        act &= ~freeze
    return rate


class _Flow:
    __slots__ = ("id", "links", "done", "zone", "slot", "rtt_s", "window", "lost", "held", "waiting", "ramp_id")

    def __init__(self, fid: int, links: tuple[int, ...], done: simpy.Event):
        self.id, self.links, self.done = fid, links, done
        self.zone: _Zone | None = None
        self.slot = -1
        self.rtt_s = 0.0
        self.window: float | None = None  # congestion window (bytes) while in slow start, else None
        self.lost = False  # had its (one) overshoot loss
        self.held = False  # an RTO is due: finishing its bytes does not finish the transfer
        self.waiting = False  # held, with all its bytes moved: out of the zone until the RTO
        self.ramp_id = 0  # bumped when slow start restarts: older ramp steps are stale


class _Zone:
    """Flows whose links may be shared, transitively. Links only ever join a zone (zones
    merge, never split), so a zone holds every flow a rate change could reach, and
    flows in different zones never touch each other's rates. State is kept per slot in
    numpy arrays, settled together at each of the zone's events."""

    def __init__(self, capacity: Mapping[int, float]):
        self.capacity = capacity
        self.link_index: dict[int, int] = {}
        self.cap_link: list[float] = []
        self.flows: list[_Flow] = []  # slot -> flow
        self.inc_slot: list[int] = []
        self.inc_link: list[int] = []
        self.remaining = np.empty(0)
        self.rate = np.empty(0)
        self.cap = np.empty(0)
        self.active = np.empty(0, dtype=bool)
        self.n_active = 0
        self.last_s = 0.0
        self.version = 0  # bumped at every change: older finish timers are stale
        self.next_slot = -1
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def settle(self, now: float) -> None:
        """Bytes moved since the last event, at the rates then in force."""
        if self.n_active and now > self.last_s:
            act = self.active
            self.remaining[act] = np.maximum(0.0, self.remaining[act] - self.rate[act] * (now - self.last_s))
        self.last_s = now

    def add(self, flow: _Flow, remaining: float, cap: float) -> None:
        slot = len(self.flows)
        self.flows.append(flow)
        flow.zone, flow.slot = self, slot
        for link in flow.links:
            if link not in self.link_index:
                self.link_index[link] = len(self.cap_link)
                self.cap_link.append(float(self.capacity[link]))
            self.inc_slot.append(slot)
            self.inc_link.append(self.link_index[link])
        if slot == len(self.remaining):  # grow by doubling; spare slots stay inactive
            spare = max(8, slot)
            self.remaining = np.concatenate([self.remaining, np.zeros(spare)])
            self.rate = np.concatenate([self.rate, np.zeros(spare)])
            self.cap = np.concatenate([self.cap, np.full(spare, np.inf)])
            self.active = np.concatenate([self.active, np.zeros(spare, dtype=bool)])
        self.remaining[slot], self.rate[slot], self.cap[slot], self.active[slot] = remaining, 0.0, cap, True
        self.n_active += 1
        self._arrays = None

    def absorb(self, other: "_Zone") -> None:
        """Take over another zone's active flows (both settled to the same time)."""
        for f in other.flows:
            if other.active[f.slot]:
                self.add(f, float(other.remaining[f.slot]), float(other.cap[f.slot]))
        for link in other.link_index:
            if link not in self.link_index:
                self.link_index[link] = len(self.cap_link)
                self.cap_link.append(float(self.capacity[link]))
        other.version += 1
        other.n_active = 0

    def users(self, link: int) -> np.ndarray:
        """Slots of the active flows on ``link``."""
        if self._arrays is None:
            self._arrays = (np.array(self.inc_slot, dtype=np.int64), np.array(self.inc_link, dtype=np.int64),
                            np.array(self.cap_link))
        inc_slot, inc_link, _ = self._arrays
        slots = inc_slot[inc_link == self.link_index[link]]
        return slots[self.active[slots]]

    def rerate(self) -> None:
        if self._arrays is None:
            self._arrays = (np.array(self.inc_slot, dtype=np.int64), np.array(self.inc_link, dtype=np.int64),
                            np.array(self.cap_link))
        self.rate = _fill(*self._arrays, self.cap, self.active)
        self.version += 1

    def compact(self) -> None:
        """Drop finished slots once they outnumber the live ones (keeps arrays small)."""
        live = [(f, float(self.remaining[f.slot]), float(self.cap[f.slot]), float(self.rate[f.slot]))
                for f in self.flows if self.active[f.slot]]
        self.flows, self.inc_slot, self.inc_link = [], [], []
        self.remaining, self.rate, self.cap = np.empty(0), np.empty(0), np.empty(0)
        self.active = np.empty(0, dtype=bool)
        self.n_active = 0
        for f, rem, cap, rate in live:
            self.add(f, rem, cap)
            self.rate[f.slot] = rate


class FlowNetwork:
    """Flows sharing directed links of given capacities (bytes/s), inside a SimPy env."""

    def __init__(self, env: simpy.Environment, capacity_bytes_per_s: Mapping[int, float], tcp: TcpModel | None = None):
        for link, c in capacity_bytes_per_s.items():
            if not c > 0:
                raise ValueError(f"link {link}: capacity must be > 0 bytes/s, got {c}")
        self.env = env
        self.loss = OvershootLoss(self, tcp) if tcp is not None and tcp.lossy else None
        self.capacity = dict(capacity_bytes_per_s)
        self._zone_of: dict[int, _Zone] = {}
        self._ids = itertools.count()
        self.n_recomputes = 0  # flows re-rated in total (a cost counter for tests/benchmarks)

    def transfer(
        self, links: Sequence[int], size_bytes: float, *, latency_s: float = 0.0, cap_bytes_per_s: float = math.inf,
        slow_start: SlowStart | None = None,
    ) -> simpy.Process:
        """A process that waits ``latency_s``, then moves ``size_bytes`` over ``links`` at
        its max-min share, never above ``cap_bytes_per_s`` nor, with ``slow_start``, above
        its window's rate in each round trip; its value is the finish time."""
        for link in links:
            if link not in self.capacity:
                raise ValueError(f"transfer over unknown link {link}")
        if size_bytes < 0 or latency_s < 0:
            raise ValueError(f"size_bytes ({size_bytes}) and latency_s ({latency_s}) must be >= 0")
        return self.env.process(
            self._run(tuple(links), float(size_bytes), float(latency_s), float(cap_bytes_per_s), slow_start)
        )

    def _run(self, links: tuple[int, ...], size: float, latency_s: float, cap: float, slow_start: SlowStart | None):
        if latency_s > 0:
            yield self.env.timeout(latency_s)
        if size > 0:
            flow = _Flow(next(self._ids), links, self.env.event())
            if slow_start is None or not slow_start.rtt_s > 0:
                self._start(flow, size, cap)
            else:
                # past this rate the window cannot bind: the narrowest link or the final cap does
                ceiling = min(cap, min(self.capacity[link] for link in links))
                flow.rtt_s, flow.window = slow_start.rtt_s, slow_start.cwnd_bytes
                self._start(flow, size, min(cap, slow_start.cwnd_bytes / slow_start.rtt_s))
                if self.loss is not None:
                    self.loss.check(flow, cap, ceiling)
                self._ramp(flow, slow_start, 1, cap, ceiling)
            yield flow.done
        return self.env.now

    def _ramp(self, flow: _Flow, ss: SlowStart, k: int, final_cap: float, ceiling: float) -> None:
        """Raise the flow's cap at the start of its k-th round trip (k = 1, 2, ...),
        until the window no longer limits it (nor, with the loss model, can overflow a buffer)."""
        window = ss.window_bytes(k - 1)
        overflowing = self.loss is not None and self.loss.may_overflow(flow, window, final_cap, ceiling)
        if window / ss.rtt_s >= ceiling and not overflowing:
            flow.window = None  # the flow is alone at its rate: no longer a slow-start burst
            return
        ramp_id = flow.ramp_id

        def step(_ev) -> None:
            if flow.done.triggered or flow.ramp_id != ramp_id or flow.waiting:
                return
            zone = flow.zone
            zone.settle(self.env.now)
            zone.cap[flow.slot] = min(final_cap, ss.window_bytes(k) / ss.rtt_s)
            self._rerate(zone)
            if self.loss is not None and flow.window is not None:
                flow.window = ss.window_bytes(k) if k <= ss.exit_round else None
                self.loss.check(flow, final_cap, ceiling)
            self._ramp(flow, ss, k + 1, final_cap, ceiling)

        self.env.timeout(ss.rtt_s).callbacks.append(step)

    def _start(self, flow: _Flow, size: float, cap: float) -> None:
        now = self.env.now
        zones: list[_Zone] = []
        for link in flow.links:
            z = self._zone_of.get(link)
            if z is not None and z not in zones:
                zones.append(z)
        zone = zones[0] if zones else _Zone(self.capacity)
        zone.settle(now)
        for other in zones[1:]:  # the new flow joins zones: merge them
            other.settle(now)
            zone.absorb(other)
            for link in other.link_index:
                self._zone_of[link] = zone
        for link in flow.links:
            self._zone_of[link] = zone
        zone.add(flow, size, cap)
        self._rerate(zone)

    def _rerate(self, zone: _Zone) -> None:
        zone.rerate()
        self.n_recomputes += zone.n_active
        act = np.flatnonzero(zone.active)
        if not len(act):
            return
        dt = zone.remaining[act] / zone.rate[act]
        k = int(np.argmin(dt))
        if dt[k] < math.inf:
            zone.next_slot = int(act[k])
            version = zone.version
            self.env.timeout(float(dt[k])).callbacks.append(lambda _ev: self._on_finish(zone, version))

    def _on_finish(self, zone: _Zone, version: int) -> None:
        if zone.version != version:
            return  # superseded by a later change in this zone
        now = self.env.now
        zone.settle(now)
        tol = _REL_TOL * max(1.0, now)
        # flows due within rounding of now finish together (n flows sharing a link)
        done = zone.active & (zone.remaining <= zone.rate * tol)
        done[zone.next_slot] = True
        zone.remaining[done] = 0.0
        zone.active &= ~done
        zone.n_active -= int(done.sum())
        finished = sorted((zone.flows[s] for s in np.flatnonzero(done)), key=lambda f: f.id)
        for f in finished:
            if f.held:  # an RTO is due (overshoot.py): the transfer is not over
                f.waiting = True
            else:
                f.done.succeed(now)
        if zone.n_active and len(zone.flows) > 2 * zone.n_active + 64:
            zone.compact()
        if zone.n_active:
            self._rerate(zone)
        else:
            zone.version += 1
