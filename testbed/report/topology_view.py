"""The topology drawn as a tree: cloud on top, servers below it, workers on the bottom row.

The layout is a plain tidy-tree: leaves take consecutive x positions in depth-first
order and every inner node sits at the mean x of its children, so groups stay together
and the picture reads like the aggregation tree. Each row is labelled with its tier;
link figures are written on the drawing (once per row when all its links are alike);
above 24 workers each server's workers are drawn as one "×k" node, so 100 workers read
as well as 24. Hovering a node shows its role, period and compute time; hovering the
middle of a link shows its latency (or RTT trace) and bandwidth (or bandwidth trace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import networkx as nx
import plotly.graph_objects as go

from testbed.report.figures import LAYOUT
from testbed.report.markup import plot_text

ROLE_STYLE = {  # marker colour, symbol and size per role
    "cloud": ("#4C78A8", "square", 22),
    "server": ("#F58518", "diamond", 16),
    "router": ("#9D9D9D", "square-open", 10),
    "worker": ("#54A24B", "circle", 10),
}
MAX_WORKERS_DRAWN = 24  # above this many workers each server's workers are drawn as one "k workers" node
LABEL_COLUMN = 0.2  # share of the width left of the tree for tier names and row-wide link figures
MAX_NAMES_PER_ROW = 12  # above this many nodes in a row their names would overlap; hover still has them


@dataclass(frozen=True)
class TreeLayout:
    root: str
    position: Mapping[Any, tuple[float, float]]  # drawn node -> (x, y); y = -depth
    edges: tuple[tuple[Any, Any], ...]  # (parent, child) tree edges
    unreached: tuple[str, ...]  # nodes not connected to the root (drawn nowhere, noted)
    # ("workers", parent) -> the workers it stands for, when workers are collapsed
    groups: Mapping[Any, tuple[str, ...]] = field(default_factory=dict)


def find_root(graph: nx.Graph) -> str:
    """The node whose role is 'cloud' (the top of the aggregation tree)."""
    clouds = [n for n, role in graph.nodes(data="role") if role == "cloud"]
    if len(clouds) != 1:
        found = ", ".join(map(str, clouds)) or "none"
        raise ValueError(f"topology.json: expected exactly one node with role 'cloud', found {found}")
    return clouds[0]


def tree_layout(graph: nx.Graph, collapse_above: int = MAX_WORKERS_DRAWN) -> TreeLayout:
    """Breadth-first tree from the cloud (so extra cross links never change the layout).
    With more than ``collapse_above`` workers, each node's workers become one group node."""
    root = find_root(graph)
    tree = nx.bfs_tree(graph.to_undirected(as_view=True), root)
    workers = [n for n in tree if graph.nodes[n].get("role") == "worker"]
    groups: dict[Any, tuple[str, ...]] = {}
    if len(workers) > collapse_above:
        for parent in {next(tree.predecessors(w)) for w in workers}:
            kids = tuple(c for c in tree.successors(parent) if graph.nodes[c].get("role") == "worker")
            tree.remove_nodes_from(kids)
            tree.add_edge(parent, ("workers", parent))
            groups[("workers", parent)] = kids
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
        level = bottom if node in groups or graph.nodes[node].get("role") == "worker" else depth[node]
        position[node] = (x[node], -float(level))
    unreached = tuple(str(n) for n in graph.nodes if n not in position and not any(n in g for g in groups.values()))
    return TreeLayout(root=root, position=position, edges=tuple(tree.edges), unreached=unreached, groups=groups)


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


def link_short(attrs: Mapping[str, Any]) -> str:
    """A link's figures in a few characters, for a label on the drawing: '2.5 ms · 10 Gbit/s'."""
    parts = []
    if "latency_ms" in attrs:
        parts.append(f"{_num(attrs['latency_ms'])} ms")
    if "rtt_trace" in attrs:
        parts.append(f"RTT {attrs['rtt_trace']}")
    if "up_mbps" in attrs or "down_mbps" in attrs:
        parts.append(f"↑{_rate(attrs.get('up_mbps'))} ↓{_rate(attrs.get('down_mbps'))}")
    elif "bandwidth_mbps" in attrs:
        parts.append(_rate(attrs["bandwidth_mbps"]))
    if "bandwidth_trace" in attrs:
        parts.append(f"bw {attrs['bandwidth_trace']}")
    return " · ".join(parts)


