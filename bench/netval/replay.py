"""Price the ns-3 reference scenarios with the testbed's own network clock.

    python bench/netval/replay.py [--reference bench/netval/reference.json] [--markdown]

Each scenario of ``reference.json`` is self-contained (nodes, links with pinned values,
transfers); this rebuilds it as a testbed topology and prices it under the default TCP
model, the same without its loss model (``loss='none'``) and the fluid model: single and
shared-bottleneck transfers with
``simulate_flows`` (each a fresh connection, as in ns-3), aggregation rounds with a
``NetworkClock`` at the round's level (periods chosen so that exactly that level
aggregates at iteration 1, compute 0). The compared figure is each scenario's completion
time (its last byte received), relative to ns-3's: error = testbed / ns-3 - 1, signed, so
a negative error means the testbed is too fast. Used by the bench table (``--markdown``)
and by tests/net/test_net_netval.py, which keeps the agreement from being lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference.json"
if str(HERE.parents[1]) not in sys.path:
    sys.path.insert(0, str(HERE.parents[1]))

from testbed.net import FLUID, NetworkClock, TcpModel, simulate_flows  # noqa: E402

MODELS = {"tcp": TcpModel(), "none": TcpModel(loss="none"), "fluid": FLUID}


@dataclass(frozen=True)
class Comparison:
    id: str
    kind: str
    ns3_s: float
    ns3_rtos: int  # retransmission timeouts in the ns-3 run
    ns3_drops: int  # packets ns-3's queues dropped
    testbed_s: dict  # model name -> completion time (s)

    def error(self, model: str) -> float:
        return self.testbed_s[model] / self.ns3_s - 1


def scenario_graph(scenario: dict) -> nx.Graph:
    """The scenario as a testbed topology: roles as given, links with fixed latency and
    per-direction bandwidth; every server at or below the round's level aggregates every
    iteration and the ones above every second, so iteration 1 is exactly that round."""
    g = nx.Graph(name=scenario["id"].replace("/", "_"))
    level = scenario.get("meta", {}).get("server_level", 0)
    depth = _depths(scenario)
    for node in scenario["nodes"]:
        role = node["role"]
        attrs = {"role": role}
        if role in ("cloud", "server"):
            attrs["period"] = 1 if depth[node["id"]] >= level else 2
        elif role == "worker":
            attrs["compute_ms"] = 0.0
        g.add_node(node["id"], **attrs)
    for link in scenario["links"]:
        g.add_edge(link["child"], link["parent"], latency_ms=link["delay_ms"], up_mbps=link["up_mbps"],
                   down_mbps=link["down_mbps"])
    return g


def _depths(scenario: dict) -> dict[str, int]:
    """Aggregation depth of each node (routers do not count)."""
    parent = {link["child"]: link["parent"] for link in scenario["links"]}
    role = {n["id"]: n["role"] for n in scenario["nodes"]}

    def depth(n: str) -> int:
        p = parent.get(n)
        return 0 if p is None else depth(p) + (role[p] != "router")

    return {n: depth(n) for n in role}


def testbed_completion_s(scenario: dict, tcp: TcpModel) -> float:
    graph = scenario_graph(scenario)
    if scenario["kind"] == "round":
        size = scenario["meta"]["model_bytes"]
        clock = NetworkClock(graph, model_bytes=size, seed=0, tcp=tcp, compute_ms=0.0, record="none")
        clock.advance(1)
        return clock.now_s
    if any(t["after"] for t in scenario["transfers"]):
        raise ValueError(f"{scenario['id']}: dependent transfers are only priced as aggregation rounds")
    flows = [(t["src"], t["dst"], t["bytes"], t["start_s"]) for t in scenario["transfers"]]
    return max(simulate_flows(graph, flows, seed=0, tcp=tcp))


def compare(reference: Path = REFERENCE) -> list[Comparison]:
    data = json.loads(Path(reference).read_text(encoding="utf-8"))
    out = []
    for entry in data["scenarios"]:
        if not entry.get("complete", True):
            continue  # a transfer ns-3 never finished: nothing to compare
        sc = entry["scenario"]
        times = {name: testbed_completion_s(sc, tcp) for name, tcp in MODELS.items()}
        out.append(Comparison(sc["id"], sc["kind"], float(entry["completion_s"]), int(entry.get("total_rtos", 0)),
                              int(entry.get("total_drops", 0)), times))
    return out


def summary(rows: list[Comparison], model: str = "tcp") -> dict[str, str]:
    """Per kind, overall and over the scenarios without an ns-3 timeout: share within 10%,
    within 15%, median and extreme signed errors."""
    out = {}
    for kind in ("single", "shared", "round", "all", "no RTO"):
        sel = [r for r in rows if kind in ("all", r.kind) or (kind == "no RTO" and r.ns3_rtos == 0)]
        if not sel:
            continue
        err = sorted(r.error(model) for r in sel)
        within10 = sum(abs(e) <= 0.10 for e in err)
        within15 = sum(abs(e) <= 0.15 for e in err)
        out[kind] = (f"{within10}/{len(sel)} within 10%, {within15}/{len(sel)} within 15%; "
                     f"error median {err[len(err) // 2]:+.1%}, from {err[0]:+.1%} to {err[-1]:+.1%}")
    return out


def markdown(rows: list[Comparison]) -> str:
    lines = ["| scenario | ns-3 (s) | ns-3 RTOs | testbed TCP (s) | error | TCP, no loss (s) | error "
             "| testbed fluid (s) | error |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.id} | {r.ns3_s:.4f} | {r.ns3_rtos} | {r.testbed_s['tcp']:.4f} | {r.error('tcp'):+.1%} | "
                     f"{r.testbed_s['none']:.4f} | {r.error('none'):+.1%} | "
                     f"{r.testbed_s['fluid']:.4f} | {r.error('fluid'):+.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--markdown", action="store_true", help="print the per-scenario table as markdown")
    args = parser.parse_args(argv)
    rows = compare(args.reference)
    if args.markdown:
        print(markdown(rows))
        print()
    for model in MODELS:
        print(f"testbed {model if model != 'none' else 'tcp, loss=none'} vs ns-3:")
        for kind, text in summary(rows, model).items():
            print(f"  {kind:7s} {text}")


if __name__ == "__main__":
    main()
