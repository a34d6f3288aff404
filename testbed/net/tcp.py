"""TCP as the clock sees it: slow start, the socket window, header overhead, idle restart.

A transfer over a path of round-trip time R first waits the one-way latency R / 2; then
its flow, which starts with congestion window c0 bytes, moves during its k-th round
trip (k = 0, 1, ...) at most ``c0 * 2**k / R`` bytes/s (slow start doubles the window
every round trip), never more than ``W / R`` (the socket window W) and never more than
its max-min share of the links, whose capacities count payload only: a segment of MSS
payload bytes occupies MSS + header bytes of line rate. This is the fluid limit of
slow start's staircase; it needs no fitted parameter, and ``bench/netval`` measures it
against packet-level TCP (ns-3).

Between transfers a connection (a node and its aggregation parent, one per direction)
keeps its window: slow start grows it by the bytes acknowledged, so after moving S bytes
from c0 it is ``min(W, c0 + S)``. ``idle='restart'`` (Linux's default,
``tcp_slow_start_after_idle``) halves it for every RTO of idle time past the first,
down to the initial window, with RTO = ``rto_min_ms`` + R; ``idle='keep'`` never
restarts (a warm connection). Connections exist before the first round (no handshake is
charged).

``kind='fluid'`` is the plain max-min model (no slow start, no header overhead), kept
for comparison: it prices exactly as the clock did before TCP was modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TCP_KINDS = ("tcp", "fluid")
IDLE_POLICIES = ("restart", "keep")


@dataclass(frozen=True)
class TcpModel:
    """How a flow's rate ramps up, and what a connection remembers between rounds."""

    kind: str = "tcp"  # 'tcp' (slow start, headers, idle restart) or 'fluid' (max-min only)
    idle: str = "restart"  # 'restart': window back toward the initial one after an idle RTO; 'keep'
    initial_window: int = 10  # IW in segments (RFC 6928; Linux's default)
    mss_bytes: int = 1448  # payload per segment (1500-byte MTU, TCP timestamps on)
    header_bytes: int = 52  # TCP/IP headers per segment (20 IP + 20 TCP + 12 timestamps)
    rto_min_ms: float = 200.0  # Linux's minimum RTO; RTO = rto_min_ms + RTT

    def __post_init__(self) -> None:
        # messages start with the field's name: ExperimentConfig maps it to its own key
        if self.kind not in TCP_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(TCP_KINDS)}, got {self.kind!r}")
        if self.idle not in IDLE_POLICIES:
            raise ValueError(f"idle: must be one of {', '.join(IDLE_POLICIES)}, got {self.idle!r}")
        for key, low, high in (("initial_window", 1, 10**6), ("mss_bytes", 1, 10**6), ("header_bytes", 0, 10**4)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ValueError(f"{key}: must be an integer from {low} to {high:_}, got {value!r}")
        if isinstance(self.rto_min_ms, bool) or not isinstance(self.rto_min_ms, (int, float)) \
                or not (math.isfinite(self.rto_min_ms) and 0.001 <= self.rto_min_ms <= 3.6e6):
            raise ValueError(f"rto_min_ms: must be a number of ms from 0.001 to 3_600_000, got {self.rto_min_ms!r}")

    @property
    def fluid(self) -> bool:
        return self.kind == "fluid"

    @property
    def initial_window_bytes(self) -> float:
        return float(self.initial_window * self.mss_bytes)

    @property
    def payload_share(self) -> float:
        """Share of a link's line rate that carries payload (1 in the fluid model)."""
        return 1.0 if self.fluid else self.mss_bytes / (self.mss_bytes + self.header_bytes)

    def describe(self) -> str:
        """One line for reports and logs."""
        if self.fluid:
            return "fluid max-min flows (no slow start, no header overhead)"
        return (f"TCP slow start from {self.initial_window} x {self.mss_bytes} B segments, {self.header_bytes} B "
                f"of headers per segment, idle connections {self.idle} (RTO = {self.rto_min_ms:g} ms + RTT)")


FLUID = TcpModel(kind="fluid")


def slow_start_s(size_bytes, peak_bytes_per_s, rtt_s, cwnd_bytes) -> np.ndarray:
    """Time (s) a flow alone takes to move ``size_bytes`` from its first byte: in round
    trip k it moves at ``min(peak, cwnd * 2**k / rtt)``; ``peak`` is its rate once the
    window no longer limits it (narrowest link, window cap W / R). NaN in, NaN out.

    In units of the initial window: the flow moves 1, 2, 4, ... windows per round trip
    until 2^k reaches q = peak * R / cwnd (K = ceil(log2 q) round trips), then q. After
    m = min(floor(log2(size / cwnd + 1)), K) whole round trips it has moved 2^m - 1
    windows, and the rest goes at min(2^m, q) windows per round trip."""
    size, peak, rtt, cwnd = map(np.asarray, (size_bytes, peak_bytes_per_s, rtt_s, cwnd_bytes))
    if not rtt.all():  # some path without a round trip: no ramp there
        return np.where(rtt == 0, size / peak, _slow_start_s(size, peak, np.where(rtt == 0, 1.0, rtt), cwnd))
    return _slow_start_s(size, peak, rtt, cwnd)


def _slow_start_s(size: np.ndarray, peak: np.ndarray, rtt: np.ndarray, cwnd: np.ndarray) -> np.ndarray:
    window_rate = cwnd / rtt  # one initial window per round trip, bytes/s
    q = peak / window_rate
    m = np.minimum(np.floor(np.log2(size / cwnd + 1)), np.ceil(np.log2(np.maximum(q, 1.0))))
    p = np.exp2(m)
    return m * rtt + (size + cwnd * (1 - p)) / (window_rate * np.minimum(p, q))


def window_after(cwnd_bytes, size_bytes, window_bytes: int | None) -> np.ndarray:
    """A connection's window after moving ``size_bytes``: slow start adds every
    acknowledged byte, up to the socket window W."""
    grown = np.add(cwnd_bytes, size_bytes, dtype=float)
    return grown if window_bytes is None else np.minimum(grown, float(window_bytes))


class Connections:
    """The congestion windows of every connection of a tree between rounds: one per node
    of each level d >= 1 and direction (up: to its aggregation parent), indexed by the
    node's position in its level (:class:`~testbed.net.forest.TreeIndex`)."""

    def __init__(self, model: TcpModel, level_sizes: list[int], window_bytes: int | None):
        self.model = model
        self.window_bytes = window_bytes
        iw = model.initial_window_bytes
        self._cwnd = {up: [np.full(n, iw) for n in level_sizes] for up in (True, False)}
        self._last_sent = {up: [np.full(n, -np.inf) for n in level_sizes] for up in (True, False)}

    def start_windows(self, up: bool, d: int, nodes, start_s, rtt_s) -> np.ndarray:
        """Windows at the start of new transfers on these nodes' connections."""
        cwnd = self._cwnd[up][d][nodes]
        if self.model.idle == "keep":
            return cwnd
        idle = start_s - self._last_sent[up][d][nodes]  # inf for a connection that never sent
        rtos = np.ceil(idle / (rtt_s + self.model.rto_min_ms / 1e3))
        # halved once per RTO past the first (Linux's tcp_cwnd_restart), never below IW
        return np.maximum(self.model.initial_window_bytes, cwnd * np.minimum(np.exp2(1.0 - rtos), 1.0))

    def finish(self, up: bool, d: int, nodes, cwnd_bytes, size_bytes: float, last_sent_s) -> None:
        """Record finished transfers: their windows grew by the bytes sent, and the
        connections went idle at ``last_sent_s`` (when the last byte left)."""
        self._cwnd[up][d][nodes] = window_after(cwnd_bytes, size_bytes, self.window_bytes)
        self._last_sent[up][d][nodes] = last_sent_s
