"""``testbed experiment``: train every algorithm on one topology and price it on the network.

Training and timing are one co-simulation: after each local iteration the engine's
callback advances the network clock (compute, then any aggregation due), so every
evaluation row carries its simulated wall-clock time and its breakdown.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

import testbed
from testbed.engine.world import current as current_world
from testbed.experiment import distributed, rundir
from testbed.experiment.algorithms import Algorithm
from testbed.experiment.checkpoint import Checkpointer, checkpoint_path, load_checkpoint
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.progress import Progress
from testbed.experiment.setup import Setup, prepare, write_static_files
from testbed.experiment.stopping import short_of_budget, stopping_callbacks
from testbed.experiment.tidy import event_rows, metric_rows, metrics_frame, refuse_old_columns
from testbed.experiment.timer import NetworkTimer
from testbed.net import NetworkClock
from testbed.report import build_report
from testbed.simulate import Callback
from testbed.theory.probe import DivergenceProbe

log = logging.getLogger("testbed.experiment")
LARGE_EVENT_LOG = 10**6  # rows of one pair's event log worth a hint (pandas writes ~4e5 rows/s)


def run_experiment(config: ExperimentConfig, reports_root: Path = Path("reports"), tag: str = "run", progress: bool = True) -> Path:
    """Run every algorithm x seed, write the run folder and its report; return the folder."""
    if current_world() and not current_world().primary:  # torchrun: rank 0 leads, this rank follows
        return distributed.follow(current_world())
    setup = prepare(config)
    first = setup.federated(config.seeds[0])  # the data fits the partition and batch size: checked before any file
    staging = rundir.new_run_dir(reports_root, setup.topology.name, tag, config.to_dict())
    try:
        write_static_files(staging, setup, tag)
        return run_all(setup, staging, progress, first_federated=first)
    finally:
        rundir.discard(staging)  # a refusal before training started: nothing is left behind


def resume_experiment(run_dir: Path, progress: bool = True) -> Path:
    """Continue a killed run: finished algorithm x seed pairs are kept, the interrupted
    one restarts from its last checkpoint, the rest run as usual."""
    if current_world() and not current_world().primary:  # torchrun: rank 0 leads, this rank follows
        return distributed.follow(current_world())
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
    schedules = dict(done.schedules)  # (spec, seed) -> the recorded schedule's JSON
    world = current_world()
    if world:  # torchrun: the other ranks prepare the same setup, then train what rank 0 announces
        distributed.announce(setup.config)
    results: dict[tuple[str, int], tuple[pd.DataFrame, pd.DataFrame, dict]] = {}  # (spec, seed) -> trained pair

    def trained(spec: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """A finished pair's rows, events and schedule: this session's or a resumed run's."""
        if (spec, seed) not in results:
            label = next(a.label for a in setup.algorithms if a.spec == spec)
            results[spec, seed] = (done_metrics[(done_metrics.spec == spec) & (done_metrics.seed == seed)],
                                   done_events[(done_events.algorithm == label) & (done_events.seed == seed)],
                                   schedules.get((spec, seed), {"rounds": [], "drops": []}))
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
                rows, algo_events, schedule = _relabel(trained(algorithm.same_schedule_as, seed), algorithm)
            else:
                federated = federated or setup.federated(seed)
                if world:
                    distributed.announce((algorithm.spec, seed, str(path)))
                rows, algo_events, schedule = train_one(setup, algorithm, federated, seed, progress, path)
            results[algorithm.spec, seed] = (rows, algo_events, schedule)
            metrics.append(rows)
            events.add(algo_events)
            schedules[algorithm.spec, seed] = schedule
            events.write()
            rundir.atomic_write_json(run_dir / "schedule.json", rundir.schedules_json(schedules))
            # last: a pair counts as finished once it is in metrics.csv
            rundir.atomic_write_csv(run_dir / "metrics.csv", metrics_frame(metrics, setup.topology.tiers))
            path.unlink(missing_ok=True)
    if world:
        distributed.announce(None)  # the other ranks are done
    finish(run_dir)
    return run_dir


def _relabel(result: tuple[pd.DataFrame, pd.DataFrame, dict], algorithm: Algorithm):
    rows, events, schedule = (x.copy() for x in result)
    rows["algorithm"], rows["spec"] = algorithm.label, algorithm.spec
    events["algorithm"] = algorithm.label
    return rows, events, schedule


def finish(run_dir: Path) -> Path:
    report = build_report(run_dir)
    rundir.point_latest(run_dir)
    return report


