"""The scenario grid of the ns-3 reference (bench/netval), as plain dicts.

Each scenario is self-contained: nodes, links (pinned bandwidths and one-way delays) and
transfers, in the format below; nothing refers to the project's topology or trace files.

    {"id": "single/0.22MB/20Mbps/7ms",
     "kind": "single" | "shared" | "round",
     "nodes": [{"id": "w0", "role": "worker"}, ...],            # worker | server | cloud | router
     "links": [{"child": "w0", "parent": "s0", "up_mbps": 20.0, "down_mbps": 20.0, "delay_ms": 7.0}, ...],
         # full duplex; up = child -> parent; delay_ms = one-way propagation delay; the links form a tree
     "transfers": [{"id": 0, "src": "w0", "dst": "s0", "bytes": 217640, "start_s": 0.0, "after": []}, ...],
         # starts at start_s after T0, or, with a non-empty "after", the moment the last listed
         # transfer has been fully received (start_s is then 0.0)
     "meta": {...}}                                              # free-form description

Grid (``all_scenarios()``, deterministic):

* ``single``: one upload w0 -> s0 over one symmetric link; 4 sizes x 3 rates x 3 delays = 36.
* ``shared``: n = 2, 5, 10 workers upload at once through their own access link (10x the
  bottleneck rate, 1 ms) to router r0, then over one bottleneck r0 -> s0; 3 rates x 3 delays
  x 2 sizes x 3 n = 54.
* ``round``: one aggregation round per shipped topology (read with the project's own
  loader, every file ``testbed.net.available_topologies()`` lists), at the top level and,
  where the tree has server levels below the cloud, at the bottom server level; two model
  sizes. Link latencies and bandwidths are pinned (fixed value, or the median of the trace).

Run ``python bench/netval/scenarios.py`` for a summary (``--json`` dumps the grid).
Rounds need the project importable (networkx, numpy): use the project's .venv python.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

MB_LABEL = {217_640: "0.22", 1_000_000: "1", 10_000_000: "10", 36_900_000: "36.9"}
MODEL_NAME = {217_640: "mlp", 36_900_000: "vgg11"}

SINGLE_SIZES = (217_640, 1_000_000, 10_000_000, 36_900_000)
RATES_MBPS = (20.0, 100.0, 1000.0)
DELAYS_MS = (7.0, 32.0, 46.0)
SHARED_N = (2, 5, 10)
SHARED_SIZES = (1_000_000, 10_000_000)
ACCESS_FACTOR = 10.0  # shared: access link rate = ACCESS_FACTOR x bottleneck
ACCESS_DELAY_MS = 1.0
ROUND_MODELS = (217_640, 36_900_000)
KINDS = ("single", "shared", "round")


def _num(x: float) -> str:
    return f"{x:g}"


def _link(child: str, parent: str, up: float, down: float, delay: float) -> dict:
    return {"child": child, "parent": parent, "up_mbps": float(up), "down_mbps": float(down),
            "delay_ms": float(delay)}


def single_scenarios() -> list[dict]:
    out = []
    for size in SINGLE_SIZES:
        for mbps in RATES_MBPS:
            for delay in DELAYS_MS:
                out.append({
                    "id": f"single/{MB_LABEL[size]}MB/{_num(mbps)}Mbps/{_num(delay)}ms",
                    "kind": "single",
                    "nodes": [{"id": "w0", "role": "worker"}, {"id": "s0", "role": "cloud"}],
                    "links": [_link("w0", "s0", mbps, mbps, delay)],
                    "transfers": [{"id": 0, "src": "w0", "dst": "s0", "bytes": size, "start_s": 0.0, "after": []}],
                    "meta": {"n_flows": 1, "bytes": size, "size_mb": float(MB_LABEL[size]), "mbps": mbps,
                             "delay_ms": delay, "path_rtt_ms": 2 * delay},
                })
    return out


def shared_scenarios() -> list[dict]:
    out = []
    for n in SHARED_N:
        for size in SHARED_SIZES:
            for mbps in RATES_MBPS:
                for delay in DELAYS_MS:
                    workers = [f"w{i}" for i in range(n)]
                    access = ACCESS_FACTOR * mbps
                    out.append({
                        "id": f"shared/n{n}/{MB_LABEL[size]}MB/{_num(mbps)}Mbps/{_num(delay)}ms",
                        "kind": "shared",
                        "nodes": [{"id": w, "role": "worker"} for w in workers]
                                 + [{"id": "r0", "role": "router"}, {"id": "s0", "role": "cloud"}],
                        "links": [_link(w, "r0", access, access, ACCESS_DELAY_MS) for w in workers]
                                 + [_link("r0", "s0", mbps, mbps, delay)],
                        "transfers": [{"id": i, "src": w, "dst": "s0", "bytes": size, "start_s": 0.0, "after": []}
                                      for i, w in enumerate(workers)],
                        "meta": {"n_flows": n, "bytes": size, "size_mb": float(MB_LABEL[size]), "mbps": mbps,
                                 "delay_ms": delay, "access_mbps": access, "access_delay_ms": ACCESS_DELAY_MS,
                                 "path_rtt_ms": 2 * (delay + ACCESS_DELAY_MS)},
                    })
    return out


# ---- rounds on the shipped topologies -------------------------------------------------

def _median(values) -> float:
    v = sorted(float(x) for x in values)
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def pinned_links(topo) -> tuple[list[dict], dict[str, str]]:
    """The topology's links with fixed values: latency_ms as is, an rtt_trace's median / 2,
    a bandwidth_trace's median for both directions. Also says where each value came from."""
    links, source = [], {}
    for spec in topo.links:
        notes = []
        if spec.latency_ms is not None:
            delay = float(spec.latency_ms)
            notes.append("latency_ms")
        else:
            delay = _median(topo.traces[spec.rtt_trace].values) / 2
            notes.append(f"rtt_trace {spec.rtt_trace}: median rtt_ms / 2")
        if spec.bandwidth_trace is not None:
            up = down = _median(topo.traces[spec.bandwidth_trace].values)
            notes.append(f"bandwidth_trace {spec.bandwidth_trace}: median mbps")
        else:
            up, down = float(spec.up_mbps), float(spec.down_mbps)
            notes.append("up_mbps/down_mbps")
        links.append(_link(spec.child, spec.parent, up, down, delay))
        source[spec.child] = "; ".join(notes)
    return links, source


