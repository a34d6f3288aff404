"""Validation rules for topology graphs: attributes, roles, the shape of the tree.

Each check raises ``ValueError`` naming the source (file or graph), the node or edge,
and the rule. :func:`check_graph` returns the rooted tree the rest of the package uses.

Attribute names (portable between files and scripts that build graphs directly):

    node  role            cloud | server | worker | router
          period          cloud and servers: aggregate every `period` local iterations
          tier            cloud and servers: name of their level (``edge``, ``regional``); names the
                          per-level columns (``comm_edge_s``); default ``cloud`` / ``level_k``
          deadline_s      cloud and servers: round deadline in simulated seconds (late workers are
                          left out of the average; overrides the experiment's deadline_s there)
          compute_ms      worker: one local iteration, in ms
          compute_trace   worker: name of a `t_s,compute_ms` trace (instead of compute_ms)
          slowdown        worker: multiplies its compute time (stragglers; default 1)
    edge  latency_ms      one-way latency, fixed
          rtt_trace       name of a `t_s,rtt_ms` trace; a hop costs half a sample
          bandwidth_mbps  capacity of each direction, Mbit/s
          up_mbps         capacity toward the cloud (overrides bandwidth_mbps)
          down_mbps       capacity away from the cloud (overrides bandwidth_mbps)
          bandwidth_trace name of a `t_s,mbps` trace: both directions, a sample per round
    any   label, description   free text, ignored
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import networkx as nx

from .traces import is_finite_number

ROLES = ("cloud", "server", "worker", "router")
_TEXT = {"label", "description"}
NODE_ATTRS: dict[str, set[str]] = {
    "cloud": {"role", "period", "tier", "deadline_s"} | _TEXT,
    "server": {"role", "period", "tier", "deadline_s"} | _TEXT,
    "router": {"role"} | _TEXT,
    "worker": {"role", "compute_ms", "compute_trace", "slowdown"} | _TEXT,
}
EDGE_ATTRS = {"latency_ms", "rtt_trace", "bandwidth_mbps", "up_mbps", "down_mbps", "bandwidth_trace"} | _TEXT
GRAPH_ATTRS = {"name", "description", "source"}
TIER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # becomes part of column names: comm_<tier>_s
MAX_PERIOD = 10**9  # local iterations; far beyond any run, and small enough for every integer type
MAX_MS = 86_400_000  # a day: no latency or iteration lasts longer, and sums of them stay finite
MIN_MBPS, MAX_MBPS = 1e-6, 1e9  # 1 bit/s to 1 Pbit/s: transfer times stay finite and nonzero


@dataclass(frozen=True)
class LinkSpec:
    """One graph edge, oriented child -> parent (``up`` is toward the cloud)."""

    child: str
    parent: str
    latency_ms: float | None  # one-way; None when rtt_trace is given
    rtt_trace: str | None
    up_mbps: float | None  # None when bandwidth_trace is given
    down_mbps: float | None
    bandwidth_trace: str | None


@dataclass(frozen=True)
class RootedTree:
    """What :func:`check_graph` found: the graph as a tree hanging from the cloud."""

    cloud: str
    parent: dict[str, str | None]  # graph parent of every node
    children: dict[str, list[str]]  # graph children, in natural name order
    order: list[str]  # depth-first pre-order from the cloud
    links: dict[str, LinkSpec]  # keyed by the child node


def default_tier(level: int) -> str:
    """The name of a server level whose servers give no ``tier``."""
    return "cloud" if level == 0 else f"level_{level}"


def tier_names(tiers_by_level: list[list[str | None]], src: str) -> tuple[str, ...]:
    """One name per server level, top first: the ``tier`` its servers share, else
    ``cloud`` for level 0 and ``level_k`` below. Servers of one level must agree."""
    names = []
    for k, tiers in enumerate(tiers_by_level):
        given = sorted({t for t in tiers if t is not None})
        if len(given) > 1 or (given and None in tiers):
            raise ValueError(f"{src}: the servers of level {k} have tiers {given + ['(none)'] * (None in tiers)}; "
                             f"give every server of a level the same 'tier' (or none)")
        names.append(given[0] if given else default_tier(k))
    if len(set(names)) != len(names):
        raise ValueError(f"{src}: tiers {names} repeat a name; each server level needs its own tier")
    return tuple(names)


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key that puts 'w2' before 'w10'."""
    # ASCII digits only: str.isdigit() is also true for '²', which int() refuses
    return [(0, int(tok)) if tok.isascii() and tok.isdigit() else (1, tok) for tok in re.split(r"([0-9]+)", name) if tok]