def train_one(setup: Setup, algorithm: Algorithm, federated, seed: int, progress: bool, checkpoint: Path | None = None):
    """One algorithm, one seed: returns its metrics rows, its event log and its schedule's JSON.
    With ``checkpoint``, continues from it if it exists and saves to it as training goes."""
    cfg = setup.config
    world = current_world()  # torchrun: this rank trains a slice; only rank 0 prices, shows and writes
    clock = make_clock(setup.topology, algorithm, setup.model_bytes, setup.compute_ms, cfg, seed)
    if world and clock.has_deadlines:  # only rank 0 has the clock that would decide who is averaged
        raise ValueError("deadline_s: not supported under torchrun yet (rank 0's clock decides who is late, "
                         "the other ranks' slices would average without knowing); run it in one process")
    timer = NetworkTimer(clock)
    primary = world is None or world.primary  # torchrun: rank 0 prices the run and decides where it stops
    callbacks: list[Callback] = [timer, *stopping_callbacks(clock, cfg.budget_s, cfg.stop_at_target, cfg.target_acc)] if primary else []
    stateful: dict[str, Any] = {"timer": timer} if primary else {}
    if world:
        callbacks.append(distributed.StopSync(bool(cfg.budget_s), cfg.stop_at_target))
        stateful["world"] = distributed.WorldStamp(world.size)
    if cfg.divergence_every:
        # on the topology's full tree: its levels cover every algorithm's groups
        probe = DivergenceProbe(cfg.divergence_every, tree=setup.topology.tree, batch_size=cfg.batch_size or 16, seed=seed)
        callbacks.append(probe)
        stateful["probe"] = probe
    resume = None
    if checkpoint is not None:
        checkpoint = distributed.slice_path(checkpoint, world)
        resume = distributed.agree_on_resume(load_checkpoint(checkpoint), checkpoint, world)
        if resume is not None:
            for name, obj in stateful.items():  # the timer replays the clock to the checkpoint when the run starts
                obj.load_state_dict(resume["callbacks"][name])
            log.info("%s seed %d: resuming after iteration %d", algorithm.label, seed, int(resume["run"]["t"]))
            resume = resume["run"]
        if cfg.checkpoint_every:
            callbacks.append(Checkpointer(checkpoint, cfg.checkpoint_every, stateful))
    if progress:
        callbacks.append(Progress(f"{algorithm.label} seed {seed}", cfg.iterations, cfg.budget_s))
    started = time.monotonic()
    # simulate() builds the model with the seed: the same initial model for every algorithm of a seed
    result = testbed.simulate(setup.model, federated, algorithm.tree, **dataclasses.asdict(cfg.train_config(seed)),
                              device=setup.device, engine=distributed.engine_for(world, cfg.engine, algorithm.tree),
                              callbacks=callbacks, resume=resume)
    log.info("%s seed %d: %.1f s host time", algorithm.label, seed, time.monotonic() - started)
    if short := short_of_budget(result.metrics, cfg.budget_s):
        log.warning("%s seed %d: %s", algorithm.label, seed, short)
    rows = metric_rows(result.metrics, algorithm, seed, has_test=setup.dataset.x_test is not None)
    events = event_rows(clock, setup.topology, algorithm.label, seed)
    if len(events) > LARGE_EVENT_LOG:
        log.info("%s seed %d: %d event rows (~%.0f s to write); events=aggregations keeps one per round",
                 algorithm.label, seed, len(events), len(events) / 4e5)
    return rows, events, result.schedule.to_json()


def make_clock(topology, algorithm: Algorithm, size_bytes: int, compute_ms: float | None, cfg: ExperimentConfig,
               seed: int):
    """The network clock of one algorithm on the topology, with the config's TCP model,
    window and event log setting."""
    return NetworkClock(
        topology.with_tree(algorithm.tree, algorithm.server_topology_ids),
        model_bytes=size_bytes,
        seed=seed,
        window_bytes=cfg.window_bytes,
        compute_ms=compute_ms,
        record=cfg.events,
        tcp=cfg.tcp(),
        deadline_s=server_deadlines(topology, algorithm, cfg.deadline_s),
    )


def server_deadlines(topology, algorithm: Algorithm, deadline_s: tuple[float, ...]) -> tuple[float, ...] | None:
    """Each of the algorithm's servers' round deadline (inf: none) from the config's one per
    topology server level, top first (0: none there); None without deadlines."""
    if not any(deadline_s):
        return None
    level = [topology.level[topology.server_nodes[i]] for i in algorithm.server_topology_ids]
    return tuple(deadline_s[l] if l < len(deadline_s) and deadline_s[l] > 0 else float("inf") for l in level)
