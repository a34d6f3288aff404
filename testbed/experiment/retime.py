"""``testbed retime``: price a finished run again under other traces or another topology.

Synchronous H-SGD does not depend on timing, so the trained curves stay as they are and
only the clock is replayed: the same iterations, aggregations and participants, on the
new network. With the same seed this equals a fresh run on that network.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from testbed.experiment import rundir
from testbed.experiment.algorithms import resolve_all
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.rundir import RUN_FOLDER
from testbed.experiment.runner import NetworkTimer, cost_structure, finish, make_clock, write_traces
from testbed.readers import read_csv_file, read_json_file, require_keys

log = logging.getLogger("testbed.experiment")

def _is_time_column(name: str) -> bool:
    """The clock writes the seconds columns (``*_s``); everything else comes from training."""
    return name.endswith("_s")


NETWORK_KEYS = ("tcp_model", "tcp_idle", "tcp_initial_window", "tcp_mss_bytes", "tcp_header_bytes", "tcp_rto_min_ms",
                "window_kib", "events")
"""Config keys a re-time may change: they set how the clock prices, never what was trained."""


def retime(run_dir: Path, trace_overrides: dict[str, str] | None = None, topology: str | None = None,
           reports_root: Path | None = None, network: list[str] | None = None) -> Path:
    """Write a new run folder whose times come from the new network; return it.
    ``network``: ``key=value`` settings of :data:`NETWORK_KEYS` (e.g. ``tcp_model=fluid``)."""
    from testbed.net import load_topology

    run_dir = Path(run_dir)
    for item in network or []:
        key = item.partition("=")[0].strip()
        if key not in NETWORK_KEYS:
            raise ValueError(f"--set {key}: a re-time changes only how the network prices the run; "
                             f"allowed: {', '.join(NETWORK_KEYS)} (other keys change training: run the experiment again)")
    info = require_keys(run_dir / "config.json", _read_json(run_dir / "config.json"),
                        ("config", "worker_nodes", "model_bytes"), RUN_FOLDER)
    old = ExperimentConfig.from_saved(info["config"], where=f"{run_dir / 'config.json'}")
    traces = {**old.trace_overrides, **(trace_overrides or {})}
    config = dataclasses.replace(old, topology=topology or old.topology, traces=tuple(f"{k}={v}" for k, v in traces.items()))
    config = config.with_overrides(list(network or []))
    topo = load_topology(config.topology, trace_overrides=config.trace_overrides)
    unused = sorted(set(trace_overrides or {}) - set(topo.traces))
    if unused:
        raise ValueError(f"--trace {unused[0]}: not a trace of {topo.source}; it uses {sorted(topo.traces) or 'no traces'}")
    algorithms = {a.spec: a for a in resolve_all(config.algorithms, topo.tree)}
    if topo.tree.n_workers != len(info["worker_nodes"]):
        raise ValueError(f"topology {config.topology}: has {topo.tree.n_workers} workers, the run had {len(info['worker_nodes'])}")
    metrics = read_csv_file(run_dir / "metrics.csv", RUN_FOLDER, ("spec", "seed", "iteration"))
    unknown = sorted(set(metrics.spec.astype(str)) - set(algorithms))
    if unknown:
        raise ValueError(f"{run_dir / 'metrics.csv'}: spec {unknown[0]!r} is not an algorithm of config.json "
                         f"({', '.join(algorithms)}); {RUN_FOLDER}")
    schedules = _read_json(run_dir / "schedule.json")
    if not isinstance(schedules, dict):
        raise ValueError(f"{run_dir / 'schedule.json'}: expected a JSON object of participants per pair")

    staging = rundir.new_run_dir(reports_root or run_dir.parent.parent, topo.name, "retime", config.to_dict())
    try:
        log.info("re-timing %s into %s", run_dir, staging)
        frames, events = [], []
        for (spec, seed), rows in metrics.groupby(["spec", "seed"], sort=False):
            algorithm = algorithms[spec]
            clock = make_clock(topo, algorithm, info["model_bytes"], info.get("compute_ms"), config, int(seed))
            timer = NetworkTimer(clock)
            timer.load_state_dict({"participants": schedules.get(f"{spec}|{seed}", {})})
            stamped = []
            for t in sorted(set(rows.iteration.astype(int))):
                timer.replay(t)  # the same iterations, aggregations and participants, on the new network
                row = {"iteration": t}
                timer.on_eval(row)
                stamped.append(row)
            times = pd.DataFrame(stamped)
            kept = rows[[c for c in rows.columns if not _is_time_column(c)]]
            frames.append(kept.merge(times, on="iteration", how="left")[_order(rows.columns, times.columns)])
            ev = clock.events_frame()
            ev.insert(0, "algorithm", algorithm.label)
            ev.insert(1, "seed", int(seed))
            events.append(ev)

        costs = cost_structure(topo, info["model_bytes"], config)
        info.update(config=config.to_dict(), topology=topo.name, retimed_from=str(run_dir), round_costs=costs.to_dict(),
                    **rundir.provenance())
        info["preset"] = "retime"
        rundir.atomic_write_json(staging / "config.json", info)
        rundir.atomic_write_text(staging / "topology.json", (run_dir / "topology.json").read_text() if topology is None else _topology_json(topo))
        write_traces(staging, topo)
        rundir.atomic_write_json(staging / "schedule.json", schedules)
        rundir.atomic_write_csv(staging / "events.csv", pd.concat(events, ignore_index=True))
        rundir.atomic_write_csv(staging / "metrics.csv", pd.concat(frames, ignore_index=True))
        out = rundir.publish(staging)
    finally:
        rundir.discard(staging)  # only if still staged: a refusal leaves nothing behind
    finish(out)
    return out


def _order(original: pd.Index, time_columns: pd.Index) -> list[str]:
    """Keep the original column order; new time columns (another topology's levels) go last."""
    cols = [c for c in original if not _is_time_column(c) or c in time_columns]
    return cols + [c for c in time_columns if c not in cols]


def _read_json(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; {RUN_FOLDER}")
    return read_json_file(path, RUN_FOLDER)


def _topology_json(topo) -> str:
    from testbed.experiment.runner import _graph_json

    return _graph_json(topo.graph)
