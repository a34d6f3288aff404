"""Importers (latency matrix JSON, ping table CSV), trace synthesis, Zoo import, and the
committed generator scripts."""

from __future__ import annotations

import importlib.util
import json

import networkx as nx
import numpy as np
import pytest

from testbed.net import ZooImport, import_zoo, load_topology, load_trace, read_latency_matrix, read_ping_table
from testbed.net.importers import synthesize_rtt_trace
from testbed.net.traces import DEFAULT_TRACE_DIR


def test_latency_matrix(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"data": {"us-east-1": {"us-east-2": 15.2, "us-west-2": 64}, "eu-central-1": {}},
                                "meta": "ignored"}))
    assert read_latency_matrix(path) == {("us-east-1", "us-east-2"): 15.2, ("us-east-1", "us-west-2"): 64.0}


@pytest.mark.parametrize(
    "doc, needle",
    [
        ("[1, 2]", "expected an object with a 'data' object"),
        ('{"rows": {}}', "expected an object with a 'data' object"),
        ('{"data": {"a": 3}}', "data['a'] must be an object"),
        ('{"data": {"a": {"b": "fast"}}}', "data['a']['b'] = 'fast' is not a finite number"),
        ('{"data": {"a": {"b": -2}}}', "data['a']['b'] = -2 ms is negative"),
        ('{"data": {}}', "the matrix is empty"),
        ("{oops", "not valid JSON"),
    ],
)
def test_latency_matrix_refusals(tmp_path, doc, needle):
    path = tmp_path / "m.json"
    path.write_text(doc)
    with pytest.raises(ValueError) as err:
        read_latency_matrix(path)
    assert str(path) in str(err.value) and needle in str(err.value)


PING = """source,destination,timestamp,min,avg,max,mdev
home,near,1700000010,11.0,12.5,14.0,0.9
home,near,1700000000,10.0,11.0,13.0,0.5
home,far,2023-11-14T22:13:20Z,70,78.5,90,3
home,far,2023-11-14T22:13:21Z,71,77.0,80,2
"""


