"""Pricer speed: it must stay a small fraction of a run's time. Bounds are generous (CI
machines vary); the measured times are printed. Full-size checks are marked slow."""

from __future__ import annotations

import time

import pytest

from testbed.net import load_topology, price_schedule
from testbed.net.builders import hierarchy_graph

WAN = {"rtt_trace": "interregion_use1_usw2", "bandwidth_mbps": 10_000.0}
METRO = {"latency_ms": 2.5, "bandwidth_mbps": 10_000.0}
HOME = {"rtt_trace": "home_near_ec2", "up_mbps": 20.0, "down_mbps": 150.0}


def _time(topo, rounds: int, **kw) -> float:
    t0 = time.perf_counter()
    price_schedule(topo, rounds, model_bytes=37e6, seed=0, **kw)
    return time.perf_counter() - t0


def _thousand_workers():
    # 8 regional x 5 edge x 25 homes = 1000 workers, three aggregation levels, every
    # iteration a global round (the worst case: the whole tree each time)
    return load_topology(hierarchy_graph([8, 5, 25], [1, 1, 1], [WAN, METRO, HOME]))


def _hundred_workers():
    return load_topology(hierarchy_graph([10, 10], [1, 1], [WAN, HOME]))


def test_pricer_is_fast_enough_quick():
    s1000 = _time(_thousand_workers(), 100)
    s100 = _time(_hundred_workers(), 1000)
    print(f"\n1000 workers x 100 global rounds: {s1000:.3f} s; 100 workers x 1000 rounds: {s100:.3f} s")
    assert s1000 < 2.0 and s100 < 2.0


@pytest.mark.slow
def test_pricer_full_size():
    s1000 = _time(_thousand_workers(), 1000)
    s100 = _time(_hundred_workers(), 10_000)
    s100_lean = _time(_hundred_workers(), 10_000, record="aggregations")
    print(f"\n1000 workers x 1000 global rounds: {s1000:.2f} s; 100 workers x 10^4 rounds: {s100:.2f} s "
          f"({s100_lean:.2f} s logging aggregations only)")
    assert s1000 < 5.0 and s100 < 2.0