def check_graph(g: nx.Graph, src: str) -> RootedTree:
    """Every structural and attribute rule. ``src`` names the file or graph in messages."""
    if g.is_directed():
        raise ValueError(
            f"{src}: the topology graph must be undirected (links are full duplex); "
            f"give up_mbps/down_mbps on an edge for per-direction capacity"
        )
    if g.is_multigraph():
        twice = next(((u, v) for u, v in g.edges() if g.number_of_edges(u, v) > 1), None)
        where = f"edge {twice!r} is given {g.number_of_edges(*twice)} times: " if twice else ""
        raise ValueError(f"{src}: {where}parallel edges (a multigraph) are not allowed; one edge per node pair")
    for key in g.graph:
        if key not in GRAPH_ATTRS:
            raise ValueError(f"{src}: unknown graph attribute {key!r}; allowed: {sorted(GRAPH_ATTRS)}")
    if g.number_of_nodes() == 0:
        raise ValueError(f"{src}: the topology has no nodes")
    clouds = []
    for node, attrs in g.nodes(data=True):
        _check_node(src, node, attrs)
        if attrs["role"] == "cloud":
            clouds.append(node)
    if not clouds:
        raise ValueError(f"{src}: no node has role 'cloud'; exactly one cloud (the root, level 0) is required")
    if len(clouds) > 1:
        names = sorted(clouds, key=natural_key)
        raise ValueError(f"{src}: {len(clouds)} nodes have role 'cloud' ({names}); exactly one is allowed")
    cloud = clouds[0]
    if not any(a["role"] == "worker" for _, a in g.nodes(data=True)):
        raise ValueError(f"{src}: the topology has no worker nodes; the leaves of the tree must have role 'worker'")
    for u, v, attrs in g.edges(data=True):
        if u == v:
            raise ValueError(f"{src}: edge ({u!r}, {v!r}) is a self-loop; an edge joins two different nodes")
        _check_edge_attrs(src, u, v, attrs)
    reach = nx.node_connected_component(g, cloud)
    cut = sorted((n for n in g if n not in reach), key=lambda n: (g.nodes[n]["role"] != "worker", natural_key(n)))
    if cut:
        role = g.nodes[cut[0]]["role"]
        raise ValueError(
            f"{src}: {role} {cut[0]!r} is not connected to the cloud {cloud!r}"
            + (f" (nor are {len(cut) - 1} other node(s): {cut[1:6]})" if len(cut) > 1 else "")
            + "; every node must hang from the cloud"
        )
    if g.number_of_edges() != g.number_of_nodes() - 1:
        cycle = nx.find_cycle(g, source=cloud)
        edges = ", ".join(f"({u!r}, {v!r})" for u, v in cycle)
        raise ValueError(
            f"{src}: the aggregation tree has a cycle through edges {edges}; "
            f"the topology must be a tree rooted at the cloud (one path from each node to the cloud)"
        )
    parent: dict[str, str | None] = {cloud: None}
    children: dict[str, list[str]] = {}
    order: list[str] = []
    stack = [cloud]
    while stack:  # depth-first pre-order, children in natural name order
        node = stack.pop()
        order.append(node)
        kids = sorted((n for n in g[node] if n != parent[node]), key=natural_key)
        children[node] = kids
        for k in kids:
            parent[k] = node
        stack.extend(reversed(kids))
    for node in order:
        role = g.nodes[node]["role"]
        if role == "worker" and children[node]:
            raise ValueError(
                f"{src}: worker {node!r} has nodes below it ({children[node][:5]}); workers must be leaves"
            )
        if role != "worker" and not children[node]:
            raise ValueError(f"{src}: {role} {node!r} is a leaf with no workers below it; every leaf must be a worker")
    links = {n: _link(src, g, n, parent[n]) for n in order[1:]}  # type: ignore[arg-type]
    return RootedTree(cloud, parent, children, order, links)


def _check_node(src: str, node: str, attrs: dict) -> None:
    where = f"{src}: node {node!r}"
    role = attrs.get("role")
    if role is None:
        hint = "; it has no attributes at all: is an edge's end misspelt, or the node missing from the file?"
        raise ValueError(f"{where}: missing attribute 'role'; one of {list(ROLES)}" + ("" if attrs else hint))
    if role not in ROLES:
        raise ValueError(f"{where}: role {role!r} is not one of {list(ROLES)}")
    for key in attrs:
        if key not in NODE_ATTRS[role]:
            raise ValueError(
                f"{where}: unknown attribute {key!r} for a {role}; allowed: {sorted(NODE_ATTRS[role])}"
            )
    if role in ("cloud", "server"):
        if "period" not in attrs:
            raise ValueError(f"{where}: a {role} needs a 'period' (aggregate every `period` local iterations)")
        period = attrs["period"]
        if not _is_int(period) or int(period) < 1:
            raise ValueError(f"{where}: 'period' must be an integer >= 1, got {_show(period)}")
        if int(period) > MAX_PERIOD:
            raise ValueError(f"{where}: 'period' is {_show(period)}; a period is at most {MAX_PERIOD:_} local iterations")
        if "tier" in attrs and not (isinstance(attrs["tier"], str) and TIER_NAME.match(attrs["tier"])):
            raise ValueError(f"{where}: 'tier' must be a lowercase name of letters, digits and '_' "
                             f"starting with a letter (e.g. 'edge'), got {_show(attrs['tier'])}")
        if "deadline_s" in attrs and not (is_finite_number(attrs["deadline_s"]) and attrs["deadline_s"] > 0):
            raise ValueError(f"{where}: 'deadline_s' must be a number of seconds > 0, got {_show(attrs['deadline_s'])}")
    if role == "worker":
        if "compute_ms" in attrs and "compute_trace" in attrs:
            raise ValueError(f"{where}: give either 'compute_ms' or 'compute_trace', not both")
        if "compute_ms" in attrs:
            _nonneg(where, "compute_ms", attrs["compute_ms"], what="compute time")
        if "compute_trace" in attrs:
            _text(where, "compute_trace", attrs["compute_trace"])
        if "slowdown" in attrs:
            s = attrs["slowdown"]
            if not is_finite_number(s) or s <= 0:
                raise ValueError(f"{where}: 'slowdown' must be a number > 0, got {_show(s)}")


