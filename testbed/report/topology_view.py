"""The topology drawn as a tree: cloud on top, servers below it, workers on the bottom row.

The layout is a plain tidy-tree: leaves take consecutive x positions in depth-first
order and every inner node sits at the mean x of its children, so groups stay together
and the picture reads like the aggregation tree. Hovering a node shows its role, period
and compute time; hovering the middle of a link shows its latency (or RTT trace) and
bandwidth (or bandwidth trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import networkx as nx
import plotly.graph_objects as go

from testbed.report.figures import LAYOUT
from testbed.report.markup import plot_text

ROLE_STYLE = {  # marker colour, symbol and size per role
    "cloud": ("#4C78A8", "square", 22),
    "server": ("#F58518", "diamond", 16),
    "worker": ("#54A24B", "circle", 10),
}
MAX_WORKER_TEXT = 24  # above this many workers their names would overlap; hover still has them


@dataclass(frozen=True)
class TreeLayout:
    root: str
    position: Mapping[str, tuple[float, float]]  # node -> (x, y); y = -depth
    edges: tuple[tuple[str, str], ...]  # (parent, child) tree edges
    unreached: tuple[str, ...]  # nodes not connected to the root (drawn nowhere, noted)


def find_root(graph: nx.Graph) -> str:
    """The node whose role is 'cloud' (the top of the aggregation tree)."""
    clouds = [n for n, role in graph.nodes(data="role") if role == "cloud"]
    if len(clouds) != 1:
        found = ", ".join(map(str, clouds)) or "none"
        raise ValueError(f"topology.json: expected exactly one node with role 'cloud', found {found}")
    return clouds[0]


def tree_layout(graph: nx.Graph) -> TreeLayout:
    """Breadth-first tree from the cloud (so extra cross links never change the layout)."""
    root = find_root(graph)
    tree = nx.bfs_tree(graph.to_undirected(as_view=True), root)
    depth = nx.single_source_shortest_path_length(tree, root)
    bottom = max(depth.values())
    x: dict[Any, float] = {}
    next_leaf = [0.0]

    def place(node: Any) -> float:  # depth-first; recursion depth = tree depth (a handful)
        children = list(tree.successors(node))
        if not children:
            x[node] = next_leaf[0]
            next_leaf[0] += 1.0
        else:
            x[node] = sum(place(c) for c in children) / len(children)
        return x[node]

    place(root)
    position = {}
    for node in tree.nodes:
        # Workers go on the bottom row even when a branch is shallower than the others.
        level = bottom if graph.nodes[node].get("role") == "worker" else depth[node]
        position[node] = (x[node], -float(level))
    unreached = tuple(str(n) for n in graph.nodes if n not in position)
    return TreeLayout(root=root, position=position, edges=tuple(tree.edges), unreached=unreached)


def link_summary(attrs: Mapping[str, Any]) -> list[str]:
    """Human-readable link figures from edge attributes (raw text; escape before display)."""
    lines = []
    if "rtt_trace" in attrs:
        lines.append(f"RTT trace: {attrs['rtt_trace']}")
    if "latency_ms" in attrs:
        lines.append(f"latency: {_num(attrs['latency_ms'])} ms")
    if "bandwidth_trace" in attrs:
        lines.append(f"bandwidth trace: {attrs['bandwidth_trace']}")
    if "bandwidth_mbps" in attrs:
        lines.append(f"bandwidth: {_num(attrs['bandwidth_mbps'])} Mbit/s")
    if "up_mbps" in attrs or "down_mbps" in attrs:
        lines.append(f"bandwidth: up {_num(attrs.get('up_mbps', '?'))} / down {_num(attrs.get('down_mbps', '?'))} Mbit/s")
    return lines or ["no link figures"]


def node_summary(node: Any, attrs: Mapping[str, Any]) -> list[str]:
    lines = [str(node), f"role: {attrs.get('role', '?')}"]
    if "period" in attrs:
        lines.append(f"period: {attrs['period']}")
    if "compute_ms" in attrs:
        lines.append(f"compute: {_num(attrs['compute_ms'])} ms/iteration")
    return lines


def topology_figure(graph: nx.Graph, layout: TreeLayout) -> go.Figure:
    pos = layout.position
    fig = go.Figure()
    xs: list[float | None] = []
    ys: list[float | None] = []
    for parent, child in layout.edges:
        xs += [pos[parent][0], pos[child][0], None]
        ys += [pos[parent][1], pos[child][1], None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#999", width=1.2), hoverinfo="skip", showlegend=False))
    # Invisible points mid-link carry the link's hover text (plotly lines have no hover of their own).
    mids = [((pos[p][0] + pos[c][0]) / 2, (pos[p][1] + pos[c][1]) / 2, p, c) for p, c in layout.edges]
    fig.add_trace(
        go.Scatter(
            x=[m[0] for m in mids], y=[m[1] for m in mids], mode="markers", name="links",
            marker=dict(size=9, color="rgba(120,120,120,0.25)", symbol="circle-open"), showlegend=False,
            hovertext=[_hover([f"{p} — {c}", *link_summary(edge_attrs(graph, p, c))]) for _, _, p, c in mids], hoverinfo="text",
        )  # fmt: skip
    )
    n_workers = sum(1 for n in pos if graph.nodes[n].get("role") == "worker")
    for role, (color, symbol, size) in ROLE_STYLE.items():
        nodes = [n for n in pos if graph.nodes[n].get("role", "server") == role]
        if not nodes:
            continue
        show_text = role != "worker" or n_workers <= MAX_WORKER_TEXT
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], name=role,
                mode="markers+text" if show_text else "markers",
                text=[_node_label(n, graph.nodes[n]) for n in nodes] if show_text else None,
                textposition="bottom center" if role == "worker" else "top center", textfont=dict(size=10),
                marker=dict(color=color, symbol=symbol, size=size, line=dict(color="white", width=1)),
                hovertext=[_hover(node_summary(n, graph.nodes[n])) for n in nodes], hoverinfo="text",
            )  # fmt: skip
        )
    depth = max((-y for _, y in pos.values()), default=0)
    fig.update_layout(**LAYOUT, height=max(320, 140 + 110 * int(depth)), legend=dict(orientation="h", y=-0.05))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[-depth - 0.6, 0.5])
    return fig


def edge_attrs(graph: nx.Graph, a: Any, b: Any) -> Mapping[str, Any]:
    """A link's attributes whichever way a directed topology stores it (first of a multi-edge)."""
    data = graph.get_edge_data(a, b) or graph.get_edge_data(b, a) or {}
    if graph.is_multigraph() and data:
        data = next(iter(data.values()))
    return data


def _node_label(node: Any, attrs: Mapping[str, Any]) -> str:
    period = f" (P={attrs['period']})" if "period" in attrs else ""
    return plot_text(f"{node}{period}")


def _hover(lines: list[str]) -> str:
    return "<br>".join(plot_text(line) for line in lines)


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
