"""Seeded fuzzing of the readers a user feeds: topology (JSON, GraphML, GML), trace, config (JSON, TOML),
LEAF and npz files, and the measurement files `trace import` reads.

Each case is a valid file with random mutations (bytes flipped, cut, repeated, nasty tokens
spliced in). A reader must either accept it or refuse it with a one-line ValueError that
names the file, exactly as the command line reports it (exit 2); never another exception,
never a hang past a few seconds, never a file written outside the case's folder.
"""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from testbed.cli import main, one_line

# a warning is one more line on stderr, and an unclosed file a leak: both fail the test
pytestmark = pytest.mark.filterwarnings("error")

CASES_PER_KIND = 100
BOUND_S = 5  # per case: a reader that takes longer is taken to hang
NASTY = [b"1e308", b"-1", b"nan", b"Infinity", b"\xb2", b"1_0", b"\xff\xfe", b'"', b"{", b"]", b"null", b"true",
         b"9" * 400, b"\x00", b"\n", b",", b"0", b"-0.0", b"\xd9\xa1", b"[[[[[[[[", b'"users"', b'"edges"']
RNG_SEED = 13

TOPOLOGY = json.dumps({
    "directed": False, "multigraph": False, "graph": {"name": "fuzz"},
    "nodes": [{"id": "c", "role": "cloud", "period": 4}, {"id": "s0", "role": "server", "period": 2},
              {"id": "w0", "role": "worker", "compute_ms": 1.0}, {"id": "w1", "role": "worker", "compute_ms": 2}],
    "edges": [{"source": "c", "target": "s0", "latency_ms": 5.0, "bandwidth_mbps": 100.0},
              {"source": "s0", "target": "w0", "latency_ms": 1.0, "bandwidth_mbps": 10.0},
              {"source": "s0", "target": "w1", "latency_ms": 1.5, "up_mbps": 5, "down_mbps": 20}],
}, indent=1).encode()
TRACE = b"t_s,rtt_ms\n0,10.5\n1,11\n2.5,9.75\n3,30\n"
CONFIG = json.dumps({"iterations": 20, "lr": 0.05, "seeds": [0, 1], "algorithms": ["local:2", "hsgd"],
                     "batch_size": 8, "participation": 0.5, "partition": "dirichlet", "dirichlet_alpha": 0.3}).encode()
CONFIG_TOML = b'iterations = 20\nlr = 0.05\nseeds = [0, 1]\nalgorithms = ["local:2", "hsgd"]\npartition = "iid"\n'
LEAF = json.dumps({"users": ["a", "b"], "num_samples": [1, 2],
                   "user_data": {"a": {"x": [[0.5] * 784], "y": [3]}, "b": {"x": [[0.0] * 784, [1.0] * 784], "y": [0, 61]}}}).encode()


PING_SERIES = (b"source,dest,size,time,source_region,dest_region\nnode-10,node-2,64,90.3,EU,US\n"
               b"node-10,node-2,64,90.1,EU,US\nnode-2,node-10,64,90.5,US,EU\nnode-2,node-3,64,0.25,US,US\n")
IPERF = (b"timestamp,run_id,from_cloud,from_region,to_cloud,to_region,bitrate_Bps,avgrtt,gcp_vm,aws_vm\n"
         b"2022-02-14T09:00:00Z,b,AWS,us-east-1,AWS,us-east-2,742391808.0,11.338,,t3.nano\n"
         b"2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,800000000.0,11.0,,t3.nano\n")
PING_TABLE = (b"source,destination,timestamp,min,avg,max,mdev\nhome,near,1700000010,11.0,12.5,14.0,0.9\n"
              b"home,far,2023-11-14T22:13:20Z,70,78.5,90,3\n")
MATRIX = json.dumps({"data": {"us-east-1": {"us-east-2": 15.2, "eu-west-1": 64}}}).encode()


def _as(suffix: str) -> bytes:
    """TOPOLOGY written as GraphML or GML by networkx."""
    import networkx as nx

    graph = nx.node_link_graph(json.loads(TOPOLOGY), edges="edges")
    buffer = io.BytesIO()
    (nx.write_graphml if suffix == "graphml" else nx.write_gml)(graph, buffer)
    return buffer.getvalue()


