"""Topology loading, derived aggregation tree, paths, and every validation rule."""

from __future__ import annotations

import json
import subprocess
import sys

import networkx as nx
import pytest

from testbed.net import available_topologies, load_topology
from testbed.net.topology import DEFAULT_TOPOLOGY_DIR, read_graph
from testbed.tree import AggregationTree

SHIPPED = ["edge3level", "edge_mec", "paper2level", "paper_table2", "star", "zoo_usbackbone"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_topologies_load_by_name(name):
    topo = load_topology(name)
    assert topo.name == name
    assert isinstance(topo.tree, AggregationTree)
    assert topo.tree.n_workers == len(topo.worker_nodes) == topo.n_workers
    assert len(topo.server_nodes) == len(topo.tree.servers)
    for sid, node in enumerate(topo.server_nodes):
        assert topo.graph.nodes[node]["period"] == topo.tree.servers[sid].period
        assert topo.level[node] == topo.tree.servers[sid].level
    for w, node in enumerate(topo.worker_nodes):  # worker w's bottom server is its aggregation parent
        assert topo.agg_parent[node] == topo.server_nodes[topo.tree.bottom_server(w).id]


def test_available_topologies_lists_the_shipped_ones():
    assert set(SHIPPED) <= set(available_topologies())


def test_paper2level_is_the_papers_table2_setting():
    topo = load_topology("paper2level")
    assert topo.tree.as_nested() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert topo.periods == [[50], [5, 5]]  # G = 50, I = 5
    AggregationTree(topo.tree.as_nested(), topo.periods)  # the form testbed.simulate takes


def test_edge3level_has_three_aggregation_levels():
    topo = load_topology("edge3level")
    assert topo.tree.n_levels == 3 and 16 <= topo.n_workers <= 32
    assert topo.periods == [[40], [10, 10, 10], [2] * 6]


def test_workers_are_numbered_depth_first_in_natural_name_order(helpers):
    g = helpers.star(12)
    topo = load_topology(g)
    assert topo.worker_nodes == [f"w{k}" for k in range(12)]  # w2 before w10


def test_with_periods_overrides_and_validates(helpers):
    topo = load_topology(helpers.two_level())
    other = topo.with_periods([8, [2, 4]])
    assert other.periods == [[8], [2, 4]]
    assert topo.periods == [[4], [2, 2]]  # the original is unchanged
    with pytest.raises(ValueError, match="not a multiple"):
        topo.with_periods([6, 4])


def test_with_tree_keeps_the_chosen_servers_and_makes_the_rest_routers(helpers):
    g = helpers.two_level(groups=(2, 3))
    g.nodes["s0"]["tier"] = g.nodes["s1"]["tier"] = "edge"
    topo = load_topology(g)
    flat = topo.with_tree(AggregationTree([0, 1, 2, 3, 4], [6]), [0])  # local SGD: the cloud alone
    assert flat.role["s0"] == flat.role["s1"] == "router" and flat.periods == [[6]]
    assert flat.worker_nodes == topo.worker_nodes and flat.uplink_path("w0") == ["w0", "s0", "cloud"]
    assert flat.tiers == ("cloud",)
    same = topo.with_tree(AggregationTree([[0, 1], [2, 3, 4]], [8, [2, 4]]), [0, 1, 2])
    assert same.periods == topo.with_periods([8, [2, 4]]).periods == [[8], [2, 4]] and same.tiers == ("cloud", "edge")
    with pytest.raises(RuntimeError, match="does not sit on the servers"):
        topo.with_tree(AggregationTree([[0, 1, 2], [3, 4]], [4, 2]), [0, 1, 2])  # other groups than s0, s1


def test_paths_and_uplinks_through_routers(helpers):
    g = nx.Graph(name="routed")
    g.add_node("cloud", role="cloud", period=2)
    g.add_node("r", role="router")
    g.add_node("s", role="server", period=1)
    g.add_edge("cloud", "r", latency_ms=1, bandwidth_mbps=10)
    g.add_edge("r", "s", latency_ms=1, bandwidth_mbps=10)
    for w in ("w0", "w1"):
        g.add_node(w, role="worker", compute_ms=1)
        g.add_edge("s", w, latency_ms=1, bandwidth_mbps=10)
    topo = load_topology(g)
    assert topo.agg_parent["s"] == "cloud"
    assert topo.uplink_path("s") == ["s", "r", "cloud"]
    assert topo.level == {"cloud": 0, "s": 1, "w0": 2, "w1": 2}
    hops = topo.path("w0", "w1")
    assert [(topo.links[i].child, up) for i, up in hops] == [("w0", True), ("w1", False)]
    hops = topo.path("cloud", "w1")
    assert [(topo.links[i].child, up) for i, up in hops] == [("r", False), ("s", False), ("w1", False)]


@pytest.mark.parametrize("fmt", ["json", "graphml", "gml"])
def test_files_in_every_format_load(helpers, tmp_path, fmt):
    g = helpers.two_level()
    path = tmp_path / f"t.{fmt}"
    if fmt == "json":
        helpers.write_json(g, path)
    elif fmt == "graphml":
        nx.write_graphml(g, path)
    else:
        nx.write_gml(g, path)
    topo = load_topology(path)
    assert topo.source == str(path) and topo.periods == [[4], [2, 2]]


def test_node_link_json_with_links_key_and_topology_dir(helpers, tmp_path):
    data = nx.node_link_data(helpers.two_level(), edges="links")
    (tmp_path / "mine.json").write_text(json.dumps(data))
    assert load_topology("mine", topology_dir=tmp_path).n_workers == 4
    with pytest.raises(FileNotFoundError, match=r"known topologies: \['mine'\]"):
        load_topology("other", topology_dir=tmp_path)


def test_unparseable_files_name_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_topology(tmp_path / "bad.json")
    (tmp_path / "bad.graphml").write_text("<graphml><oops")
    with pytest.raises(ValueError, match="bad.graphml: cannot parse"):
        read_graph(tmp_path / "bad.graphml")


# ---- validation rules: each names the file, the node or edge, and the rule --------------
def _edit(g: nx.Graph, rule: str) -> nx.Graph:
    g = nx.Graph(g)
    if rule == "no cloud":
        g.nodes["cloud"]["role"] = "server"
    elif rule == "two clouds":
        g.nodes["s1"]["role"] = "cloud"
    elif rule == "disconnected worker":
        g.remove_edge("s1", "w3")
    elif rule == "cycle":
        g.add_edge("w0", "w1", latency_ms=1, bandwidth_mbps=1)
    elif rule == "zero bandwidth":
        g.edges["s0", "w1"]["bandwidth_mbps"] = 0
    elif rule == "negative latency":
        g.edges["s0", "w1"]["latency_ms"] = -1.0
    elif rule == "period not multiple":
        g.nodes["cloud"]["period"] = 3
    elif rule == "unknown trace":
        del g.edges["s0", "w1"]["latency_ms"]
        g.edges["s0", "w1"]["rtt_trace"] = "no_such_trace"
    elif rule == "trace escapes":
        del g.edges["s0", "w1"]["latency_ms"]
        g.edges["s0", "w1"]["rtt_trace"] = "../rtt_a"
    elif rule == "trace kind":
        del g.edges["s0", "w1"]["latency_ms"]
        g.edges["s0", "w1"]["rtt_trace"] = "bw_a"
    elif rule == "unknown node attribute":
        g.nodes["w2"]["speed"] = 2
    elif rule == "attribute for another role":
        g.nodes["w2"]["period"] = 2
    elif rule == "unknown edge attribute":
        g.edges["s0", "w1"]["loss"] = 0.1
    elif rule == "unknown graph attribute":
        g.graph["owner"] = "me"
    elif rule == "missing role":
        del g.nodes["w2"]["role"]
    elif rule == "bad role":
        g.nodes["w2"]["role"] = "client"
    elif rule == "missing period":
        del g.nodes["s0"]["period"]
    elif rule == "bad period":
        g.nodes["s0"]["period"] = 0
    elif rule == "latency twice":
        g.edges["s0", "w1"]["rtt_trace"] = "rtt_a"
    elif rule == "no latency":
        del g.edges["s0", "w1"]["latency_ms"]
    elif rule == "no bandwidth":
        del g.edges["s0", "w1"]["bandwidth_mbps"]
    elif rule == "half bandwidth":
        del g.edges["s0", "w1"]["bandwidth_mbps"]
        g.edges["s0", "w1"]["up_mbps"] = 5
    elif rule == "trace and fixed bandwidth":
        g.edges["s0", "w1"]["bandwidth_trace"] = "bw_a"
    elif rule == "non-numeric latency":
        g.edges["s0", "w1"]["latency_ms"] = "fast"
    elif rule == "worker not a leaf":
        g.add_node("w9", role="worker", compute_ms=1)
        g.add_edge("w1", "w9", latency_ms=1, bandwidth_mbps=1)
    elif rule == "leaf server":
        g.add_node("s9", role="server", period=2)
        g.add_edge("cloud", "s9", latency_ms=1, bandwidth_mbps=1)
    elif rule == "mixed depth":
        g.add_node("w9", role="worker", compute_ms=1)
        g.add_edge("cloud", "w9", latency_ms=1, bandwidth_mbps=1)
    elif rule == "compute twice":
        g.nodes["w2"]["compute_trace"] = "compute_a"
    elif rule == "negative compute":
        g.nodes["w2"]["compute_ms"] = -1
    elif rule == "bad slowdown":
        g.nodes["w2"]["slowdown"] = 0
    elif rule == "self loop":
        g.add_edge("w2", "w2", latency_ms=1, bandwidth_mbps=1)
    return g


RULES = {
    "no cloud": "no node has role 'cloud'",
    "two clouds": "2 nodes have role 'cloud' (['cloud', 's1']); exactly one is allowed",
    "disconnected worker": "worker 'w3' is not connected to the cloud 'cloud'",
    "cycle": "the aggregation tree has a cycle through edges",
    "zero bandwidth": "edge ('s0', 'w1'): 'bandwidth_mbps' must be a bandwidth > 0 Mbit/s, got 0",
    "negative latency": "edge ('s0', 'w1'): 'latency_ms' is -1.0; a latency cannot be negative",
    "period not multiple": "cloud 'cloud' has period 3, which is not a multiple of its child server 's0'",
    "unknown trace": "edge ('s0', 'w1'): unknown trace 'no_such_trace'",
    "trace escapes": "edge ('s0', 'w1'): trace name '../rtt_a' must be a plain file name inside",
    "trace kind": "edge ('s0', 'w1'): rtt_trace 'bw_a' is a 'mbps' trace; a rtt_trace must have a 'rtt_ms' column",
    "unknown node attribute": "node 'w2': unknown attribute 'speed' for a worker",
    "attribute for another role": "node 'w2': unknown attribute 'period' for a worker",
    "unknown edge attribute": "edge ('s0', 'w1'): unknown attribute 'loss'",
    "unknown graph attribute": "unknown graph attribute 'owner'",
    "missing role": "node 'w2': missing attribute 'role'",
    "bad role": "node 'w2': role 'client' is not one of",
    "missing period": "node 's0': a server needs a 'period'",
    "bad period": "node 's0': 'period' must be an integer >= 1, got 0",
    "latency twice": "edge ('s0', 'w1'): give exactly one of 'latency_ms' (one-way, fixed) or 'rtt_trace' (trace name); both given",
    "no latency": "edge ('s0', 'w1'): give exactly one of 'latency_ms' (one-way, fixed) or 'rtt_trace' (trace name); neither given",
    "no bandwidth": "edge ('s0', 'w1'): no bandwidth",
    "half bandwidth": "edge ('s0', 'w1'): no bandwidth",
    "trace and fixed bandwidth": "edge ('s0', 'w1'): 'bandwidth_trace' cannot be combined with ['bandwidth_mbps']",
    "non-numeric latency": "edge ('s0', 'w1'): 'latency_ms' must be a finite number, got 'fast'",
    "worker not a leaf": "worker 'w1' has nodes below it (['w9']); workers must be leaves",
    "leaf server": "server 's9' is a leaf with no workers below it",
    "mixed depth": "worker 'w9' sits 1 aggregation level(s) below the cloud but worker 'w0' sits 2",
    "compute twice": "node 'w2': give either 'compute_ms' or 'compute_trace', not both",
    "negative compute": "node 'w2': 'compute_ms' is -1; a compute time cannot be negative",
    "bad slowdown": "node 'w2': 'slowdown' must be a number > 0, got 0",
    "self loop": "edge ('w2', 'w2') is a self-loop",
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_bad_topology_files_are_refused(helpers, tmp_path, trace_dir, rule):
    path = helpers.write_json(_edit(helpers.two_level(), rule), tmp_path / "bad.json")
    with pytest.raises(ValueError) as err:
        load_topology(path, trace_dir=trace_dir)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    assert RULES[rule] in msg, msg


def test_directed_and_multigraphs_are_refused(helpers):
    with pytest.raises(ValueError, match="must be undirected"):
        load_topology(nx.DiGraph(helpers.two_level()))
    with pytest.raises(ValueError, match="multigraph"):
        load_topology(nx.MultiGraph(helpers.two_level()))


def test_traces_resolve_with_overrides(helpers, trace_dir, tmp_path):
    g = helpers.two_level(access={"rtt_trace": "rtt_a", "bandwidth_mbps": 8.0})
    topo = load_topology(g, trace_dir=trace_dir)
    assert list(topo.traces) == ["rtt_a"] and topo.traces["rtt_a"].values[0] == 10
    mine = tmp_path / "mine.csv"
    mine.write_text("t_s,rtt_ms\n0,99\n")
    swapped = topo.with_trace_overrides({"rtt_a": mine})
    assert swapped.traces["rtt_a"].values.tolist() == [99]


def test_topo_show_runs_as_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "testbed", "topo", "show", "paper2level", "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    summary = json.loads(out.stdout)
    assert summary["periods"] == [[50], [5, 5]] and summary["nodes"]["worker"] == 10


def test_shipped_files_match_their_generator(tmp_path):
    """topologies/*.json are what topologies/generate.py writes."""
    import importlib.util

    from testbed.net.topology import write_graph

    spec = importlib.util.spec_from_file_location("topology_generate", DEFAULT_TOPOLOGY_DIR / "generate.py")
    topo_generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(topo_generate)  # the committed script

    for name, build in topo_generate.BUILDERS.items():
        write_graph(build(), tmp_path / f"{name}.json")
        assert (tmp_path / f"{name}.json").read_text() == (DEFAULT_TOPOLOGY_DIR / f"{name}.json").read_text(), name


def test_node_names_with_non_ascii_digits_load_and_sort():
    """'²' is a digit to str.isdigit() but not to int(): names holding it must still sort."""
    from testbed.net.rules import natural_key

    g = nx.Graph(name="sup")
    g.add_node("c", role="cloud", period=2)
    for w in ("w²", "w10", "w2"):
        g.add_node(w, role="worker", compute_ms=1.0)
        g.add_edge("c", w, latency_ms=1.0, bandwidth_mbps=10.0)
    topo = load_topology(g)
    assert topo.worker_nodes == ["w2", "w10", "w²"]
    assert sorted(["a²1", "a10", "a2"], key=natural_key) == ["a2", "a10", "a²1"]
