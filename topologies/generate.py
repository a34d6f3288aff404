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

# ---- link values: which are measured and which are assumed (topologies/README.md) ------
# Home broadband: no measurement in ../shared/data/net. Quoted medians (issue 3: ~150-200
# Mbit/s down, 20 up, 14 ms): the low end of the download range; RTT a synthesized trace.
HOME_LINK = {"rtt_trace": "synth_home_access", "up_mbps": 20.0, "down_mbps": 150.0}
# EC2 <-> EC2 capacity between data centres (assumption). The per-flow rate is set by the
# TCP window, not by this: iperf's single stream moved ~1 MiB per RTT on all 334 measured
# AWS pairs (traces/sources/aws_interregion_2022-02.json), e.g. 742 Mbit/s at 11.3 ms.
DC_MBPS = 10_000.0
COMPUTE_MS = 4.0  # VGG-11 iteration on one GPU, Wang et al. 2022, Section "Experiments"
# measured RTT traces (traces/README.md): ICMP pings between EC2 instances in three regions
# (US, EU, AP) and ping averages of the Feb 2022 iperf runs us-east-1 <-> us-east-2
INTRA_US, US_EU, US_AP, USE1_USE2 = "ec2_intra_us", "ec2_us_eu", "ec2_us_ap", "aws_use1_use2"
METRO_MS = 2.5  # one way, ~500 km of metro/regional fibre at 200 km/ms (assumption)


def paper2level() -> nx.Graph:
    """Wang et al. (AAAI 2022): home devices -> near EC2 local servers -> far EC2 global
    server; n = 10 workers in N = 2 groups, G = 50, I = 5. Near = the homes' own region
    (US), far = EU: the measured US <-> EU EC2 RTT (p50 90.1 ms)."""
    g = nx.Graph(name="paper2level", description="Wang et al. 2022 setting: 10 home devices in 2 groups -> near EC2 "
                 "local servers in the US (I = 5) -> far EC2 global server in the EU (G = 50)")
    return _two_groups_of_five(g, "far-ec2", "near-ec2-{}", "home{}", {"rtt_trace": US_EU, "bandwidth_mbps": DC_MBPS},
                               HOME_LINK)


def _two_groups_of_five(g: nx.Graph, cloud: str, server: str, worker: str, uplink: dict, access: dict) -> nx.Graph:
    """The paper's tree: a cloud (G = 50) over N = 2 local servers (I = 5) of 5 workers
    each; ``server`` and ``worker`` are name patterns taking the index."""
    g.add_node(cloud, role="cloud", period=50)
    for k in range(2):
        local = server.format(k)
        g.add_node(local, role="server", period=5, tier="local")
        g.add_edge(cloud, local, **uplink)
        for j in range(5):
            w = worker.format(5 * k + j)
            g.add_node(w, role="worker", compute_ms=COMPUTE_MS)
            g.add_edge(local, w, **access)
    return g


def star() -> nx.Graph:
    """Local SGD as in the paper's baselines: the same 10 home devices, their access links
    into the near region's network (a router), then the measured US <-> EU path to the
    far EC2 global server (period P = 10)."""
    g = nx.Graph(name="star", description="10 home devices -> near region (router) -> far EC2 global server (local SGD)")
    g.add_node("far-ec2", role="cloud", period=10)
    g.add_node("near-region", role="router")
    g.add_edge("far-ec2", "near-region", rtt_trace=US_EU, bandwidth_mbps=DC_MBPS)
    for j in range(10):
        g.add_node(f"home{j}", role="worker", compute_ms=COMPUTE_MS)
        g.add_edge("near-region", f"home{j}", **HOME_LINK)
    return g


def edge3level() -> nx.Graph:
    """24 home workers -> 6 metro edge servers -> 3 regional servers (us-east-2, EU, AP)
    -> cloud in the US (us-east-1); periods cloud 40, regional 10, edge 2."""
    g = nx.Graph(name="edge3level", description="24 home workers -> 6 metro edge servers (period 2) -> 3 regional "
                 "servers in us-east-2, EU, AP (period 10) -> cloud in us-east-1 (period 40)")
    g.add_node("use1", role="cloud", period=40)
    regions = [("use2", USE1_USE2), ("eu", US_EU), ("ap", US_AP)]
    for region, trace in regions:
        g.add_node(region, role="server", period=10, tier="regional")
        g.add_edge("use1", region, rtt_trace=trace, bandwidth_mbps=DC_MBPS)
        for e in range(2):
            edge = f"{region}-edge{e}"
            g.add_node(edge, role="server", period=2, tier="edge")
            g.add_edge(region, edge, latency_ms=METRO_MS, bandwidth_mbps=DC_MBPS)
            for j in range(4):
                g.add_node(f"{edge}-home{j}", role="worker", compute_ms=COMPUTE_MS)
                g.add_edge(edge, f"{edge}-home{j}", **HOME_LINK)
    return g


