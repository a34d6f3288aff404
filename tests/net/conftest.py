"""Shared fixtures for the network-layer tests (no package __init__: plain pytest)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest


def _write_csv(path: Path, header: str, rows: list[tuple]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")
    return path


def _two_level(
    *,
    groups: tuple[int, ...] = (2, 2),
    periods: tuple[int, int] = (4, 2),
    access: dict | None = None,
    uplink: dict | None = None,
    compute_ms: float = 10.0,
) -> nx.Graph:
    """cloud -> servers s0, s1, ... -> workers w0, w1, ... (fixed latencies by default)."""
    access = access or {"latency_ms": 5.0, "bandwidth_mbps": 8.0}
    uplink = uplink or {"latency_ms": 20.0, "bandwidth_mbps": 80.0}
    g = nx.Graph(name="twolevel")
    g.add_node("cloud", role="cloud", period=periods[0])
    w = 0
    for s, size in enumerate(groups):
        g.add_node(f"s{s}", role="server", period=periods[1])
        g.add_edge("cloud", f"s{s}", **uplink)
        for _ in range(size):
            g.add_node(f"w{w}", role="worker", compute_ms=compute_ms)
            g.add_edge(f"s{s}", f"w{w}", **access)
            w += 1
    return g


def _star(n: int = 2, *, period: int = 1, link: dict | None = None, compute_ms: float = 10.0) -> nx.Graph:
    g = nx.Graph(name="star")
    g.add_node("cloud", role="cloud", period=period)
    for w in range(n):
        g.add_node(f"w{w}", role="worker", compute_ms=compute_ms)
        g.add_edge("cloud", f"w{w}", **(link or {"latency_ms": 5.0, "bandwidth_mbps": 8.0}))
    return g


def _write_json(graph: nx.Graph, path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(nx.node_link_data(graph, edges="edges"), f)
    return path


@pytest.fixture
def helpers() -> SimpleNamespace:
    """Graph builders and file writers used across the tests."""
    return SimpleNamespace(two_level=_two_level, star=_star, write_csv=_write_csv, write_json=_write_json)


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    """A trace folder with small traces of each kind."""
    d = tmp_path / "traces"
    d.mkdir()
    _write_csv(d / "rtt_a.csv", "t_s,rtt_ms", [(k, v) for k, v in enumerate([10.0, 20.0, 30.0, 40.0])])
    _write_csv(d / "rtt_b.csv", "t_s,rtt_ms", [(k, v) for k, v in enumerate(np.linspace(50, 150, 11))])
    _write_csv(d / "bw_a.csv", "t_s,mbps", [(k, v) for k, v in enumerate([4.0, 8.0, 16.0])])
    _write_csv(d / "compute_a.csv", "t_s,compute_ms", [(k, v) for k, v in enumerate([5.0, 10.0, 15.0])])
    return d


MBPS = 1e6 / 8  # bytes/s per Mbit/s


@pytest.fixture
def mbps() -> float:
    return MBPS
