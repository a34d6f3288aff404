import networkx as nx
import pytest

from testbed.report.topology_view import edge_attrs, link_summary, topology_figure, tree_layout


def test_tree_layout_puts_cloud_on_top_workers_at_bottom_and_parents_over_children(make_topology):
    g = make_topology()
    layout = tree_layout(g)
    pos = layout.position
    assert layout.root == "cloud" and layout.unreached == ()
    assert pos["cloud"][1] == 0 and pos["regional-0"][1] == -1 and pos["edge-0"][1] == -2
    assert {pos[f"worker-{i}"][1] for i in range(8)} == {-3}
    assert [pos[f"worker-{i}"][0] for i in range(8)] == list(range(8))
    assert pos["edge-0"][0] == 0.5 and pos["regional-0"][0] == 1.5 and pos["cloud"][0] == 3.5


def test_shallow_worker_still_on_the_bottom_row_and_directed_edges_are_found():
    g = nx.DiGraph()
    g.add_node("c", role="cloud")
    g.add_node("s", role="server")
    g.add_node("w1", role="worker")
    g.add_node("w2", role="worker")
    g.add_node("lost", role="worker")
    g.add_edge("s", "c", latency_ms=3)  # stored child -> parent
    g.add_edge("s", "w1")
    g.add_edge("c", "w2")
    layout = tree_layout(g)
    assert layout.position["w2"][1] == layout.position["w1"][1] == -2
    assert layout.unreached == ("lost",)
    assert edge_attrs(g, "c", "s") == {"latency_ms": 3}
    topology_figure(g, layout)  # draws without a KeyError on the reversed edge


def test_exactly_one_cloud_is_required():
    g = nx.Graph()
    g.add_node("a", role="server")
    with pytest.raises(ValueError, match="exactly one node with role 'cloud', found none"):
        tree_layout(g)


def test_link_summary():
    assert link_summary({"rtt_trace": "wan", "bandwidth_mbps": 100.0}) == ["RTT trace: wan", "bandwidth: 100 Mbit/s"]
    assert link_summary({"latency_ms": 2.5, "up_mbps": 10, "down_mbps": 50}) == ["latency: 2.5 ms", "bandwidth: up 10 / down 50 Mbit/s"]
    assert link_summary({}) == ["no link figures"]


def test_topology_figure_escapes_node_names_in_text_and_hover(make_topology):
    g = make_topology(evil=True)
    fig = topology_figure(g, tree_layout(g))
    texts = [t for tr in fig.data for t in (tr.text or ()) + (tr.hovertext or ())]
    assert any("&lt;script&gt;" in t for t in texts)
    assert not any("<script>" in t for t in texts)


def test_fixed_latency_links_are_listed_alike_ones_together(make_topology):
    from testbed.report.topology_view import fixed_links

    rows = fixed_links(make_topology())  # WAN links use a trace; 4 metro and 8 access links are fixed
    assert rows == [["regional", "edge", "4", "5 ms", "↑50 Mbit/s ↓200 Mbit/s"], ["edge", "worker", "8", "2 ms", "bw lte-bw"]]


def test_a_hundred_workers_are_drawn_as_one_node_per_server_with_tiers_and_link_figures():
    from testbed.net.builders import hierarchy_graph
    from testbed.report.topology_view import row_names

    links = [{"latency_ms": 40.0, "bandwidth_mbps": 1000.0}, {"latency_ms": 5.0, "bandwidth_mbps": 100.0},
             {"latency_ms": 2.0, "bandwidth_mbps": 50.0}]
    g = hierarchy_graph([4, 5, 5], [40, 10, 2], links)
    layout = tree_layout(g)
    assert len(layout.groups) == 20 and sum(len(k) for k in layout.groups.values()) == 100
    assert sum(1 for n in layout.position if n in layout.groups) == 20
    assert list(row_names(g, layout).values())[-1] == "100 workers"
    fig = topology_figure(g, layout)
    notes = [a.text for a in fig.layout.annotations]
    assert {"links: 40 ms<br>1 Gbit/s", "links: 5 ms<br>100 Mbit/s", "links: 2 ms<br>50 Mbit/s"} <= set(notes)
    assert any("×5" in (t.text or ()) for t in fig.data)
    small = tree_layout(g, collapse_above=1000)
    assert small.groups == {} and sum(1 for n in small.position if g.nodes[n]["role"] == "worker") == 100