def fixed_links(graph: nx.Graph) -> list[list[str]]:
    """Links with a fixed latency (no RTT trace), alike ones counted together:
    [upper end, lower end, count, one-way latency, bandwidth], top of the tree first."""
    layout = tree_layout(graph, collapse_above=10**9)
    rows: dict[tuple, int] = {}
    for parent, child in layout.edges:
        attrs = edge_attrs(graph, parent, child)
        if "latency_ms" not in attrs:
            continue
        bandwidth = link_short({k: v for k, v in attrs.items() if k != "latency_ms"}) or "—"
        key = (-layout.position[child][1], _kind(graph, parent), _kind(graph, child), f"{_num(attrs['latency_ms'])} ms", bandwidth)
        rows[key] = rows.get(key, 0) + 1
    return [[up, down, str(n), latency, bandwidth] for (_, up, down, latency, bandwidth), n in sorted(rows.items(), key=lambda kv: kv[0][0])]


def _kind(graph: nx.Graph, node: Any) -> str:
    attrs = graph.nodes[node]
    return str(attrs.get("tier") or attrs.get("role", "?"))


def row_names(graph: nx.Graph, layout: TreeLayout) -> dict[float, str]:
    """y -> what the row holds: the cloud, a tier of servers (their ``tier``), routers, workers."""
    n_workers = sum(len(g) for g in layout.groups.values()) or sum(
        1 for n in layout.position if graph.nodes[n].get("role") == "worker")
    rows: dict[float, list[str]] = {}
    for node, (_, y) in layout.position.items():
        role = "worker" if node in layout.groups else graph.nodes[node].get("role", "server")
        tier = None if node in layout.groups else graph.nodes[node].get("tier")
        default = {"server": f"servers, level {int(-y)}", "router": "routers", "worker": f"{n_workers} workers"}
        name = str(tier or default.get(role, role))
        rows.setdefault(y, [])
        if name not in rows[y]:
            rows[y].append(name)
    return {y: " / ".join(names) for y, names in rows.items()}


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
    links = [(p, c, _link_attrs(graph, layout, p, c)) for p, c in layout.edges]
    mids = [((pos[p][0] + pos[c][0]) / 2, (pos[p][1] + pos[c][1]) / 2) for p, c, _ in links]
    fig.add_trace(
        go.Scatter(
            x=[m[0] for m in mids], y=[m[1] for m in mids], mode="markers", name="links",
            marker=dict(size=9, color="rgba(120,120,120,0.25)", symbol="circle-open"), showlegend=False,
            hovertext=[_hover([f"{_name(p)} — {_name(c)}", *link_summary(a)]) for p, c, a in links], hoverinfo="text",
        )  # fmt: skip
    )
    left = min((x for x, _ in pos.values()), default=0.0) - 0.5
    _label_links(fig, pos, links, mids, left)
    row_count: dict[float, int] = {}
    for _, y in pos.values():
        row_count[y] = row_count.get(y, 0) + 1
    for role, (color, symbol, size) in ROLE_STYLE.items():
        nodes = [n for n in pos if n not in layout.groups and graph.nodes[n].get("role", "server") == role]
        if role == "worker":
            nodes += list(layout.groups)
        if not nodes:
            continue
        text = [_node_label(n, graph, layout) if row_count[pos[n][1]] <= MAX_NAMES_PER_ROW or n in layout.groups else ""
                for n in nodes]
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], name=role,
                mode="markers+text", text=text,
                textposition="bottom center" if role == "worker" else "top center", textfont=dict(size=10),
                marker=dict(color=color, symbol=symbol, size=size + 6 * (role == "worker" and bool(layout.groups)),
                            line=dict(color="white", width=1)),
                hovertext=[_hover(_node_hover(n, graph, layout)) for n in nodes], hoverinfo="text",
            )  # fmt: skip
        )
    for y, name in row_names(graph, layout).items():  # the tiers, in a column left of the tree
        fig.add_annotation(xref="paper", x=0, y=y, text=f"<b>{plot_text(name)}</b>", showarrow=False, xanchor="left",
                           font=dict(size=12, color="#333"))
    depth = max((-y for _, y in pos.values()), default=0)
    right = max((x for x, _ in pos.values()), default=0.0) + 0.5
    fig.update_layout(**{**LAYOUT, "margin": dict(l=10, r=10, t=30, b=30)}, height=max(320, 140 + 130 * int(depth)),
                      legend=dict(orientation="h", y=-0.05))
    fig.update_xaxes(visible=False, range=[left, right], domain=[LABEL_COLUMN, 1.0])
    fig.update_yaxes(visible=False, range=[-depth - 0.6, 0.5])
    return fig


