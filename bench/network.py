"""Event-layer benchmark: what pricing a run on the simulated network costs.

    python bench/network.py [--workers 1000] [--rounds 1000] [--retime-workers 100] [--retime-aggregations 10000]

1. Event layer: n workers on a three-level topology (cloud -> regional servers -> edge
   servers -> workers; periods 8, 4, 2, so every second iteration is an aggregation
   round), the synthetic dataset and logistic-regression model trained with
   ``testbed.simulate`` and priced as it trains by the experiment runner's
   ``NetworkTimer`` on a ``testbed.net.NetworkClock``. Reported: the fraction of the
   total run time spent in the clock (its ``on_step``/``on_eval`` callbacks), and events
   per second of clock time. Run once with the clock's automatic backend (vectorised
   rounds where exact) and once, for a tenth of the rounds, forcing every round through
   SimPy (the general backend, about 100 times slower).
2. Re-time: seconds for ``price_schedule`` (the core of ``testbed retime``) to re-price
   a run of the given number of aggregation rounds without training, on a 100-worker
   three-level topology (each round aggregates several subtrees) and on a star
   (local SGD: one aggregation per round), under the default TCP model and, for
   comparison, the fluid model (no slow start, no connection state). A row without a target re-prices the worst
   case: the whole 1000-worker tree every iteration over traced links.
3. ``testbed retime`` end to end on a trained run folder of the three-level case: read,
   re-price, write metrics, events.csv and the report; once with events=aggregations
   (one event row per subtree round) and once with events=all (every transfer: writing
   that CSV dominates).

Prints a table and appends it to bench/results/<device>.json (device: the CPU).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import networkx as nx
import torch

import testbed
from common import save_results, table
from testbed.data import load_dataset, make_federated
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.retime import retime as retime_run
from testbed.experiment.runner import run_experiment
from testbed.experiment.timer import NetworkTimer
from testbed.models import build_model, count_parameters
from testbed.net import FLUID, NetworkClock, TcpModel, load_topology, price_schedule
from testbed.net.builders import hierarchy_graph

PERIODS = (8, 4, 2)  # cloud, regional, edge: one aggregation round every 2 iterations
COMPUTE_MS = 4.0
WAN = {"latency_ms": 20.0, "bandwidth_mbps": 10_000.0}
METRO = {"latency_ms": 5.0, "bandwidth_mbps": 1_000.0}
HOME = {"latency_ms": 10.0, "up_mbps": 20.0, "down_mbps": 150.0}


def three_level(n_workers: int, fan_out: tuple[int, int] = (10, 10)) -> nx.Graph:
    """cloud -> fan_out[0] regional servers -> fan_out[1] edge servers each -> workers,
    n_workers spread evenly over the edge servers."""
    n_edges = fan_out[0] * fan_out[1]
    if n_workers % n_edges:
        raise ValueError(f"n_workers ({n_workers}) must be a multiple of the {n_edges} edge servers")
    return hierarchy_graph([*fan_out, n_workers // n_edges], PERIODS, [WAN, METRO, HOME], compute_ms=COMPUTE_MS,
                           name=f"bench3level-{n_workers}")


class TimedTimer(NetworkTimer):
    """The runner's NetworkTimer, with the wall-clock time spent inside it summed up."""

    def __init__(self, clock: NetworkClock):
        super().__init__(clock)
        self.seconds = 0.0

    def on_step(self, step) -> None:
        start = time.perf_counter()
        super().on_step(step)
        self.seconds += time.perf_counter() - start

    def on_eval(self, row) -> None:
        start = time.perf_counter()
        super().on_eval(row)
        self.seconds += time.perf_counter() - start


def count_events(clock: NetworkClock) -> int:
    frame = getattr(clock, "events_frame", None)
    return len(frame()) if frame is not None else len(clock.events)


