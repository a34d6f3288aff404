"""``testbed retime``: price a finished run again under other traces or another topology.

Synchronous H-SGD does not depend on timing, so the trained curves stay as they are and
only the clock is replayed: the run's recorded schedule (the same iterations, aggregations
and participants) goes through a new clock on the new network. With the same seed this
equals a fresh run on that network. A run with deadlines let the network decide who was
averaged: it cannot be re-timed without training again, and is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from testbed.experiment import rundir
from testbed.experiment.algorithms import describe_algorithms, resolve_all
from testbed.experiment.config import TCP_CONFIG_KEYS, ExperimentConfig
from testbed.experiment.rundir import RUN_FOLDER
from testbed.experiment.runner import finish
from testbed.experiment.timer import make_clock, replay, stamp
from testbed.experiment.tidy import event_rows, metrics_frame
from testbed.net import load_topology
from testbed.readers import read_csv_file, read_json_file, require_keys
from testbed.schedule import Schedule

log = logging.getLogger("testbed.experiment")

def _is_time_column(name: str) -> bool:
    """The clock writes the seconds columns (``*_s``); everything else comes from training."""
    return name.endswith("_s")


NETWORK_KEYS = (*TCP_CONFIG_KEYS, "window_kib", "events")
"""Config keys a re-time may change: they set how the clock prices, never what was trained."""


def retime(run_dir: Path, trace_overrides: dict[str, str] | None = None, topology: str | None = None,
           reports_root: Path | None = None, network: list[str] | None = None) -> Path:
    """Write a new run folder whose times come from the new network; return it.
    ``network``: ``key=value`` settings of :data:`NETWORK_KEYS` (e.g. ``tcp_model=fluid``)."""
    run_dir = Path(run_dir).resolve()  # the real folder, not the `latest` link it may come through
    for item in network or []:
        key = item.partition("=")[0].strip()
        if key not in NETWORK_KEYS:
            raise ValueError(f"--set {key}: a re-time changes only how the network prices the run; "
                             f"allowed: {', '.join(NETWORK_KEYS)} (other keys change training: run the experiment again)")
    info = require_keys(run_dir / "config.json", _read_json(run_dir / "config.json"),
                        ("config", "algorithms", "worker_nodes", "model_bytes"), RUN_FOLDER)
    if not isinstance(info["algorithms"], list) or not all(isinstance(a, dict) and "spec" in a for a in info["algorithms"]):
        raise ValueError(f"{run_dir / 'config.json'}: 'algorithms' must be a list of objects with a 'spec'; {RUN_FOLDER}")
    old = ExperimentConfig.from_saved(info["config"], where=f"{run_dir / 'config.json'}")
    if old.budget_s:  # the clock decided where each algorithm stopped: another network would stop elsewhere
        raise ValueError(f"{run_dir / 'config.json'}: budget_s={old.budget_s:g} stopped every algorithm when its "
                         f"simulated time reached the budget, so how far it trained depends on the network; a re-time "
                         f"cannot re-price that without retraining: run the experiment again on the new network")
    traces = {**old.trace_overrides, **(trace_overrides or {})}
    trained = info["algorithms"]  # as resolved on the trained topology ('auto' expanded there)
    config = dataclasses.replace(old, topology=topology or old.topology, traces=tuple(f"{k}={v}" for k, v in traces.items()),
                                 algorithms=tuple(a["spec"] for a in trained))
    config = config.with_overrides(list(network or []))
    topo = load_topology(config.topology, trace_overrides=config.trace_overrides)
    unused = sorted(set(trace_overrides or {}) - set(topo.traces))
    if unused:
        raise ValueError(f"--trace {unused[0]}: not a trace of {topo.source}; it uses {sorted(topo.traces) or 'no traces'}")
    if topo.tree.n_workers != len(info["worker_nodes"]):
        raise ValueError(f"--topo {config.topology}: has {topo.tree.n_workers} workers, the run had {len(info['worker_nodes'])}")
    algorithms = {a.spec: a for a in _same_training(trained, topo, config.topology)}
    metrics = read_csv_file(run_dir / "metrics.csv", RUN_FOLDER, ("spec", "seed", "iteration"))
    unknown = sorted(set(metrics.spec.astype(str)) - set(algorithms))
    if unknown:
        raise ValueError(f"{run_dir / 'metrics.csv'}: spec {unknown[0]!r} is not an algorithm of config.json "
                         f"({', '.join(algorithms)}); {RUN_FOLDER}")
    if not (run_dir / "schedule.json").exists():
        raise FileNotFoundError(f"{run_dir / 'schedule.json'}: missing; {RUN_FOLDER}")
    schedules = rundir.read_schedules(run_dir / "schedule.json")
    timed = [(spec, seed, s["timing"]) for (spec, seed), s in schedules.items() if s.get("timing")]
    if timed or any(old.deadline_s):
        spec, seed, why = timed[0] if timed else (trained[0]["spec"], old.seeds[0], "deadline_s")
        raise ValueError(f"{run_dir}: {spec} seed {seed} was trained with {why} = {old.deadline_s}: the network decided "
                         f"who was averaged, so another network would have trained other models; a re-time cannot "
                         f"price it without training again (run the experiment on the new network instead)")

    staging = rundir.new_run_dir(reports_root or run_dir.parent.parent, topo.name, "retime", config.to_dict())
    try:
        out = _write_retimed(run_dir, staging, topology, topo, config, info, algorithms, metrics, schedules)
    finally:
        rundir.discard(staging)  # only if still staged: a refusal leaves nothing behind
    finish(out)
    return out


def _write_retimed(run_dir: Path, staging: Path, topology: str | None, topo, config: ExperimentConfig, info: dict,
                   algorithms: dict, metrics: pd.DataFrame, schedules: rundir.SchedulePairs) -> Path:
    """Price every pair again on ``topo``, write the files into ``staging`` and rename it into
    place; returns the final folder."""
    log.info("re-timing %s into %s", run_dir, staging)
    frames, events = [], []
    for (spec, seed), rows in metrics.groupby(["spec", "seed"], sort=False):
        algorithm = algorithms[spec]
        clock = make_clock(topo, algorithm, info["model_bytes"], info.get("compute_ms"), config, int(seed))
        if clock.has_deadlines:
            raise ValueError(f"--topo {config.topology}: its servers have deadlines (deadline_s): who is averaged "
                             f"would depend on this network, and a re-time only replays the recorded schedule; "
                             f"run the experiment on it instead")
        recorded = schedules.get((spec, int(seed)), {"rounds": [], "drops": []})
        schedule = Schedule.from_json(algorithm.tree, recorded, f"{run_dir / 'schedule.json'}: {spec} seed {seed}")
        stamped = []
        for t in sorted(set(rows.iteration.astype(int))):
            replay(clock, schedule, t)  # the same steps, on the new network
            row = {"iteration": t}
            stamp(clock, row)
            stamped.append(row)
        times = pd.DataFrame(stamped)
        kept = rows[[c for c in rows.columns if not _is_time_column(c)]]
        frames.append(kept.merge(times, on="iteration", how="left")[_order(rows.columns, times.columns)])
        events.append(event_rows(clock, topo, algorithm.label, int(seed)))

    costs = rundir.cost_structure(topo, info["model_bytes"], config)
    info.update(config=config.to_dict(), topology=topo.name, retimed_from=str(run_dir), round_costs=costs.to_dict(),
                algorithms=describe_algorithms(list(algorithms.values()), topo), worker_nodes=list(topo.worker_nodes),
                **rundir.provenance())
    info["preset"] = "retime"
    # the run's own topology.json when the topology stays: the file it trained with
    rundir.write_description(staging, info, topo, (run_dir / "topology.json").read_text() if topology is None else None)
    rundir.atomic_write_json(staging / "schedule.json", rundir.schedules_json(schedules))
    rundir.atomic_write_csv(staging / "events.csv", pd.concat(events, ignore_index=True))
    rundir.atomic_write_csv(staging / "metrics.csv", metrics_frame(frames, topo.tiers))
    return rundir.publish(staging)


def _same_training(trained: list[dict], topo, where: str) -> list:
    """The run's algorithms resolved on ``topo``, refused (before anything is written) where
    the topology would average other groups than the run trained with: the curves would
    not be this network's. Local SGD averages everyone at once, whatever the tree."""
    specs = tuple(a["spec"] for a in trained)
    try:
        resolved = resolve_all(specs, topo.tree)
    except ValueError as err:
        raise ValueError(f"--topo {where}: cannot price the run's algorithms there: {err}") from None
    for saved, algorithm in zip(trained, resolved):
        if saved.get("is_local_sgd") and algorithm.is_local_sgd:
            continue
        now = {"tree": algorithm.tree.as_nested(), "periods": algorithm.tree.periods}
        if json.loads(json.dumps(now)) != {"tree": saved.get("tree"), "periods": saved.get("periods")}:
            raise ValueError(
                f"--topo {where}: {saved.get('label', saved['spec'])} would aggregate {now['tree']} with periods "
                f"{now['periods']} there, but trained with {saved.get('tree')} and {saved.get('periods')}; a re-time keeps the training, so the "
                f"topology must group the workers the same way (run the experiment on it instead)"
            )
    return resolved


def _order(original: pd.Index, time_columns: pd.Index) -> list[str]:
    """Keep the original column order; new time columns (another topology's levels) go last."""
    cols = [c for c in original if not _is_time_column(c) or c in time_columns]
    return cols + [c for c in time_columns if c not in cols]


def _read_json(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; {RUN_FOLDER}")
    return read_json_file(path, RUN_FOLDER)