def _check_edge_attrs(src: str, u: str, v: str, attrs: dict) -> None:
    where = f"{src}: edge ({u!r}, {v!r})"
    for key in attrs:
        if key not in EDGE_ATTRS:
            raise ValueError(f"{where}: unknown attribute {key!r}; allowed: {sorted(EDGE_ATTRS)}")
    has_lat, has_rtt = "latency_ms" in attrs, "rtt_trace" in attrs
    if has_lat == has_rtt:
        raise ValueError(
            f"{where}: give exactly one of 'latency_ms' (one-way, fixed) or 'rtt_trace' (trace name); "
            + ("both given" if has_lat else "neither given")
        )
    if has_lat:
        _nonneg(where, "latency_ms", attrs["latency_ms"], what="latency")
    else:
        _text(where, "rtt_trace", attrs["rtt_trace"])
    fixed = [k for k in ("bandwidth_mbps", "up_mbps", "down_mbps") if k in attrs]
    if "bandwidth_trace" in attrs:
        if fixed:
            raise ValueError(f"{where}: 'bandwidth_trace' cannot be combined with {fixed}")
        _text(where, "bandwidth_trace", attrs["bandwidth_trace"])
    else:
        for k in fixed:
            x = attrs[k]
            if not is_finite_number(x) or x <= 0:
                raise ValueError(f"{where}: {k!r} must be a bandwidth > 0 Mbit/s, got {_show(x)}")
            if not MIN_MBPS <= x <= MAX_MBPS:
                raise ValueError(f"{where}: {k!r} is {_show(x)}; a bandwidth is from {MIN_MBPS:g} to {MAX_MBPS:g} Mbit/s")
        if "bandwidth_mbps" not in attrs and not ("up_mbps" in attrs and "down_mbps" in attrs):
            raise ValueError(
                f"{where}: no bandwidth; give 'bandwidth_mbps', or both 'up_mbps' and 'down_mbps', "
                f"or 'bandwidth_trace'"
            )


def _link(src: str, g: nx.Graph, child: str, parent: str) -> LinkSpec:
    a = g.edges[child, parent]
    bw = a.get("bandwidth_mbps")
    return LinkSpec(
        child=child,
        parent=parent,
        latency_ms=float(a["latency_ms"]) if "latency_ms" in a else None,
        rtt_trace=a.get("rtt_trace"),
        up_mbps=float(a.get("up_mbps", bw)) if "bandwidth_trace" not in a else None,
        down_mbps=float(a.get("down_mbps", bw)) if "bandwidth_trace" not in a else None,
        bandwidth_trace=a.get("bandwidth_trace"),
    )


def _is_int(x: object) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, int) or hasattr(x, "__index__"):
        return True
    return is_finite_number(x) and float(x).is_integer()  # GraphML/GML may store 50.0


def _nonneg(where: str, key: str, x: object, what: str = "value") -> None:
    """A time in ms: finite, >= 0 and at most MAX_MS."""
    if not is_finite_number(x):
        raise ValueError(f"{where}: {key!r} must be a finite number, got {_show(x)}")
    if x < 0:  # type: ignore[operator]
        raise ValueError(f"{where}: {key!r} is {_show(x)}; a {what} cannot be negative")
    if x > MAX_MS:  # type: ignore[operator]
        raise ValueError(f"{where}: {key!r} is {_show(x)}; a {what} is at most {MAX_MS:_} ms (a day)")


def _text(where: str, key: str, x: object) -> None:
    if not isinstance(x, str) or not x.strip():
        raise ValueError(f"{where}: {key!r} must be a trace name (a non-empty string), got {_show(x)}")


def _show(x: object) -> str:
    """``repr(x)`` for a message, with huge integers shortened (``1000...000 (401 digits)``)."""
    text = repr(x)
    if len(text) > 60:
        digits = str(x).lstrip("-") if isinstance(x, int) else ""
        text = f"{text[:12]}...{text[-6:]}" + (f" ({len(digits)} digits)" if digits.isdigit() else "")
    return text