def _npz() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, x_train=rng.normal(size=(6, 4)).astype(np.float32), y_train=np.array([0, 1, 2, 0, 1, 2]))
    return buffer.getvalue()


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three random edits of ``data``."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        n = len(out)
        op = int(rng.integers(0, 6))
        at = int(rng.integers(0, n + 1))
        if op == 0 and n:  # flip a byte
            out[min(at, n - 1)] = int(rng.integers(0, 256))
        elif op == 1:  # cut the tail
            del out[at:]
        elif op == 2:  # delete a span
            del out[at : at + int(rng.integers(1, 20))]
        elif op == 3:  # repeat a span
            out[at:at] = out[at : at + int(rng.integers(1, 40))]
        else:  # splice in a nasty token, often replacing a number or name
            token = NASTY[int(rng.integers(0, len(NASTY)))]
            out[at : at + int(rng.integers(0, 4))] = token
    return bytes(out)


def _topology(path: Path) -> None:
    _cli(["topo", "show", str(path)], path)


def _trace(path: Path) -> None:
    _cli(["trace", "show", str(path)], path)


def _config(path: Path) -> None:
    from testbed.experiment.cli import check_against_topology
    from testbed.experiment.config import ExperimentConfig, preset
    from testbed.experiment.configfile import read_config_file

    values = read_config_file(path)
    config = ExperimentConfig.from_dict({**preset("quick").to_dict(), **values, "topology": "star"}, where=str(path))
    check_against_topology(config, lambda key: f"{path}: {key}")


def _leaf(path: Path) -> None:
    from testbed.data.leaf import load_femnist

    load_femnist(path.parent.parent)


def _npz_file(path: Path) -> None:
    from testbed.data.vision import load_npz

    load_npz(path=path)


def _importer(name: str) -> Callable[[Path], None]:
    """A `trace import` reader (nothing written: the conversion to files is not fuzzed)."""
    from testbed.net import importers, measurements

    return {"ping-series": measurements.read_ping_series, "iperf": measurements.read_iperf_results,
            "ping-table": importers.read_ping_table, "matrix": importers.read_latency_matrix}[name]


def _cli(argv: list[str], path: Path) -> None:
    """The command line in-process: exit 0, or exit 2 turned back into the ValueError it reports."""
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    if code == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1, lines
        raise ValueError(lines[0])
    assert code == 0, err.getvalue()


# kind -> (valid file, its name inside the case folder, the reader)
KINDS: dict[str, tuple[bytes, str, Callable[[Path], None]]] = {
    "topology": (TOPOLOGY, "fuzz.json", _topology),
    "graphml": (_as("graphml"), "fuzz.graphml", _topology),
    "gml": (_as("gml"), "fuzz.gml", _topology),
    "trace": (TRACE, "fuzz.csv", _trace),
    "config": (CONFIG, "fuzz.json", _config),
    "config-toml": (CONFIG_TOML, "fuzz.toml", _config),
    "leaf": (LEAF, "leaf/train/fuzz.json", _leaf),
    "npz": (_npz(), "fuzz.npz", _npz_file),
    "ping-series": (PING_SERIES, "ping.csv", _importer("ping-series")),
    "iperf": (IPERF, "iperf.csv", _importer("iperf")),
    "ping-table": (PING_TABLE, "table.csv", _importer("ping-table")),
    "matrix": (MATRIX, "matrix.json", _importer("matrix")),
}


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mutated_files_are_accepted_or_refused_in_one_line(kind, tmp_path, monkeypatch):
    valid, name, read = KINDS[kind]
    rng = np.random.default_rng([RNG_SEED, sorted(KINDS).index(kind)])
    monkeypatch.chdir(tmp_path)  # a relative path written by mistake would land here, and be seen
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(valid)
    read(path)  # the valid file itself is accepted
    previous = signal.signal(signal.SIGALRM, _alarm)
    outcomes = {"accepted": 0, "refused": 0}
    try:
        for case in range(CASES_PER_KIND):
            data = mutate(valid, rng)
            path.write_bytes(data)
            shown = f"{kind} case {case}: {data[:300]!r}"
            signal.alarm(BOUND_S)
            try:
                read(path)
                outcomes["accepted"] += 1
            except (ValueError, FileNotFoundError) as err:  # what the command line turns into exit 2
                message = one_line(err)
                assert path.name in message or str(path.parent) in message, f"{message!r} names no file; {shown}"
                assert "\n" not in message
                outcomes["refused"] += 1
            except _Hang:
                pytest.fail(f"no answer within {BOUND_S} s; {shown}")
            finally:
                signal.alarm(0)
            written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
            assert written == [name], f"the reader wrote {written}; {shown}"
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert outcomes["refused"] > CASES_PER_KIND // 3, outcomes  # the mutations do break files