def _round(topo, level: str, model_bytes: int) -> dict:
    order = list(topo.role)  # depth-first pre-order from the cloud
    role, agg_parent, lvl = topo.role, topo.agg_parent, topo.level
    kids: dict[str, list[str]] = {n: [] for n in order if role[n] != "router"}
    for n in order:
        if role[n] != "router" and agg_parent[n] is not None:
            kids[agg_parent[n]].append(n)
    depth = max(lvl[w] for w in topo.worker_nodes)
    transfers: list[dict] = []

    def add(src, dst, after):
        transfers.append({"id": len(transfers), "src": src, "dst": dst, "bytes": model_bytes,
                          "start_s": 0.0, "after": sorted(after)})
        return transfers[-1]["id"]

    if level == "top":
        server_level = 0
        up: dict[str, int] = {}
        for d in range(depth, 0, -1):  # uploads, deepest first: dependencies precede dependents
            for n in order:
                if role[n] != "router" and lvl[n] == d:
                    up[n] = add(n, agg_parent[n], [up[c] for c in kids[n]])
        down: dict[str, int] = {}
        for d in range(1, depth + 1):  # downloads, top first
            for n in order:
                if role[n] != "router" and lvl[n] == d:
                    p = agg_parent[n]
                    after = [up[c] for c in kids[p]] if p == topo.cloud else [down[p]]
                    down[n] = add(p, n, after)
    else:  # bottom: every bottom server aggregates its own workers, all at once
        server_level = depth - 1
        bottoms = [n for n in order if role[n] in ("cloud", "server") and lvl[n] == server_level]
        up = {}
        for s in bottoms:
            for w in kids[s]:
                up[w] = add(w, s, [])
        for s in bottoms:
            for w in kids[s]:
                add(s, w, [up[c] for c in kids[s]])
    links, link_sources = pinned_links(topo)
    return {
        "id": f"round/{topo.name}/{level}/{MB_LABEL[model_bytes]}MB",
        "kind": "round",
        "nodes": [{"id": n, "role": role[n]} for n in order],
        "links": links,
        "transfers": transfers,
        "meta": {"topology": topo.name, "level": level, "server_level": server_level,
                 "server_levels": topo.tree.n_levels, "model_bytes": model_bytes,
                 "model": MODEL_NAME.get(model_bytes, ""), "n_workers": topo.n_workers,
                 "n_transfers": len(transfers), "link_sources": link_sources},
    }