def test_ping_table(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(PING)
    traces = read_ping_table(path)
    near, far = traces[("home", "near")], traces[("home", "far")]
    assert near.column == "rtt_ms"
    assert near.t_s.tolist() == [0.0, 10.0] and near.values.tolist() == [11.0, 12.5]  # sorted by time
    assert far.t_s.tolist() == [0.0, 1.0] and far.values.tolist() == [78.5, 77.0]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty file"),
        ("source,destination,timestamp,avg\n", "missing column(s) ['min', 'max', 'mdev']"),
        ("source,destination,timestamp,min,avg,max,mdev\n", "no data rows"),
        ("source,destination,timestamp,min,avg,max,mdev\na,b,0,1,x,3,0\n", "row 1 (line 2), column 'avg': 'x' is not a number"),
        ("source,destination,timestamp,min,avg,max,mdev\na,b,0,1,2,3,0\na,b,1,-1,2,3,0\n", "row 2 (line 3), column 'min'"),
        ("source,destination,timestamp,min,avg,max,mdev\na,b,0,5,2,3,0\n", "row 1 (line 2): min <= avg <= max does not hold"),
        ("source,destination,timestamp,min,avg,max,mdev\na,b,yesterday,1,2,3,0\n", "'yesterday' is neither Unix seconds"),
        ("source,destination,timestamp,min,avg,max,mdev\n,b,0,1,2,3,0\n", "empty source or destination"),
        ("source,destination,timestamp,min,avg,max,mdev\na,b,0,1\n", "too few fields"),
    ],
)
def test_ping_table_refusals(tmp_path, text, needle):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_ping_table(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_synthesized_trace_has_the_published_median():
    tr = synthesize_rtt_trace(64.0, 20_000, np.random.default_rng(0), floor_frac=0.95, sigma=0.5)
    assert np.median(tr.values) == pytest.approx(64.0, rel=0.01)
    assert tr.values.min() >= 0.95 * 64.0
    assert np.corrcoef(tr.values[:-1], tr.values[1:])[0, 1] > 0.8  # neighbours alike (AR(1), rho 0.9)
    with pytest.raises(ValueError, match="need p50_ms > 0"):
        synthesize_rtt_trace(-1, 10, np.random.default_rng(0), floor_frac=0.9, sigma=0.1)


def _load_script(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_synthesized_trace_matches_its_generator():
    gen = _load_script(DEFAULT_TRACE_DIR / "generate.py", "trace_generate")
    built = gen.build_synthesized()
    assert set(built) == set(gen.SYNTH_TRACES) and all(name.startswith("synth_") for name in built)
    for name, tr in built.items():
        shipped = load_trace(DEFAULT_TRACE_DIR / f"{name}.csv")
        np.testing.assert_allclose(shipped.values, tr.values, atol=5e-4)  # written to 0.001 ms
    assert np.median(load_trace(DEFAULT_TRACE_DIR / "synth_home_access.csv").values) == pytest.approx(14, rel=0.05)


# ---- Topology Zoo ---------------------------------------------------------------------------
def _zoo_graph() -> nx.Graph:
    """A Zoo-style ring of four PoPs (labels and coordinates as the Zoo writes them)."""
    g = nx.Graph(Network="Ring")
    coords = {"A": (0.0, 0.0), "B": (0.0, 1.0), "C": (1.0, 1.0), "D": (1.0, 0.0)}
    for k, (label, (lat, lon)) in enumerate(coords.items()):
        g.add_node(str(k), label=label, Latitude=lat, Longitude=lon, Country="X", Internal=1)
    for u, v in (("0", "1"), ("1", "2"), ("2", "3"), ("3", "0")):
        g.add_edge(u, v, LinkSpeedRaw=1e9, LinkLabel="1G")
    return g


def test_zoo_import_assigns_roles_and_breaks_cycles(tmp_path):
    path = tmp_path / "ring.graphml"
    nx.write_graphml(_zoo_graph(), path)
    g = import_zoo(path, ZooImport(cloud="A", servers=("C", "B"), workers_per_server=3, access_latency_ms=5.0,
                                   access_rtt_trace=None))
    topo = load_topology(g)
    assert topo.n_workers == 6 and topo.periods == [[20], [5, 5]]
    assert topo.role["A"] == "router" and topo.role["cloud"] == "cloud"
    # C is as far from A via B as via D on this square: it is reached over one of them
    assert topo.uplink_path("edge-C")[:2] == ["edge-C", "C"] and topo.uplink_path("edge-C")[-1] == "cloud"
    km_per_deg = 6371.0 * np.pi / 180
    assert g.edges["A", "B"]["latency_ms"] == pytest.approx(km_per_deg / 200, rel=1e-3)
    assert g.edges["A", "B"]["bandwidth_mbps"] == 1000.0


@pytest.mark.parametrize(
    "opts, needle",
    [
        (dict(cloud="Z", servers=("B",)), "no PoP labelled 'Z'"),
        (dict(cloud="A", servers=()), "name at least one PoP"),
        (dict(cloud="A", servers=("B",), cloud_period=6, server_period=4), "must be a multiple"),
        (dict(cloud="A", servers=("B", "B")), "duplicate PoP labels"),
    ],
)
def test_zoo_import_refusals(opts, needle):
    with pytest.raises(ValueError, match=needle):
        import_zoo(_zoo_graph(), ZooImport(**opts))


def test_zoo_pop_without_coordinates_is_named():
    g = _zoo_graph()
    del g.nodes["2"]["Latitude"]
    with pytest.raises(ValueError, match="PoP 'C' has no Latitude/Longitude"):
        import_zoo(g, ZooImport(cloud="A", servers=("B",)))
