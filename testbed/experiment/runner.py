"""``testbed experiment``: train every algorithm on one topology and price it on the network.

Training and timing are one co-simulation: after each local iteration the engine's
callback advances the network clock (compute, then any aggregation due), so every
evaluation row carries its simulated wall-clock time and its breakdown.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

import testbed
from testbed.experiment.algorithms import Algorithm, describe_algorithms, resolve_all
from testbed.experiment.columns import COLUMNS_FILE, columns_markdown
from testbed.experiment.tidy import event_rows, metrics_frame, refuse_old_columns
from testbed.experiment.checkpoint import Checkpointer, checkpoint_path, load_checkpoint
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.keys import in_config_terms
from testbed.experiment.placement import federate
from testbed.experiment.progress import Progress
from testbed.experiment.smoke import shrink_config, shrink_dataset
from testbed.experiment.stopping import check_stop_at_target, short_of_budget, stopping_callbacks
from testbed.experiment import rundir
from testbed.engine.augment import check_augment
from testbed.experiment.modelcost import measure_compute_ms, model_bytes, model_shape
from testbed.paths import inside
from testbed.simulate import Callback, resolve_device

log = logging.getLogger("testbed.experiment")
LARGE_EVENT_LOG = 10**6  # rows of one pair's event log worth a hint (pandas writes ~4e5 rows/s)


class NetworkTimer(Callback):
    """Charges each iteration on a NetworkClock and stamps evaluation rows with its time.
    The same object prices a finished run again (re-time), so both paths agree exactly."""

    def __init__(self, clock):
        self.clock = clock
        self.participants: dict[int, list[int]] = {}  # round start iteration -> participants

    def on_step(self, t: int, aggregated, participants: np.ndarray | None) -> None:
        if participants is not None and t not in self.participants and (t - 1) % self.clock.tree.servers[0].period == 0:
            self.participants[t] = np.flatnonzero(participants).tolist()
        self.clock.advance(t, participants)

    def on_eval(self, row: dict[str, Any]) -> None:
        row["sim_time_s"] = self.clock.now_s
        row.update({k: v for k, v in self.clock.breakdown().items() if k.endswith("_s") and k != "now_s"})

    def participants_at(self, t: int) -> np.ndarray | None:
        """Who took part in iteration t's round (None: everyone), from the recorded rounds."""
        if not self.participants:
            return None
        start = (t - 1) // self.clock.tree.servers[0].period * self.clock.tree.servers[0].period + 1
        return np.isin(np.arange(self.clock.tree.n_workers), self.participants[start])

    def replay(self, until_t: int) -> None:
        """Advance the clock through iterations 1..until_t again (resume, re-time)."""
        for t in range(self.clock.t + 1, until_t + 1):
            self.clock.advance(t, self.participants_at(t))

    def state_dict(self) -> dict[str, Any]:
        return {"participants": {str(t): list(w) for t, w in self.participants.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.participants = {int(t): list(w) for t, w in state["participants"].items()}


@dataclass(frozen=True)
class Setup:
    """Everything resolved before training starts (so bad input fails early)."""

    config: ExperimentConfig
    topology: Any  # testbed.net.Topology
    algorithms: list[Algorithm]
    dataset: Any  # testbed.data.Dataset
    device: torch.device
    model_bytes: int
    compute_ms: float | None  # None: each worker node's own compute_ms / compute_trace


def prepare(config: ExperimentConfig) -> Setup:
    """Resolve topology, algorithms, dataset and model names; raises ValueError on bad input."""
    from testbed.data import load_dataset
    from testbed.models import build_model
    from testbed.net import load_topology

    config = shrink_config(config)  # TESTBED_SMOKE: the README test's tiny budget
    topology = load_topology(config.topology, trace_overrides=config.trace_overrides)
    algorithms = resolve_all(config.algorithms, topology.tree)
    n = topology.tree.n_workers
    options: dict[str, Any] = {}
    if config.dataset == "synthetic":
        options = dict(n_workers=n, alpha=config.synthetic_alpha, beta=config.synthetic_beta, seed=0)
    try:
        dataset = load_dataset(config.dataset, root=config.data_root or None, **options)
    except ValueError as err:  # the data layer names its own arguments; answer in config keys
        raise type(err)(in_config_terms(str(err), config.dataset)) from None
    dataset = shrink_dataset(dataset)
    check_stop_at_target(config.stop_at_target, dataset.x_test is not None, config.dataset)
    model = build_model(config.model, **model_shape(dataset))  # fails now on an unknown model name
    check_augment(config.augment, dataset.input_shape)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        # cuBLAS needs a fixed workspace for reproducible GEMMs; set before the first CUDA call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    compute_ms = None if config.compute_ms == -1 else config.compute_ms
    if compute_ms == 0:
        compute_ms = measure_compute_ms(model, dataset, device, config.batch_size or 32)
        log.info("measured compute: %.3f ms per iteration per worker", compute_ms)
    size = config.priced_params * config.model_bytes_per_param or model_bytes(model, config.model_bytes_per_param)
    return Setup(config, topology, algorithms, dataset, device, size, compute_ms)


def run_experiment(config: ExperimentConfig, reports_root: Path = Path("reports"), tag: str = "run", progress: bool = True) -> Path:
    """Run every algorithm x seed, write the run folder and its report; return the folder."""
    setup = prepare(config)
    first = federate(setup, config.seeds[0])  # the data fits the partition and batch size: checked before any file
    staging = rundir.new_run_dir(reports_root, setup.topology.name, tag, config.to_dict())
    try:
        write_static_files(staging, setup, tag)
        return run_all(setup, staging, progress, first_federated=first)
    finally:
        rundir.discard(staging)  # a refusal before training started: nothing is left behind


def resume_experiment(run_dir: Path, progress: bool = True) -> Path:
    """Continue a killed run: finished algorithm x seed pairs are kept, the interrupted
    one restarts from its last checkpoint, the rest run as usual."""
    run_dir = Path(run_dir).resolve()  # the real folder, not the `latest` link it may come through
    config = rundir.read_saved_config(run_dir)
    done = rundir.read_done(run_dir)  # before anything runs: a damaged folder is refused at once
    refuse_old_columns(done.metrics, run_dir / "metrics.csv")
    setup = prepare(config)
    log.info("resuming %s", run_dir)
    for stale in rundir.remove_temporaries(run_dir):  # left by the killed process's writes
        log.debug("removed stale %s", stale)
    return run_all(setup, run_dir, progress, done)


def run_all(setup: Setup, run_dir: Path, progress: bool, done: rundir.Done | None = None, first_federated=None) -> Path:
    """Train every pair not yet in metrics.csv; rewrite the tidy files after each pair. A
    staged run folder is renamed into place when the first pair starts (the data was
    checked before it was made), so the returned folder may differ from ``run_dir``.
    ``first_federated``: the first seed's partition, when the caller made it already."""
    done = done or rundir.read_done(run_dir)
    done_metrics, done_events = done.metrics, done.events
    finished_pairs = set() if done_metrics is None else set(zip(done_metrics.spec, done_metrics.seed))
    metrics = [] if done_metrics is None else [done_metrics]
    events = rundir.GrowingCsv(run_dir / "events.csv")  # by far the largest file: formatted once per pair
    if done_events is not None:  # metrics.csv is written last: events of unfinished pairs are stale
        labels = {a.label: a.spec for a in setup.algorithms}
        kept = [(labels.get(a), s) in finished_pairs for a, s in zip(done_events.algorithm, done_events.seed)]
        events.add(done_events[kept])
    schedules = dict(done.schedules)
    results: dict[tuple[str, int], tuple[pd.DataFrame, pd.DataFrame, dict]] = {}  # (spec, seed) -> trained pair

    def trained(spec: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """A finished pair's rows, events and participants: this session's or a resumed run's."""
        if (spec, seed) not in results:
            label = next(a.label for a in setup.algorithms if a.spec == spec)
            results[spec, seed] = (done_metrics[(done_metrics.spec == spec) & (done_metrics.seed == seed)],
                                   done_events[(done_events.algorithm == label) & (done_events.seed == seed)],
                                   schedules.get(f"{spec}|{seed}", {}))
        return results[spec, seed]

    for seed in setup.config.seeds:
        federated, first_federated = first_federated, None  # None: partitioned when first needed
        for algorithm in setup.algorithms:
            if (algorithm.spec, seed) in finished_pairs:
                continue
            if rundir.is_staged(run_dir):
                run_dir = rundir.publish(run_dir)
                log.info("run folder: %s", run_dir)
                log.info("data: %r", setup.dataset)
                events.path = run_dir / "events.csv"
            path = checkpoint_path(run_dir, algorithm.spec, seed)
            if algorithm.same_schedule_as:  # trained once: the twin's rows under this label
                log.info("%s seed %d: the same schedule as %s, not trained again", algorithm.label, seed,
                         algorithm.same_schedule_as)
                rows, algo_events, participants = _relabel(trained(algorithm.same_schedule_as, seed), algorithm)
            else:
                federated = federated or federate(setup, seed)
                rows, algo_events, participants = train_one(setup, algorithm, federated, seed, progress, path)
            results[algorithm.spec, seed] = (rows, algo_events, participants)
            metrics.append(rows)
            events.add(algo_events)
            schedules[f"{algorithm.spec}|{seed}"] = participants
            events.write()
            rundir.atomic_write_json(run_dir / "schedule.json", schedules)
            # last: a pair counts as finished once it is in metrics.csv
            rundir.atomic_write_csv(run_dir / "metrics.csv", metrics_frame(metrics, setup.topology.tiers))
            path.unlink(missing_ok=True)
    finish(run_dir)
    return run_dir


def _relabel(result: tuple[pd.DataFrame, pd.DataFrame, dict], algorithm: Algorithm):
    rows, events, participants = (x.copy() for x in result)
    rows["algorithm"], rows["spec"] = algorithm.label, algorithm.spec
    events["algorithm"] = algorithm.label
    return rows, events, participants


def finish(run_dir: Path) -> Path:
    from testbed.report import build_report

    report = build_report(run_dir)
    rundir.point_latest(run_dir)
    return report


def train_one(setup: Setup, algorithm: Algorithm, federated, seed: int, progress: bool, checkpoint: Path | None = None):
    """One algorithm, one seed: returns its metrics rows, its event log and its participants.
    With ``checkpoint``, continues from it if it exists and saves to it as training goes."""
    from testbed.models import build_model

    cfg = setup.config

    def model():  # simulate() builds it with the seed: the same initial model for every algorithm of a seed
        return build_model(cfg.model, **model_shape(setup.dataset))

    clock = make_clock(setup.topology, algorithm, setup.model_bytes, setup.compute_ms, cfg, seed)
    timer = NetworkTimer(clock)
    callbacks: list[Callback] = [timer, *stopping_callbacks(clock, cfg.budget_s, cfg.stop_at_target, cfg.target_acc)]
    stateful: dict[str, Any] = {"timer": timer}
    if cfg.divergence_every:
        from testbed.theory.probe import DivergenceProbe

        # on the topology's full tree: its levels cover every algorithm's groups
        probe = DivergenceProbe(cfg.divergence_every, tree=setup.topology.tree, batch_size=cfg.batch_size or 16, seed=seed)
        callbacks.append(probe)
        stateful["probe"] = probe
    resume = None
    if checkpoint is not None:
        resume = load_checkpoint(checkpoint)
        if resume is not None:
            for name, obj in stateful.items():
                obj.load_state_dict(resume["callbacks"][name])
            timer.replay(int(resume["run"]["t"]))
            log.info("%s seed %d: resuming after iteration %d", algorithm.label, seed, int(resume["run"]["t"]))
            resume = resume["run"]
        if cfg.checkpoint_every:
            callbacks.append(Checkpointer(checkpoint, cfg.checkpoint_every, stateful))
    if progress:
        callbacks.append(Progress(f"{algorithm.label} seed {seed}", cfg.iterations, cfg.budget_s))
    started = time.monotonic()
    result = testbed.simulate(
        model, federated, algorithm.tree, iterations=cfg.iterations, lr=cfg.lr,
        batch_size=cfg.batch_size or None, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
        weighting=cfg.weighting, participation=cfg.participation, eval_every=cfg.eval_every,
        seed=seed, device=setup.device, engine=cfg.engine, callbacks=callbacks, resume=resume, precision=cfg.precision,
        augment=cfg.augment,
    )
    log.info("%s seed %d: %.1f s host time", algorithm.label, seed, time.monotonic() - started)
    rows = result.metrics
    if short := short_of_budget(rows, cfg.budget_s):
        log.warning("%s seed %d: %s", algorithm.label, seed, short)
    for col in ("test_acc", "test_loss"):  # a run that diverged before its first evaluation has none yet
        if setup.dataset.x_test is not None and col not in rows:
            rows[col] = float("nan")
    rows.insert(0, "algorithm", algorithm.label)
    rows.insert(1, "spec", algorithm.spec)
    rows.insert(2, "seed", seed)
    events = event_rows(clock, setup.topology, algorithm.label, seed)
    if len(events) > LARGE_EVENT_LOG:
        log.info("%s seed %d: %d event rows (~%.0f s to write); events=aggregations keeps one per round",
                 algorithm.label, seed, len(events), len(events) / 4e5)
    return rows, events, timer.participants


def make_clock(topology, algorithm: Algorithm, size_bytes: int, compute_ms: float | None, cfg: ExperimentConfig,
               seed: int):
    """The network clock of one algorithm on the topology, with the config's TCP model,
    window and event log setting."""
    from testbed.net import NetworkClock

    return NetworkClock(
        priced_topology(topology, algorithm),
        model_bytes=size_bytes,
        seed=seed,
        window_bytes=cfg.window_bytes,
        compute_ms=compute_ms,
        record=cfg.events,
        tcp=cfg.tcp(),
    )


def priced_topology(topology, algorithm: Algorithm):
    """The topology as the algorithm uses it: its servers aggregate with its periods and
    the servers of the levels it leaves out only relay traffic (they become routers), so
    local SGD's models cross the edge and regional links one per worker."""
    from testbed.net import Topology

    periods = {topology.server_nodes[i]: algorithm.tree.servers[k].period for k, i in enumerate(algorithm.server_topology_ids)}
    graph = nx.Graph(topology.graph)
    for node in topology.server_nodes:
        if node in periods:
            graph.nodes[node]["period"] = periods[node]
            # the topology's tier, so the clock's columns and events name the same servers for every algorithm
            graph.nodes[node]["tier"] = topology.tiers[topology.level[node]]
        else:
            graph.nodes[node].clear()
            graph.nodes[node]["role"] = "router"
    priced = Topology(graph, source=topology.source, trace_dir=topology.trace_dir,
                      trace_overrides=topology.trace_overrides, _traces=topology.traces)
    if priced.worker_nodes != topology.worker_nodes or priced.tree.periods != algorithm.tree.periods:
        raise RuntimeError(f"{algorithm.spec}: the priced topology does not match the algorithm's tree")
    return priced


def write_static_files(run_dir: Path, setup: Setup, tag: str) -> None:
    from testbed.models import build_model

    model = build_model(setup.config.model, **model_shape(setup.dataset))
    info = {
        "config": setup.config.to_dict(), "preset": tag, "topology": setup.topology.name,
        "algorithms": describe_algorithms(setup.algorithms, setup.topology), "worker_nodes": list(setup.topology.worker_nodes),
        "model_params": sum(p.numel() for p in model.parameters()),
        "model_bytes": setup.model_bytes, "priced_params": setup.config.priced_params or None,
        "compute_ms": setup.compute_ms, "round_costs": cost_structure(setup.topology, setup.model_bytes, setup.config).to_dict(),
        "device": str(setup.device), **rundir.provenance(),
    }
    rundir.atomic_write_json(run_dir / "config.json", info)
    rundir.atomic_write_text(run_dir / COLUMNS_FILE, columns_markdown())
    rundir.atomic_write_text(run_dir / "topology.json", _graph_json(setup.topology.graph))
    write_traces(run_dir, setup.topology)


def cost_structure(topology, model_bytes: float, cfg: ExperimentConfig):
    """What one round costs at each level of the topology's own tree, priced on the clock
    with the run's model size, window and TCP model (the report's verdict explains results
    with it; a retime prices it again on its network)."""
    from testbed.net.costs import round_costs

    return round_costs(topology, model_bytes=model_bytes, window_bytes=cfg.window_bytes, seed=0, tcp=cfg.tcp())


def write_traces(run_dir: Path, topology) -> None:
    """Copy the traces the topology uses into the run folder (the report draws them)."""
    for name, trace in topology.traces.items():
        frame = pd.DataFrame({"t_s": trace.t_s, trace.column: trace.values})
        rundir.atomic_write_csv(inside(run_dir / "traces", rundir.safe_name(name) + ".csv"), frame)


def _graph_json(graph: nx.Graph) -> str:
    return json.dumps(nx.node_link_data(graph, edges="links"), indent=1, default=str) + "\n"
