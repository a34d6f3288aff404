"""Per-link delay and capacity draws, shared by the flow API and the schedule pricer.

Every link with an ``rtt_trace`` has its own sampler, and so does every link with a
``bandwidth_trace``, each with a generator spawned from the seed by link id; draws for
many links are done in one numpy call (:class:`~testbed.net.sampling.SamplerBank`).

Seeding: ``SeedSequence(seed).spawn(3)`` gives the roots for RTT samplers, bandwidth
samplers and compute samplers (in that order); each root spawns one child per link
(or worker) id, so adding a trace to one link does not change any other link's draws.
"""

from __future__ import annotations

import numpy as np

from .flows import MBPS_TO_BYTES_PER_S
from .sampling import SamplerBank, make_sampler
from .topology import Topology


def seed_roots(seed: int | np.random.SeedSequence) -> tuple[np.random.SeedSequence, ...]:
    """(rtt, bandwidth, compute) seed roots."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return tuple(ss.spawn(3))


class LinkModel:
    """Latency and capacity of every link of a topology, with seeded trace samplers."""

    def __init__(self, topology: Topology, *, seed: int | np.random.SeedSequence, sampling: str = "replay",
                 payload_share: float = 1.0):
        self.topology = topology
        self.payload_share = payload_share  # capacities count payload: line rate x MSS / (MSS + headers)
        links = topology.links
        n = len(links)
        rtt_root, bw_root, _ = seed_roots(seed)
        # fixed parts (ms); a traced link's fixed latency is 0 and its sample is added
        self.fixed_latency_ms = np.array([lk.latency_ms or 0.0 for lk in links])
        self.up_bytes_per_s = np.array([(lk.up_mbps or np.nan) * MBPS_TO_BYTES_PER_S for lk in links]) * payload_share
        self.down_bytes_per_s = np.array([(lk.down_mbps or np.nan) * MBPS_TO_BYTES_PER_S for lk in links]) * payload_share
        self.rtt_member = np.full(n, -1, dtype=np.int64)
        self.bw_member = np.full(n, -1, dtype=np.int64)
        rtt_ss = rtt_root.spawn(n) if any(lk.rtt_trace for lk in links) else []
        bw_ss = bw_root.spawn(n) if any(lk.bandwidth_trace for lk in links) else []
        rtt_samplers, bw_samplers = [], []
        for i, lk in enumerate(links):
            if lk.rtt_trace:
                self.rtt_member[i] = len(rtt_samplers)
                rng = np.random.default_rng(rtt_ss[i])
                rtt_samplers.append(make_sampler(sampling, topology.traces[lk.rtt_trace], rng))
            if lk.bandwidth_trace:
                self.bw_member[i] = len(bw_samplers)
                rng = np.random.default_rng(bw_ss[i])
                bw_samplers.append(make_sampler(sampling, topology.traces[lk.bandwidth_trace], rng))
        self._rtt = SamplerBank(rtt_samplers)
        self._bw = SamplerBank(bw_samplers)
        self.bw_links = np.flatnonzero(self.bw_member >= 0)

    def draw_rtt_ms(self, link_ids: np.ndarray, *, unique: bool = False) -> np.ndarray:
        """One RTT (ms) per entry: a trace sample, or twice the fixed one-way latency.
        A link listed twice draws twice (in array order)."""
        link_ids = np.asarray(link_ids, dtype=np.int64)
        m = self.rtt_member[link_ids]
        if len(m) and m.min() >= 0:  # all traced (the common case per level): no mixing
            return self._rtt.draw(m, unique=unique)
        out = 2.0 * self.fixed_latency_ms[link_ids]
        if len(m) and m.max() >= 0:
            traced = np.flatnonzero(m >= 0)
            out[traced] = self._rtt.draw(m[traced], unique=unique)
        return out

    def draw_capacities(self, link_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) payload capacity in bytes/s of each link (unique ids); a link with a
        bandwidth trace draws one sample, used for both directions."""
        link_ids = np.asarray(link_ids, dtype=np.int64)
        up = self.up_bytes_per_s[link_ids]
        down = self.down_bytes_per_s[link_ids]
        m = self.bw_member[link_ids]
        traced = np.flatnonzero(m >= 0)
        if len(traced):
            cap = self._bw.draw(m[traced], unique=True) * MBPS_TO_BYTES_PER_S * self.payload_share
            up[traced] = cap
            down[traced] = cap
        return up, down


def window_cap(rtt_s: np.ndarray | float, window_bytes: int | None) -> np.ndarray:
    """TCP window cap W / RTT in bytes/s (infinite without a window; at zero RTT a
    finite but astronomically high rate, which no link ever falls below)."""
    rtt = np.asarray(rtt_s, dtype=float)
    if window_bytes is None:
        return np.full(rtt.shape, np.inf)
    return float(window_bytes) / np.maximum(rtt, 1e-300)
