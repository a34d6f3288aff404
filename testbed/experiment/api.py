"""The library's doors onto the experiment machinery: price a ``testbed.simulate`` call on
a topology, and run a whole experiment config from Python.

    result = testbed.simulate("mlp", data, tree="hsgd", network="edge3level", compute_ms=5)
    result.metrics.sim_time_s          # simulated wall-clock at each evaluation
    run = testbed.run_experiment({"topology": "star", "iterations": 200})
    run.folder, run.metrics, run.events

Both use the clock and the runner the CLI uses (``runner.make_clock``, ``NetworkTimer``,
``runner.run_experiment``): there is no second implementation to drift.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from testbed.experiment.config import ExperimentConfig, preset
from testbed.tree import AggregationTree

ConfigSource = ExperimentConfig | Mapping[str, Any] | str | os.PathLike


@dataclass(frozen=True)
class NetworkPricing:
    """An algorithm resolved on a topology and the callback that prices it on the clock."""

    tree: AggregationTree  # the algorithm's aggregation tree over the topology's workers
    timer: Any  # runner.NetworkTimer: stamps each evaluation row with sim_time_s and its breakdown
    topology: Any  # testbed.net.Topology: levels and tiers the event log is keyed to

    def events(self) -> pd.DataFrame:
        """The clock's event log so far (one row per transfer, barrier and round), levels
        and tiers of the topology as in events.csv."""
        from testbed.experiment.tidy import keyed_to_topology

        return keyed_to_topology(self.timer.clock.events_frame(), self.topology)


def price_on_network(network: Any, algorithm: str, model: Any, compute_ms: float | None, seed: int) -> NetworkPricing:
    """``algorithm`` (a spec: 'hsgd', 'local:P', 'hsgd:G,I@0,2') on ``network`` (a shipped
    topology's name, a file, a networkx graph or a Topology), with the experiment's TCP
    model and window defaults. ``compute_ms`` None: each worker node's own compute time."""
    from testbed.experiment.algorithms import resolve_all
    from testbed.experiment.modelcost import model_bytes
    from testbed.experiment.runner import make_clock
    from testbed.experiment.timer import NetworkTimer
    from testbed.net import load_topology

    if not isinstance(algorithm, str) or algorithm.strip() == "auto":
        raise ValueError(
            f"tree: with network=, give one algorithm spec on that topology ('hsgd', 'local:P', "
            f"'hsgd:P1,P2,...' or 'hsgd:G,I@0,2'), got {algorithm!r}; its workers are the topology's"
        )
    if compute_ms is not None and not compute_ms > 0:
        raise ValueError(f"compute_ms: must be > 0 ms per iteration (None: the topology's), got {compute_ms!r}")
    topology = load_topology(network)
    config = ExperimentConfig()
    (resolved,) = resolve_all((algorithm,), topology.tree)
    clock = make_clock(topology, resolved, model_bytes(model, config.model_bytes_per_param), compute_ms, config, seed)
    return NetworkPricing(resolved.tree, NetworkTimer(clock), topology)


@dataclass(frozen=True)
class RunResult:
    """A finished run folder and its two tidy tables."""

    folder: Path  # reports/<topology>/<run-id>/ (report.html inside)
    metrics: pd.DataFrame  # metrics.csv: one row per algorithm x seed x evaluation point
    events: pd.DataFrame  # events.csv: the clock's event log
    config: ExperimentConfig


def load_config(source: ConfigSource | None = None, base: str = "quick") -> ExperimentConfig:
    """An ExperimentConfig from itself, a dict of keys or a config file (JSON or TOML),
    applied over the preset ``base``, exactly as ``testbed experiment --config`` reads it."""
    if isinstance(source, ExperimentConfig):
        return source
    if isinstance(source, (str, os.PathLike)):
        from testbed.experiment.configfile import read_config_file

        where, values = str(source), read_config_file(source)
    else:
        where, values = "config", dict(source or {})
    return ExperimentConfig.from_dict({**preset(base).to_dict(), **values}, where=where)


def run_experiment(config: ConfigSource | None = None, reports: str | os.PathLike = "reports", progress: bool = False) -> RunResult:
    """Train and price every algorithm x seed of ``config`` (see :func:`load_config`) as
    ``testbed experiment`` does, write the run folder and its report, return both tables."""
    from testbed.experiment.cli import check_against_topology
    from testbed.experiment.runner import run_experiment as run

    config = load_config(config)
    check_against_topology(config, lambda key: key)
    folder = run(config, reports_root=Path(reports), tag="run", progress=progress)
    metrics = pd.read_csv(folder / "metrics.csv")
    events_file = folder / "events.csv"
    events = pd.read_csv(events_file) if events_file.stat().st_size else pd.DataFrame()
    return RunResult(folder, metrics, events, config)