# edge computing: workers on a site LAN with an on-site edge server; the WAN is the constraint
LAN = {"rtt_trace": INTRA_US, "bandwidth_mbps": 1_000.0}  # switched Gigabit LAN; RTT: the measured in-region one
SITE_WAN_MBPS = 100.0  # each site's business-fibre uplink, symmetric (assumption)


def edge_mec() -> nx.Graph:
    """Edge computing: 4 sites of 4 workers, each worker on its site's Gigabit LAN with
    an on-site (MEC) edge server; each site reaches the cloud region over a 100 Mbit/s
    WAN uplink and the measured US <-> EU path. Periods: cloud 20, edge 2."""
    g = nx.Graph(name="edge_mec", description="16 workers on 4 site LANs (1 Gbit/s) -> on-site edge servers (period 2) "
                 "-> 100 Mbit/s site uplinks -> cloud in another region (period 20)")
    g.add_node("cloud", role="cloud", period=20)
    g.add_node("cloud-region", role="router")
    g.add_edge("cloud", "cloud-region", rtt_trace=US_EU, bandwidth_mbps=DC_MBPS)
    for s in range(4):
        site = f"site{s}"
        g.add_node(site, role="server", period=2, tier="edge")
        g.add_edge("cloud-region", site, latency_ms=METRO_MS, bandwidth_mbps=SITE_WAN_MBPS)
        for j in range(4):
            g.add_node(f"{site}-w{j}", role="worker", compute_ms=COMPUTE_MS)
            g.add_edge(site, f"{site}-w{j}", **LAN)
    return g


# The paper preset's network: round costs that Table 2 implies (derivation in
# topologies/README.md, re-run with `python topologies/paper_costs.py`). Capacities are
# assumptions sized so that neither the NICs nor the region uplink, but the TCP window
# (preset `paper`: 12 MiB), sets a transfer's rate, as in the paper's accounting, where
# every device's transfer was timed on its own.
GPU_NIC_MBPS = 400_000.0  # per GPU worker: p5-class instances (3,200 Gbit/s for 8 GPUs)
PAPER_UPLINK_MBPS = 50_000.0  # region uplink of a group: five 12 MiB / 11 ms streams at once in local SGD


def paper_table2() -> nx.Graph:
    """10 GPU workers in N = 2 groups; each group and its local server in one EC2 region
    (measured in-region RTT), the global server in the next region (measured us-east-1
    <-> us-east-2 RTT). With a 12 MiB TCP window a 531 MB model crosses the regions in
    about half a second (a global round ~1.06 s, the ~1 s Table 2 implies) and a group's
    LAN in ~15 ms (a local round 2.8% of a global one)."""
    g = nx.Graph(name="paper_table2", description="Wang et al. 2022 Table 2 round costs: 2 groups of 5 GPU workers, "
                 "local servers in-region (I = 5), global server one region away (G = 50)")
    return _two_groups_of_five(g, "use2", "use1-local{}", "use1-gpu{}",
                               {"rtt_trace": USE1_USE2, "bandwidth_mbps": PAPER_UPLINK_MBPS},
                               {"rtt_trace": INTRA_US, "bandwidth_mbps": GPU_NIC_MBPS})


ZOO = ZooImport(cloud="Chicago", servers=("Seattle", "Los Angeles", "Houston", "Atlanta", "New York"),
                cloud_period=20, server_period=5, workers_per_server=2, worker_compute_ms=COMPUTE_MS)


def zoo_usbackbone() -> nx.Graph:
    """The hand-written Zoo-style backbone in zoo/usbackbone.graphml, imported."""
    g = import_zoo(HERE / "zoo" / "usbackbone.graphml", ZOO)
    g.graph["name"] = "zoo_usbackbone"
    return g


BUILDERS = {"paper2level": paper2level, "star": star, "edge3level": edge3level, "edge_mec": edge_mec,
            "paper_table2": paper_table2, "zoo_usbackbone": zoo_usbackbone}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, build in BUILDERS.items():
        g = build()
        logging.info("%s: %r", name, load_topology(g))  # validate before writing
        write_graph(g, HERE / f"{name}.json")


if __name__ == "__main__":
    main()