def event_layer(n_workers: int, rounds: int, clock_engine: str) -> dict:
    topo = load_topology(three_level(n_workers))
    ds = load_dataset("synthetic", n_workers=n_workers, seed=0)
    fed = make_federated(ds, n_workers=n_workers, scheme="natural", seed=0)
    model = build_model("logreg", input_shape=ds.input_shape, num_classes=ds.num_classes, seed=0)
    clock = NetworkClock(topo, model_bytes=4 * count_parameters(model), seed=0, engine=clock_engine)
    timer = TimedTimer(clock)
    iterations = rounds * PERIODS[2]
    start = time.perf_counter()
    testbed.simulate(
        model, fed, topo.tree, iterations=iterations, lr=0.05, batch_size=10,
        eval_every=max(1, iterations // 20), seed=0, device="cpu", callbacks=[timer],
    )  # fmt: skip
    total = time.perf_counter() - start
    events = count_events(clock)
    return {
        "what": f"event layer ({clock_engine})", "workers": n_workers, "aggregation_rounds": rounds,
        "iterations": iterations, "total_s": total, "network_s": timer.seconds,
        "network_fraction": timer.seconds / total, "events": events, "events_per_s": events / timer.seconds,
        "rounds_by_engine": str(getattr(clock, "rounds_by_engine", "")), "target": "network_fraction < 0.05",
        "holds": timer.seconds / total < 0.05,
    }  # fmt: skip


def star(n_workers: int) -> nx.Graph:
    """Local SGD: every worker straight under the cloud, which averages every iteration."""
    link = {"latency_ms": 30.0, "up_mbps": 20.0, "down_mbps": 150.0}
    return hierarchy_graph([n_workers], [1], [link], compute_ms=COMPUTE_MS, name=f"benchstar-{n_workers}")


def traced_every_iteration(n_workers: int) -> nx.Graph:
    """The worst case for the pricer: the whole three-level tree aggregates every
    iteration, over links that replay RTT traces (8 regions x 5 edges x n/40 homes)."""
    wan = {"rtt_trace": "ec2_us_eu", "bandwidth_mbps": 10_000.0}
    metro = {"latency_ms": 2.5, "bandwidth_mbps": 10_000.0}
    home = {"rtt_trace": "synth_home_access", "up_mbps": 20.0, "down_mbps": 150.0}
    return hierarchy_graph([8, 5, n_workers // 40], [1, 1, 1], [wan, metro, home], name=f"benchglobal-{n_workers}")


def retime(graph: nx.Graph, aggregations: int, period: int, label: str, target: bool = True,
           model_bytes: float = 4 * 610, tcp: TcpModel | None = None) -> dict:
    """Re-price a run with ``aggregations`` aggregation rounds (one every ``period``
    iterations) under the default TCP model, or ``tcp``."""
    topo = load_topology(graph)
    if tcp is not None:
        label += f", {tcp.kind} model"
    start = time.perf_counter()
    clock = price_schedule(topo, aggregations * period, model_bytes=model_bytes, seed=0, tcp=tcp)
    seconds = time.perf_counter() - start
    events = count_events(clock)
    return {
        "what": f"re-time, {label}", "workers": topo.n_workers, "aggregation_rounds": aggregations,
        "iterations": aggregations * period, "total_s": seconds, "network_s": seconds, "network_fraction": None,
        "events": events, "events_per_s": events / seconds, "rounds_by_engine": str(getattr(clock, "rounds_by_engine", "")),
        "target": "total_s < 2" if target else "-", "holds": seconds < 2.0 if target else None,
    }  # fmt: skip


def retime_command(graph: nx.Graph, aggregations: int, events: str, tcp_model: str = "tcp") -> dict:
    """``testbed retime`` end to end on a run folder of ``aggregations`` rounds: read the
    run, re-price it, write the new folder (metrics, events.csv, report). The run is
    trained first (logistic regression on the synthetic data), outside the timer."""
    with tempfile.TemporaryDirectory() as tmp:
        topology = Path(tmp) / f"{graph.name}.json"
        topology.write_text(json.dumps(nx.node_link_data(graph, edges="edges")))
        iterations = aggregations * PERIODS[2]
        config = ExperimentConfig(
            topology=str(topology), algorithms=("hsgd",), seeds=(0,), model="logreg", iterations=iterations,
            batch_size=8, eval_every=max(1, iterations // 20), divergence_every=0, checkpoint_every=0, events=events,
            tcp_model=tcp_model,
        )  # fmt: skip
        run = run_experiment(config, reports_root=Path(tmp), progress=False)
        start = time.perf_counter()
        out = retime_run(run, {})
        seconds = time.perf_counter() - start
        with open(out / "events.csv", encoding="utf-8") as f:
            rows = sum(1 for _ in f) - 1  # less the header
    target = events == "aggregations" and tcp_model == "tcp"
    return {
        "what": f"testbed retime, events={events}" + ("" if tcp_model == "tcp" else f", {tcp_model} model"),
        "workers": sum(1 for _, role in graph.nodes(data="role") if role == "worker"),
        "aggregation_rounds": aggregations, "iterations": iterations, "total_s": seconds, "network_s": None,
        "network_fraction": None, "events": rows, "events_per_s": rows / seconds, "rounds_by_engine": "",
        "target": "total_s < 2" if target else "-", "holds": seconds < 2.0 if target else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1000, help="aggregation rounds of the event-layer run")
    parser.add_argument("--retime-workers", type=int, default=100)
    parser.add_argument("--retime-aggregations", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 workers, 20 rounds, nothing saved")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.rounds, args.retime_aggregations = 100, 20, 200
    rows = [
        event_layer(args.workers, args.rounds, "auto"),
        event_layer(args.workers, max(1, args.rounds // 10), "simpy"),
        # a round aggregates ~5.75 subtrees here (10 edge, 2 regional or 1 cloud at a time) ...
        retime(three_level(args.retime_workers, fan_out=(2, 5)), args.retime_aggregations, PERIODS[2], "three-level"),
        # ... and exactly one in local SGD
        retime(star(args.retime_workers), args.retime_aggregations, 1, "star (local SGD)"),
        # the same two without slow start (the fluid model): what the TCP model costs
        retime(three_level(args.retime_workers, fan_out=(2, 5)), args.retime_aggregations, PERIODS[2], "three-level",
               target=False, tcp=FLUID),
        retime(star(args.retime_workers), args.retime_aggregations, 1, "star (local SGD)", target=False, tcp=FLUID),
        # not a target: every round the whole tree (1000 workers, traced RTTs, a 37 MB model)
        retime(traced_every_iteration(args.workers), args.rounds, 1, "global every iteration", target=False,
               model_bytes=37e6),
        # the whole command: the run folder read and written, events.csv included
        retime_command(three_level(args.retime_workers, fan_out=(2, 5)), args.retime_aggregations, "aggregations"),
        retime_command(three_level(args.retime_workers, fan_out=(2, 5)), args.retime_aggregations, "aggregations",
                       tcp_model="fluid"),
        retime_command(three_level(args.retime_workers, fan_out=(2, 5)), args.retime_aggregations, "all"),
    ]
    print(table(rows))
    if args.quick:
        print("quick run: results not saved")
        return
    save_results("network", torch.device("cpu"), rows)


if __name__ == "__main__":
    main()
