"""Loss after slow-start overshoot, on a :class:`~testbed.net.flows.FlowNetwork`.

Flows in slow start together on a full link overflow its drop-tail buffer in the round
trip where their windows add up to more than pipe + buffer; each then waits for one
retransmission timeout and slow-starts again from one segment (the model, its constants
and the ns-3 evidence for them: :mod:`testbed.net.tcp`). A flow alone never loses here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .tcp import SlowStart, TcpModel

if TYPE_CHECKING:
    from .flows import FlowNetwork, _Flow


class OvershootLoss:
    """The overshoot checks and the RTO recovery of one flow network's flows."""

    def __init__(self, net: "FlowNetwork", tcp: TcpModel):
        self.net, self.tcp = net, tcp

    def may_overflow(self, flow: "_Flow", window: float, final_cap: float, ceiling: float) -> bool:
        """Whether a flow in slow start at ``window`` must keep stepping its window past the
        link rate: until it exceeds its narrowest link's pipe + buffer (or W) it may still
        overflow a buffer it shares (a flow alone stops here: HyStart ends its slow start)."""
        rtt = flow.rtt_s
        return (flow.window is not None and not flow.lost and window < final_cap * rtt
                and window <= ceiling * rtt + self.tcp.buffer_bytes(ceiling, rtt)
                and any(len(flow.zone.users(link)) > 1 for link in flow.links))

    def check(self, flow: "_Flow", final_cap: float, ceiling: float) -> None:
        """Check once every flow's window step due now has been taken (events at one time
        run in order: a zero delay puts the check after them), so flows that double
        together are judged on their new windows whatever their order."""
        if flow.window is not None and not flow.lost:
            self.net.env.timeout(0).callbacks.append(lambda _ev: self._overshoot(flow, final_cap, ceiling))

    def _overshoot(self, flow: "_Flow", final_cap: float, ceiling: float) -> None:
        """After ``flow``'s window grew: on each full link of its path where two or more flows
        are in slow start, do their windows (at most what each has left) overflow pipe + buffer?"""
        if flow.window is None or flow.lost or flow.done.triggered or flow.waiting:
            return
        zone = flow.zone
        zone.settle(self.net.env.now)
        for link in flow.links:
            slots = zone.users(link)
            if len(slots) < 2:
                continue
            flows = [zone.flows[s] for s in slots]
            ramping = [f for f in flows if f.window is not None and not f.lost]
            capacity = self.net.capacity[link]
            if len(ramping) < 2 or zone.rate[slots].sum() < capacity * (1 - 1e-9):
                continue  # a flow alone leaves slow start by HyStart; a link not full has no queue
            rtt = max(f.rtt_s for f in flows)  # the buffer is sized for the longest path through it
            room = capacity * rtt + self.tcp.buffer_bytes(capacity, rtt)
            inflight = sum(min(f.window, float(zone.remaining[f.slot])) if f in ramping
                           else float(zone.rate[f.slot]) * f.rtt_s for f in flows)
            if inflight > room:
                queue_s = self.tcp.buffer_bytes(capacity, rtt) / capacity
                for f in ramping:
                    self._lose(f, room / len(ramping), queue_s, final_cap, ceiling)
                return

    def _lose(self, flow: "_Flow", share: float, queue_s: float, final_cap: float, ceiling: float) -> None:
        """``flow`` overflowed a buffer in the round trip now starting: detection one loaded
        RTT after it ends; the RTO fires rto_min + one loaded RTT later, unless what the flow
        had left at the detection fitted in its ``share`` of pipe + buffer."""
        flow.lost = True
        ssthresh, rtt = max(flow.window / 2, self.tcp.mss_bytes), flow.rtt_s
        flow.window = None
        loaded = rtt + queue_s

        def detect(_ev) -> None:
            if flow.done.triggered:
                return
            zone = flow.zone
            zone.settle(self.net.env.now)
            if zone.active[flow.slot] and zone.remaining[flow.slot] > share:
                flow.held = True
                self.net.env.timeout(loaded + self.tcp.rto_min_ms / 1e3).callbacks.append(timeout)

        def timeout(_ev) -> None:
            flow.held = False
            mss = float(self.tcp.mss_bytes)
            resend = self.tcp.relost_share * share
            cap = min(final_cap, mss / rtt)
            if flow.waiting:  # all its bytes were moved: only the lost retransmissions are left
                flow.waiting = False
                self.net._start(flow, resend, cap)
            else:
                zone = flow.zone
                zone.settle(self.net.env.now)
                zone.remaining[flow.slot] = max(float(zone.remaining[flow.slot]), resend)
                zone.cap[flow.slot] = cap
                self.net._rerate(zone)
            flow.ramp_id += 1
            restart = SlowStart(rtt, mss, math.floor(math.log2(ssthresh / mss)), self.tcp.ca_growth)
            self.net._ramp(flow, restart, 1, final_cap, ceiling)

        self.net.env.timeout(rtt + loaded).callbacks.append(detect)
