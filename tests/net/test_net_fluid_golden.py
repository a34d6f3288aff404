"""``tcp=FLUID`` prices exactly as the clock did before TCP was modelled, bit for bit.

The fingerprints below were made by running this file as a script on the code of commit
12c84fd (the last commit before the TCP model): ``PYTHONPATH=<checkout of 12c84fd>
python tests/net/test_net_fluid_golden.py``. Each hashes the exact bytes of every
worker's clock, the breakdown and the whole event log of one scenario; the scenarios
cover both backends (routers force SimPy), traced RTTs, bandwidth and compute traces,
partial participation, per-server periods and bootstrap sampling.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import networkx as nx
import numpy as np

GOLDEN = {
    "three_level_traced": "a0c8386bd199a2b1828410d0dc32452d9b8fe1681b30f7e6bf3d52348d525c6e",
    "routers_saturating": "f8fc0d2976e5bac0c380fc3fbe262878d1dbb31088af47e42f5b96acd3a72923",
    "partial_bootstrap": "75a2515e8d4dd547535f252cde5d225d9e9414c28e50569e1685110302123bdd",
    "per_server_periods": "21622251f283b984e630bed72652a540de41b0dbe48097595dd0ddd5959adfa2",
}


def _write(path: Path, header: str, values) -> None:
    path.write_text(header + "\n" + "".join(f"{k},{v}\n" for k, v in enumerate(values)), encoding="utf-8")


def scenarios(folder: Path) -> dict[str, tuple]:
    """name -> (topology, clock options, iterations, participation); traces in ``folder``."""
    from testbed.net import load_topology

    _write(folder / "rtt_a.csv", "t_s,rtt_ms", [10.0, 20.0, 30.0, 40.0])
    _write(folder / "rtt_b.csv", "t_s,rtt_ms", np.linspace(50, 150, 11))
    _write(folder / "bw_a.csv", "t_s,mbps", [4.0, 8.0, 16.0])
    _write(folder / "compute_a.csv", "t_s,compute_ms", [5.0, 10.0, 15.0])
    out = {}

    g = nx.Graph(name="three")  # cloud -> 2 regions -> 2 edges each -> 3 workers each
    g.add_node("cloud", role="cloud", period=12)
    w = 0
    for r in range(2):
        g.add_node(f"r{r}", role="server", period=6)
        g.add_edge("cloud", f"r{r}", rtt_trace="rtt_b", bandwidth_mbps=1000.0)
        for e in range(2):
            g.add_node(f"e{r}{e}", role="server", period=2)
            g.add_edge(f"r{r}", f"e{r}{e}", latency_ms=2.5, bandwidth_trace="bw_a")
            for _ in range(3):
                g.add_node(f"w{w}", role="worker", compute_ms=4.0 + w % 3)
                g.add_edge(f"e{r}{e}", f"w{w}", rtt_trace="rtt_a", up_mbps=20.0, down_mbps=150.0)
                w += 1
    out["three_level_traced"] = (load_topology(g, trace_dir=folder), dict(model_bytes=1e6, seed=3), 36, 1.0)

    h = nx.Graph(name="routers")  # two servers behind one router, whose uplink saturates
    h.add_node("cloud", role="cloud", period=4)
    h.add_node("rt", role="router")
    h.add_edge("cloud", "rt", latency_ms=8.0, bandwidth_mbps=30.0)
    for s in range(2):
        h.add_node(f"s{s}", role="server", period=2)
        h.add_edge("rt", f"s{s}", latency_ms=1.0, bandwidth_mbps=1000.0)
        for k in range(2):
            h.add_node(f"w{s}{k}", role="worker", compute_trace="compute_a")
            h.add_edge(f"s{s}", f"w{s}{k}", rtt_trace="rtt_a", bandwidth_mbps=50.0)
    out["routers_saturating"] = (load_topology(h, trace_dir=folder), dict(model_bytes=4e6, seed=1), 12, 1.0)
    out["partial_bootstrap"] = (load_topology(g, trace_dir=folder), dict(model_bytes=2e5, seed=7, sampling="bootstrap"), 24, 0.5)

    p = nx.Graph(g)  # one edge server aggregates every iteration, its sibling every 3
    p.nodes["e00"]["period"], p.nodes["e01"]["period"], p.nodes["e10"]["period"] = 1, 3, 3
    p.nodes["e11"]["period"] = 1
    out["per_server_periods"] = (load_topology(p, trace_dir=folder), dict(model_bytes=5e5, seed=2, window_bytes=2**16), 24, 1.0)
    return out


def fingerprint(topology, options: dict, iterations: int, participation: float, **extra) -> str:
    from testbed.net import NetworkClock

    clock = NetworkClock(topology, **options, **extra)
    rng = np.random.default_rng(0)
    n = clock.topology.n_workers
    for t in range(1, iterations + 1):
        mask = None if participation == 1.0 else rng.random(n) < participation
        clock.advance(t, mask)
    h = hashlib.sha256()
    h.update(clock.clocks_s.tobytes())
    h.update(np.array(list(clock.breakdown().values())).tobytes())
    frame = _as_before(clock.events_frame(), options["model_bytes"])
    for column in frame.columns:
        values = frame[column].to_numpy()
        h.update(values.tobytes() if values.dtype != object else "\n".join(map(str, values)).encode())
    return h.hexdigest()


def _as_before(frame, model_bytes: float):
    """The event log in the columns it had when the fingerprints were made: no ``tier``, and
    one ``size_bytes`` column holding the transfer's bytes, the round's (aggregate rows) and
    the bytes a barrier received (one model per child that sent one up)."""
    if "tier" not in frame.columns:  # the code the fingerprints come from
        return frame
    up = frame[frame.kind == "up"].groupby(["t", "peer"]).size()
    received = [model_bytes * up.get((t, node), 0) for t, node in zip(frame.t, frame.node)]
    size = frame.size_bytes.fillna(frame.round_bytes).where(frame.kind != "barrier", received)
    return frame.assign(size_bytes=size.astype(float))[["t", "kind", "level", "node", "peer", "start_s", "end_s", "size_bytes"]]


def test_fluid_model_reproduces_the_clock_before_tcp(tmp_path):
    from testbed.net import FLUID

    got = {name: fingerprint(*case, tcp=FLUID) for name, case in scenarios(tmp_path).items()}
    assert got == GOLDEN


if __name__ == "__main__":  # print the fingerprints of the code on sys.path
    import tempfile

    # the code before the TCP model had no tcp option; it priced every flow as FLUID does
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in scenarios(Path(tmp)).items():
            print(f'    "{name}": "{fingerprint(*case)}",', file=sys.stdout)