def _label_links(fig: go.Figure, pos, links, mids, left: float) -> None:
    """Link figures on the drawing: one label per row when every link into it is alike,
    else one per link (small, at its middle)."""
    by_row: dict[float, list[int]] = {}
    for i, (_, c, _) in enumerate(links):
        by_row.setdefault(pos[c][1], []).append(i)
    xs, ys, texts = [], [], []
    for y, idx in by_row.items():
        shorts = {link_short(links[i][2]) for i in idx}
        if len(shorts) == 1:
            text = "<br>".join(plot_text(part) for part in (shorts.pop() or "no link figures").split(" · "))
            fig.add_annotation(xref="paper", x=0, y=y + 0.5, text=f"links: {text}", showarrow=False, xanchor="left",
                               align="left", font=dict(size=11, color="#555"))
        else:
            for i in idx:
                xs.append(mids[i][0])
                ys.append(mids[i][1])
                texts.append(plot_text(link_short(links[i][2])))
    if texts:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="text", text=texts, textfont=dict(size=10, color="#555"),
                                 textposition="middle right", hoverinfo="skip", showlegend=False))


def _link_attrs(graph: nx.Graph, layout: TreeLayout, parent: Any, child: Any) -> Mapping[str, Any]:
    """A link's attributes; a group's links when they are all alike, else the first one's."""
    if child in layout.groups:
        return edge_attrs(graph, parent, layout.groups[child][0])
    return edge_attrs(graph, parent, child)


def _node_hover(node: Any, graph: nx.Graph, layout: TreeLayout) -> list[str]:
    if node in layout.groups:
        kids = layout.groups[node]
        return [f"{len(kids)} workers under {node[1]}", *[str(k) for k in kids[:8]], *(["..."] if len(kids) > 8 else [])]
    return node_summary(node, graph.nodes[node])


def _name(node: Any) -> str:
    return f"{node[1]}'s workers" if isinstance(node, tuple) else str(node)


def _rate(mbps: Any) -> str:
    if not isinstance(mbps, (int, float)) or isinstance(mbps, bool):
        return "?"
    return f"{mbps / 1000:g} Gbit/s" if mbps >= 1000 else f"{mbps:g} Mbit/s"


def edge_attrs(graph: nx.Graph, a: Any, b: Any) -> Mapping[str, Any]:
    """A link's attributes whichever way a directed topology stores it (first of a multi-edge)."""
    data = graph.get_edge_data(a, b) or graph.get_edge_data(b, a) or {}
    if graph.is_multigraph() and data:
        data = next(iter(data.values()))
    return data


def _node_label(node: Any, graph: nx.Graph, layout: TreeLayout) -> str:
    if node in layout.groups:
        return f"×{len(layout.groups[node])}"
    attrs = graph.nodes[node]
    period = f" (P={attrs['period']})" if "period" in attrs else ""
    return plot_text(f"{node}{period}")


def _hover(lines: list[str]) -> str:
    return "<br>".join(plot_text(line) for line in lines)


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
