"""Topology files: reading node-link JSON, GraphML and GML into networkx, strictly, and
writing node-link JSON. Refusals name the file and, where it can be told, the line."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import networkx as nx

from .traces import read_text

SUFFIXES = (".json", ".graphml", ".gml")  # the formats a topology file may have


def read_graph(path: str | os.PathLike) -> nx.Graph:
    """Parse a node-link JSON, GraphML or GML file (no validation beyond parsing).
    Refusals are ``ValueError`` naming the file and, where the parser tells, the line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown topology format {suffix!r}; use {', '.join(SUFFIXES)}")
    from testbed.files import check_input_file

    check_input_file(path, "a topology is a node-link JSON, GraphML or GML file")
    try:
        if suffix == ".json":
            return _read_node_link(path)
        if suffix == ".graphml":
            try:
                with warnings.catch_warnings():  # "no key type ... using string": the rules check every value next
                    warnings.simplefilter("ignore")
                    g = nx.read_graphml(path)
            except ValueError as err:  # a typed <data> value that does not convert
                raise ValueError(_graphml_bad_value(path) or str(err)) from None
            for key in ("node_default", "edge_default"):  # reader artefacts, not user data
                if not g.graph.get(key, True):
                    del g.graph[key]
            return g
        return nx.parse_gml(_ascii_lines(path))
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a topology file") from None
    # what the parsers raise on damaged files (LookupError: an unknown XML encoding)
    except (ValueError, KeyError, TypeError, IndexError, LookupError, AttributeError, SyntaxError, RecursionError,
            nx.NetworkXError) as err:
        text = str(err) if not isinstance(err, RecursionError) else "nested too deeply for a topology"
        if text.startswith(f"{path}: "):  # already names the file
            raise ValueError(text) from None
        raise ValueError(f"{path}: cannot parse as {suffix[1:]}: {text}") from None


def _read_node_link(path: Path) -> nx.Graph:
    text = read_text(path, "topology files are UTF-8 node-link JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}, column {err.colno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict) or "nodes" not in data:
        raise ValueError("expected node-link JSON: an object with 'nodes' and 'edges' (or 'links')")
    if "links" in data and "edges" in data:
        raise ValueError(f"{path}: has both 'edges' and 'links'; give the edges under one of them")
    edges = "links" if "links" in data else "edges"
    data.setdefault(edges, [])
    _check_node_link(path, data, edges)
    return nx.node_link_graph(
        data, directed=bool(data.get("directed", False)), multigraph=bool(data.get("multigraph", False)),
        edges=edges,
    )


def _check_node_link(path: Path, data: dict, edges: str) -> None:
    """What networkx would silently merge or mangle: ids that are not names, a node listed
    twice (its attributes would be merged), an edge listed twice (the last one would win)."""
    for key in ("nodes", edges):
        if not isinstance(data[key], list) or not all(isinstance(x, dict) for x in data[key]):
            raise ValueError(f"{path}: '{key}' must be a list of objects")
    seen: set = set()
    for k, node in enumerate(data["nodes"]):
        if "id" not in node:
            raise ValueError(f"{path}: nodes[{k}] has no 'id'; every node needs a name")
        nid = node["id"]
        if isinstance(nid, bool) or not isinstance(nid, (str, int)):
            raise ValueError(f"{path}: nodes[{k}]: 'id' must be a string (or an integer), got {nid!r}")
        if nid in seen:
            raise ValueError(f"{path}: nodes[{k}]: node {nid!r} is listed twice; each node once, with all its attributes")
        seen.add(nid)
    pairs: dict = {}
    directed = bool(data.get("directed", False))
    for k, edge in enumerate(data[edges]):
        for end in ("source", "target"):
            if end not in edge:
                raise ValueError(f"{path}: {edges}[{k}] has no '{end}'; an edge names its 'source' and 'target' nodes")
            if isinstance(edge[end], bool) or not isinstance(edge[end], (str, int)):
                raise ValueError(f"{path}: {edges}[{k}]: '{end}' must be a node id, got {edge[end]!r}")
        pair = (edge["source"], edge["target"])
        key = pair if directed else frozenset(pair)
        if key in pairs and not data.get("multigraph", False):
            raise ValueError(
                f"{path}: {edges}[{k}]: edge {pair!r} is listed twice (also {edges}[{pairs[key]}]); "
                f"one edge per node pair"
            )
        pairs[key] = k


def _ascii_lines(path: Path) -> list[str]:
    """A GML file's lines; GML is ASCII, so any other byte is refused with its line."""
    data = path.read_bytes()
    for line_no, line in enumerate(data.split(b"\n"), start=1):
        bad = next((b for b in line if b >= 0x80), None)
        if bad is not None:
            raise ValueError(
                f"{path}: line {line_no}: byte 0x{bad:02x} is not ASCII; GML files are ASCII "
                f"(write other characters as entities, e.g. &#233;)"
            )
    return data.decode("ascii").splitlines()


def _graphml_bad_value(path: Path) -> str | None:
    """Where a GraphML <data> value does not match its key's declared attr.type, or None."""
    import xml.etree.ElementTree as ET

    ns = "{http://graphml.graphdrawing.org/xmlns}"
    convert = {"int": int, "long": int, "integer": int, "float": float, "double": float, "number": float}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    keys = {k.get("id"): (k.get("attr.name"), k.get("attr.type", "string")) for k in root.iter(f"{ns}key")}
    for tag in ("node", "edge"):
        for element in root.iter(f"{ns}{tag}"):
            for d in element.findall(f"{ns}data"):
                name, kind = keys.get(d.get("key"), (None, "string"))
                if kind not in convert:
                    continue
                try:
                    convert[kind](d.text or "")
                except ValueError:
                    where = (f"node {element.get('id')!r}" if tag == "node"
                             else f"edge ({element.get('source')!r}, {element.get('target')!r})")
                    return (f"{path}: {where}: {name!r} is declared {kind} (attr.type) but holds "
                            f"{(d.text or '')!r}; write a number, or declare the key's attr.type as string")
    return None


def write_graph(graph: nx.Graph, path: str | os.PathLike) -> None:
    """Write a topology graph as node-link JSON (stable key order), atomically."""
    from testbed.files import atomic_write_text

    data = nx.node_link_data(graph, edges="edges")
    atomic_write_text(Path(path), json.dumps(data, indent=1, sort_keys=False) + "\n")
