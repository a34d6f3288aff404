"""The testbed's clock: topologies, RTT traces, a flow-level network and the H-SGD schedule.

    topo = load_topology("edge3level")            # <repo>/topologies/edge3level.json
    clock = NetworkClock(topo, model_bytes=37_000_000, seed=0)
    for t in range(1, 1001):
        clock.advance(t)                           # compute, then the aggregations due at t
    clock.now_s, clock.breakdown(), clock.events_frame()

    simulate_flows(topo, [("w0", "cloud", 10e6, 0.0)])   # probe the flow model
"""

from .clock import ClockConfig, Event, NetworkClock, price_schedule
from .flows import FlowNetwork, max_min_rates
from .importers import read_latency_matrix, read_ping_table
from .probe import simulate_flows
from .sampling import BootstrapSampler, ReplaySampler, SamplerBank
from .tcp import FLUID, TcpModel
from .topology import Topology, available_topologies, load_topology
from .traces import Trace, load_trace, resolve_trace_path, write_trace
from .zoo import ZooImport, import_zoo

__all__ = [
    "BootstrapSampler",
    "ClockConfig",
    "Event",
    "FLUID",
    "FlowNetwork",
    "NetworkClock",
    "ReplaySampler",
    "SamplerBank",
    "TcpModel",
    "Topology",
    "Trace",
    "ZooImport",
    "available_topologies",
    "import_zoo",
    "load_topology",
    "load_trace",
    "max_min_rates",
    "price_schedule",
    "read_latency_matrix",
    "read_ping_table",
    "resolve_trace_path",
    "simulate_flows",
    "write_trace",
]
