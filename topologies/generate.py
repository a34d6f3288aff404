"""Regenerate the shipped topology files: `python topologies/generate.py` (repo root).

Each topology is built here in code and written as node-link JSON, so the files are
reproducible and reviewable. Where each number comes from is in topologies/README.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

import networkx as nx

from testbed.net.topology import load_topology, write_graph
from testbed.net.zoo import ZooImport, import_zoo

HERE = Path(__file__).resolve().parent

# Home broadband link, as quoted in issue 3 (medians ~150-200 Mbit/s down, 20 up):
# we take the low end of the download range.
HOME_LINK = {"up_mbps": 20.0, "down_mbps": 150.0}
DC_MBPS = 10_000.0  # a cloud instance's NIC (assumption; the TCP window cap binds first)
COMPUTE_MS = 4.0  # VGG-11 iteration on one GPU, Wang et al. 2022, Section "Experiments"


def paper2level() -> nx.Graph:
    """Wang et al. (AAAI 2022): home devices -> near EC2 local servers -> far EC2 global
    server; n = 10 workers in N = 2 groups, G = 50, I = 5 (their Table 2 setting)."""
    g = nx.Graph(name="paper2level", description="Wang et al. 2022 setting: 10 home devices in 2 groups -> near EC2 "
                 "local servers (I = 5) -> far EC2 global server (G = 50)")
    g.add_node("far-ec2", role="cloud", period=50)
    for k in range(2):
        local = f"near-ec2-{k}"
        g.add_node(local, role="server", period=5)
        g.add_edge("far-ec2", local, rtt_trace="interregion_use1_usw2", bandwidth_mbps=DC_MBPS)
        for j in range(5):
            home = f"home{5 * k + j}"
            g.add_node(home, role="worker", compute_ms=COMPUTE_MS)
            g.add_edge(local, home, rtt_trace="home_near_ec2", **HOME_LINK)
    return g


def star() -> nx.Graph:
    """Local SGD as in the paper's baselines: the same 10 home devices, each talking
    straight to the far EC2 global server (period P = 10)."""
    g = nx.Graph(name="star", description="10 home devices directly under the far EC2 global server (local SGD)")
    g.add_node("far-ec2", role="cloud", period=10)
    for j in range(10):
        g.add_node(f"home{j}", role="worker", compute_ms=COMPUTE_MS)
        g.add_edge("far-ec2", f"home{j}", rtt_trace="home_far_ec2", **HOME_LINK)
    return g


def edge3level() -> nx.Graph:
    """24 home workers -> 6 metro edge servers -> 3 regional servers (us-east-2, us-west-2,
    eu-central-1) -> cloud in us-east-1; periods cloud 40, regional 10, edge 2."""
    g = nx.Graph(name="edge3level", description="24 home workers -> 6 metro edge servers (period 2) -> 3 regional "
                 "servers (period 10) -> cloud in us-east-1 (period 40)")
    g.add_node("use1", role="cloud", period=40)
    regions = [("use2", "interregion_use1_use2"), ("usw2", "interregion_use1_usw2"), ("euc1", "interregion_use1_euc1")]
    for region, trace in regions:
        g.add_node(region, role="server", period=10)
        g.add_edge("use1", region, rtt_trace=trace, bandwidth_mbps=DC_MBPS)
        for e in range(2):
            edge = f"{region}-edge{e}"
            g.add_node(edge, role="server", period=2)
            # metro fibre to the region's data centres: ~500 km at 200 km/ms (assumption)
            g.add_edge(region, edge, latency_ms=2.5, bandwidth_mbps=DC_MBPS)
            for j in range(4):
                g.add_node(f"{edge}-home{j}", role="worker", compute_ms=COMPUTE_MS)
                g.add_edge(edge, f"{edge}-home{j}", rtt_trace="home_near_ec2", **HOME_LINK)
    return g


ZOO = ZooImport(cloud="Chicago", servers=("Seattle", "Los Angeles", "Houston", "Atlanta", "New York"),
                cloud_period=20, server_period=5, workers_per_server=2, worker_compute_ms=COMPUTE_MS)


def zoo_usbackbone() -> nx.Graph:
    """The hand-written Zoo-style backbone in zoo/usbackbone.graphml, imported."""
    g = import_zoo(HERE / "zoo" / "usbackbone.graphml", ZOO)
    g.graph["name"] = "zoo_usbackbone"
    return g


BUILDERS = {"paper2level": paper2level, "star": star, "edge3level": edge3level, "zoo_usbackbone": zoo_usbackbone}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, build in BUILDERS.items():
        g = build()
        logging.info("%s: %r", name, load_topology(g))  # validate before writing
        write_graph(g, HERE / f"{name}.json")


if __name__ == "__main__":
    main()
