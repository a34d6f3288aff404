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

HyStart (CUBIC's hybrid slow start, in Linux and ns-3) ends slow start when a round's
ACKs arrive as one train: ACKs no more than ``hystart_ack_delta_ms`` apart, from the start
of one round trip to the next. Slow start sends a round's window as a burst that reaches
the receiver at the narrowest link's rate B, so the ACKs of round k-1 and k are one train
once the gap between their bursts, R - window_{k-1} / B, is at most the ACK delta. HyStart
checks only windows of ``hystart_low_window`` segments or more, so the doubling stops in
the first round k whose window is at least ``max(low_window, 2 B (R - delta))``: on a LAN
(R under 2 ms) at 16-20 segments, on longer paths only once the window exceeds the pipe,
where it changes nothing. From there CUBIC's congestion avoidance, before any loss, grows
the window by ``ca_growth`` (1/20: Linux and ns-3 cap CUBIC's ACK count at 20 while no
loss has set a maximum) per round trip; CUBIC's own cubic term adds 0.4 t^3 segments and
is negligible at those round trips. (ns-3 3.44 checks the train before it starts a new
round, as Linux did until 5.7; Linux 5.7 changed its train detection for short-RTT flows,
which had left slow start at ~20 segments. ``hystart_ack_delta_ms=0`` turns the exit off.)

Loss after slow-start overshoot (``loss='overshoot'``): every link direction has a drop-tail
buffer of ``max(buffer_floor_pkts, one BDP of the path)`` packets (the rule of thumb, and
the ns-3 reference's setup). Flows that are in slow start together on a full link
overflow it in the round trip where their windows (each at most what it has left to send)
add up to more than pipe (capacity x RTT) + buffer, and each of them loses. A flow alone
on its bottleneck does not: ns-3's traces show HyStart's delay test ending its slow start
near that point (ssthresh 263, 268, 314, 1174, 2305 segments against pipe + buffer of
234, 213, 308, 1066, 2332), and the few drops that race it cost a fast recovery, not a
timeout; flows starting together leave slow start only at their first loss. The loss is
detected one loaded round trip (RTT + a full buffer's delay) after the overshooting round
ends; ns-3 3.44 has no RACK/TLP, and the retransmissions go into a buffer the other flows
keep full, so some are dropped again and wait for the retransmission timeout, which fires
``rto_min_ms`` + one loaded RTT after the detection. Until then the flow keeps sending new
data (SACK), unless what it has left at the detection fits in its share of pipe + buffer
(the overshoot is then its last flight, recovered without a timeout). After the timeout
it resends ``relost_share`` of its share of pipe + buffer (the retransmissions lost again),
or whatever it has left if more, by slow start from one segment up to half its window
at the loss, then congestion avoidance. At most one such loss per transfer; a connection's
window after it (:class:`Connections`) is what slow start would have left, as without the
loss (idle restart, the default, mostly resets it before the next round anyway). The loss
is priced by the SimPy flow layer (:mod:`testbed.net.overshoot`): it needs a shared full
link, where the closed form is not used. ``loss='none'`` prices exactly as before; a Linux
sender (RACK/TLP) had no such timeouts, so on short shared transfers ``none`` is nearer Linux.

``kind='fluid'`` is the plain max-min model (no slow start, no header overhead), kept
for comparison: it prices exactly as the clock did before TCP was modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

TCP_KINDS = ("tcp", "fluid")
IDLE_POLICIES = ("restart", "keep")
LOSS_MODELS = ("overshoot", "none")


@dataclass(frozen=True)
class TcpModel:
    """How a flow's rate ramps up, and what a connection remembers between rounds."""

    kind: str = "tcp"  # 'tcp' (slow start, headers, idle restart) or 'fluid' (max-min only)
    idle: str = "restart"  # 'restart': window back toward the initial one after an idle RTO; 'keep'
    initial_window: int = 10  # IW in segments (RFC 6928; Linux's default)
    mss_bytes: int = 1448  # payload per segment (1500-byte MTU, TCP timestamps on)
    header_bytes: int = 52  # TCP/IP headers per segment (20 IP + 20 TCP + 12 timestamps)
    rto_min_ms: float = 200.0  # Linux's minimum RTO; RTO = rto_min_ms + RTT
    hystart_low_window: int = 16  # HyStart checks windows of at least this many segments (Linux, ns-3)
    hystart_ack_delta_ms: float = 2.0  # ACKs this close are one train (Linux, ns-3); 0: HyStart never exits
    ca_growth: float = 0.05  # window growth per round trip after HyStart's exit (CUBIC's ACK count <= 20)
    # 'overshoot' (default: how the ns-3 reference recovers; 103 of its 112 scenarios within 10%, 87 without) or 'none'
    loss: str = "overshoot"
    buffer_floor_pkts: int = 100  # drop-tail buffer per link direction: max(this, one path BDP) packets (ns-3 reference)
    relost_share: float = 0.25  # of a flow's share of pipe + buffer, resent after the RTO (ns-3 trace: 34, 25 of 133)

    def __post_init__(self) -> None:
        # messages start with the field's name: ExperimentConfig maps it to its own key
        if self.kind not in TCP_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(TCP_KINDS)}, got {self.kind!r}")
        if self.loss not in LOSS_MODELS:
            raise ValueError(f"loss: must be one of {', '.join(LOSS_MODELS)}, got {self.loss!r}")
        if self.idle not in IDLE_POLICIES:
            raise ValueError(f"idle: must be one of {', '.join(IDLE_POLICIES)}, got {self.idle!r}")
        for key, low, high in (("initial_window", 1, 10**6), ("mss_bytes", 1, 10**6), ("header_bytes", 0, 10**4),
                               ("hystart_low_window", 1, 10**6), ("buffer_floor_pkts", 0, 10**9)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ValueError(f"{key}: must be an integer from {low} to {high:_}, got {value!r}")
        for key, low, high, what in (("rto_min_ms", 0.001, 3.6e6, "a number of ms from 0.001 to 3_600_000"),
                                     ("hystart_ack_delta_ms", 0.0, 3.6e6, "a number of ms from 0 to 3_600_000"),
                                     ("ca_growth", 1e-6, 1.0, "a fraction from 0.000001 to 1"),
                                     ("relost_share", 0.0, 1.0, "a fraction from 0 to 1")):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{key}: must be {what}, got {value!r}")

    @property
    def fluid(self) -> bool:
        return self.kind == "fluid"

    @property
    def lossy(self) -> bool:
        """Whether slow-start overshoot loses (module doc)."""
        return not self.fluid and self.loss == "overshoot"

    def buffer_bytes(self, link_bytes_per_s: float, rtt_s: float) -> float:
        """A link direction's drop-tail buffer, in payload bytes: max(floor, one BDP) packets."""
        return max(self.buffer_floor_pkts * self.mss_bytes, link_bytes_per_s * rtt_s)

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
        hystart = (f"HyStart exit from {self.hystart_low_window} segments on ACK trains with gaps <= "
                   f"{self.hystart_ack_delta_ms:g} ms, then +{self.ca_growth:g} of the window per RTT"
                   if self.hystart_ack_delta_ms > 0 else "no HyStart exit")
        loss = (f"slow-start overshoot of drop-tail buffers of max({self.buffer_floor_pkts} packets, one BDP) by flows "
                f"sharing a link: one RTO each, {self.relost_share:g} of their share resent"
                if self.loss == "overshoot" else "no loss")
        return (f"TCP slow start from {self.initial_window} x {self.mss_bytes} B segments, {self.header_bytes} B "
                f"of headers per segment, idle connections {self.idle} (RTO = {self.rto_min_ms:g} ms + RTT), "
                f"{hystart}; {loss}")

    def exit_round(self, rtt_s, cwnd_bytes, link_bytes_per_s) -> np.ndarray:
        """The round trip from which a flow starting at window ``cwnd_bytes`` stops
        doubling (HyStart; module doc), inf where it never does. ``link_bytes_per_s``:
        the narrowest link's payload rate, which spaces the ACKs."""
        if self.hystart_ack_delta_ms <= 0:
            return np.full(np.broadcast(rtt_s, cwnd_bytes, link_bytes_per_s).shape, np.inf)[()]
        train = np.maximum(self.hystart_low_window * self.mss_bytes,
                           2 * np.multiply(link_bytes_per_s, np.subtract(rtt_s, self.hystart_ack_delta_ms / 1e3)))
        return np.maximum(0.0, np.ceil(np.log2(train / cwnd_bytes)))[()]  # inf on an unlimited link

    def ramp(self, rtt_s: float, cwnd_bytes: float, link_bytes_per_s: float) -> "SlowStart":
        """A flow's window, round trip by round trip, from ``cwnd_bytes``."""
        return SlowStart(rtt_s, cwnd_bytes, float(self.exit_round(rtt_s, cwnd_bytes, link_bytes_per_s)),
                         self.ca_growth)


FLUID = TcpModel(kind="fluid")


class SlowStart(NamedTuple):
    """A flow's rising window: ``cwnd_bytes * 2**k`` in its k-th round trip up to round
    ``exit_round``, then ``1 + growth`` times more every round trip."""

    rtt_s: float
    cwnd_bytes: float
    exit_round: float = math.inf
    growth: float = 0.05

    def window_bytes(self, k: int) -> float:
        if k <= self.exit_round:
            return self.cwnd_bytes * 2.0**k
        return self.cwnd_bytes * 2.0**self.exit_round * (1 + self.growth) ** (k - self.exit_round)


def slow_start_s(size_bytes, peak_bytes_per_s, rtt_s, cwnd_bytes, exit_round=math.inf,
                 growth: float = 0.05) -> np.ndarray:
    """Time (s) a flow alone takes to move ``size_bytes`` from its first byte: in round
    trip k it moves at ``min(peak, SlowStart(rtt, cwnd, exit_round, growth).window_bytes(k) / rtt)``;
    ``peak`` is its rate once the window no longer limits it (narrowest link, window cap
    W / R). NaN in, NaN out.

    In units of the initial window: the flow moves 1, 2, 4, ... windows per round trip
    until 2^k reaches q = peak * R / cwnd (K = ceil(log2 q) round trips), then q. After
    m = min(floor(log2(size / cwnd + 1)), K) whole round trips it has moved 2^m - 1
    windows, and the rest goes at min(2^m, q) windows per round trip. If the doubling
    stops at round e < K and the flow outlasts it, the e + 1 rounds move 2^(e+1) - 1
    windows and round e + j moves a h^j (a = 2^e, h = 1 + growth) until that reaches q."""
    size, peak, rtt, cwnd, exit_round = map(np.asarray, (size_bytes, peak_bytes_per_s, rtt_s, cwnd_bytes, exit_round))
    if not rtt.all():  # some path without a round trip: no ramp there
        ramped = _slow_start_s(size, peak, np.where(rtt == 0, 1.0, rtt), cwnd, exit_round, growth)
        return np.where(rtt == 0, size / peak, ramped)
    return _slow_start_s(size, peak, rtt, cwnd, exit_round, growth)


def _slow_start_s(size: np.ndarray, peak: np.ndarray, rtt: np.ndarray, cwnd: np.ndarray, e: np.ndarray,
                  growth: float) -> np.ndarray:
    window_rate = cwnd / rtt  # one initial window per round trip, bytes/s
    q = peak / window_rate
    s = size / cwnd
    big_k = np.ceil(np.log2(np.maximum(q, 1.0)))
    m = np.minimum(np.floor(np.log2(s + 1)), big_k)
    p = np.exp2(m)
    doubling = m * rtt + (size + cwnd * (1 - p)) / (window_rate * np.minimum(p, q))
    late = (big_k > e) & (s > np.exp2(e + 1) - 1)  # the window stops doubling before the flow is done
    if not late.any():
        return doubling
    h = 1.0 + growth
    with np.errstate(invalid="ignore", over="ignore"):  # inf exit rounds, where ``late`` is False
        a = np.exp2(e)
        rest = s - (2 * a - 1)  # after rounds 0..e
        top = np.ceil(np.log(q / a) / np.log(h))  # first round e + j whose window reaches q
        j = np.minimum(np.floor(np.log1p(rest * growth / (a * h)) / np.log(h)), top - 1)
        moved = a * h * np.expm1(j * np.log(h)) / growth
        grown = (e + 1 + j + (rest - moved) / np.minimum(a * h ** (j + 1), q)) * rtt
    return np.where(late, grown, doubling)


def window_after(cwnd_bytes, size_bytes, window_bytes: int | None, exit_round=math.inf,
                 growth: float = 0.05) -> np.ndarray:
    """A connection's window after moving ``size_bytes``: slow start adds every
    acknowledged byte until its exit round, congestion avoidance ``growth`` of each,
    up to the socket window W."""
    doubled = np.multiply(cwnd_bytes, np.exp2(exit_round) - 1)  # bytes acknowledged in rounds 0..e-1
    grown = np.add(cwnd_bytes, np.minimum(size_bytes, doubled), dtype=float) \
        + growth * np.maximum(np.subtract(size_bytes, doubled), 0.0)
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

    def finish(self, up: bool, d: int, nodes, cwnd_bytes, size_bytes: float, last_sent_s, exit_round=math.inf) -> None:
        """Record finished transfers: their windows grew with the bytes sent (slow start
        up to ``exit_round``), and the connections went idle at ``last_sent_s`` (when
        the last byte left)."""
        self._cwnd[up][d][nodes] = window_after(cwnd_bytes, size_bytes, self.window_bytes, exit_round,
                                                self.model.ca_growth)
        self._last_sent[up][d][nodes] = last_sent_s