def round_scenarios(topology_dir=None) -> list[dict]:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from testbed.net import load_topology
    from testbed.net.topology import available_topologies

    out = []
    for name in available_topologies(topology_dir):
        topo = load_topology(name, topology_dir=topology_dir)
        levels = ["top"] + (["bottom"] if topo.tree.n_levels > 1 else [])
        for level in levels:
            for size in ROUND_MODELS:
                out.append(_round(topo, level, size))
    return out


def all_scenarios(kinds=KINDS) -> list[dict]:
    out = []
    if "single" in kinds:
        out += single_scenarios()
    if "shared" in kinds:
        out += shared_scenarios()
    if "round" in kinds:
        out += round_scenarios()
    ids = [s["id"] for s in out]
    assert len(set(ids)) == len(ids), "scenario ids must be unique"
    for s in out:
        check(s)
    return out


# ---- helpers shared with ns3run.py (and usable by replay code) ------------------------

def tree_parent(scn: dict) -> dict[str, tuple[str, int]]:
    """child node -> (parent node, index of the link) for a scenario's tree."""
    return {l["child"]: (l["parent"], k) for k, l in enumerate(scn["links"])}


def tree_path(scn: dict, src: str, dst: str, _parent=None) -> list[tuple[int, bool]]:
    """Links from src to dst as (link index, going up = child -> parent)."""
    parent = _parent or tree_parent(scn)

    def chain(n):
        out = [n]
        while out[-1] in parent:
            out.append(parent[out[-1]][0])
        return out

    a, b = chain(src), chain(dst)
    common = next(n for n in a if n in set(b))
    up = [(parent[n][1], True) for n in a[:a.index(common)]]
    down = [(parent[n][1], False) for n in reversed(b[:b.index(common)])]
    return up + down


def path_rtt_ms(scn: dict, src: str, dst: str, _parent=None) -> float:
    """Round-trip propagation delay between two nodes (2 x the sum of one-way delays)."""
    return 2 * sum(scn["links"][k]["delay_ms"] for k, _ in tree_path(scn, src, dst, _parent))


def check(scn: dict) -> None:
    """Structural checks: a tree over the nodes, known endpoints, dependencies on earlier ids."""
    ids = [n["id"] for n in scn["nodes"]]
    assert len(set(ids)) == len(ids), f"{scn['id']}: duplicate node ids"
    assert len(scn["links"]) == len(ids) - 1, f"{scn['id']}: links do not form a tree"
    parent = tree_parent(scn)
    assert len(parent) == len(scn["links"]), f"{scn['id']}: a node has two parents"
    roots = [n for n in ids if n not in parent]
    assert len(roots) == 1, f"{scn['id']}: {len(roots)} roots"
    for n in ids:  # every node reaches the root
        seen, m = 0, n
        while m in parent:
            m, seen = parent[m][0], seen + 1
            assert seen <= len(ids), f"{scn['id']}: cycle"
    for l in scn["links"]:
        assert l["up_mbps"] > 0 and l["down_mbps"] > 0 and l["delay_ms"] >= 0 and math.isfinite(l["delay_ms"])
    tids = set()
    for t in scn["transfers"]:
        assert t["src"] in ids and t["dst"] in ids and t["src"] != t["dst"], f"{scn['id']}: transfer {t['id']}"
        assert t["bytes"] > 0 and all(a in tids for a in t["after"]), f"{scn['id']}: transfer {t['id']}"
        tids.add(t["id"])


if __name__ == "__main__":
    grid = all_scenarios()
    if "--json" in sys.argv:
        json.dump(grid, sys.stdout, indent=1)
        print()
    else:
        for kind in KINDS:
            print(kind, sum(s["kind"] == kind for s in grid))
        for s in grid:
            if s["kind"] == "round":
                print(" ", s["id"], f"{len(s['nodes'])} nodes, {len(s['transfers'])} transfers")
