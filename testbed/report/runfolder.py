"""Read a run folder (written by the experiment runner) into one small typed object.

A run folder holds ``config.json`` and ``metrics.csv`` (both required) and, optionally,
``events.csv``, ``topology.json`` and ``traces/NAME.csv``. A missing or unreadable
optional file does not stop the report: it becomes a note shown at the top of the page
and the section that needed it says what is missing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import networkx as nx
import numpy as np
import pandas as pd

from testbed.experiment.columns import COMM_COLUMN
from testbed.readers import read_csv_file, read_json_file
from testbed.report.legacy import algorithm_levels, upgrade_events, upgrade_metrics

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
EVENTS_FILE = "events.csv"
TOPOLOGY_FILE = "topology.json"
TRACES_DIR = "traces"

# Without these the report has nothing to plot; every other metrics column is optional.
REQUIRED_METRICS = ("algorithm", "seed", "iteration", "sim_time_s", "test_acc")
_NORMAL_STATUS = ("", "ok")  # statuses that need no note


@dataclass(frozen=True)
class AlgorithmInfo:
    """One compared algorithm as the runner resolved it (an entry of config.json's ``algorithms``)."""

    label: str  # the name used in metrics.csv and everywhere in the report
    spec: str  # as the user wrote it, e.g. "local:40" or "hsgd"
    is_local_sgd: bool  # a baseline of the speed-up columns
    global_period: int | None
    periods: tuple[tuple[int, ...], ...]  # one tuple per server level, top first
    server_nodes: tuple[str, ...]  # topology nodes that aggregate for this algorithm


@dataclass(frozen=True)
class Trace:
    """One measured trace from ``traces/NAME.csv``."""

    name: str
    kind: str  # "rtt" | "bandwidth" | "other"
    column: str  # the value column, e.g. "rtt_ms"
    unit: str  # for axis titles, e.g. "ms"
    t_s: np.ndarray  # sample times (NaN when the file has no t_s column)
    values: np.ndarray


@dataclass(frozen=True)
class RunFolder:
    """Everything the report reads from one run folder."""

    path: Path
    config: Mapping[str, Any]  # the resolved experiment keys (config.json's "config")
    preset: str | None
    topology_name: str
    algorithms: tuple[AlgorithmInfo, ...]  # in config order, then any found only in metrics
    versions: Mapping[str, str]
    git_revision: str | None
    created: str | None
    model_params: int | None
    model_bytes: int | None
    metrics: pd.DataFrame  # tidy: one row per algorithm x seed x evaluation point
    events: pd.DataFrame | None
    topology: nx.Graph | None
    traces: Mapping[str, Trace]
    notes: tuple[str, ...]  # what was missing or odd, for the top of the page
    raw_config: Mapping[str, Any]  # config.json as written, for the config section

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(int(s) for s in self.metrics["seed"].unique()))

    @property
    def target_acc(self) -> float | None:
        value = self.config.get("target_acc")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def budget_s(self) -> float | None:
        """The simulated time budget every algorithm ran to (None: no budget)."""
        value = self.config.get("budget_s")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None

    @property
    def comm_columns(self) -> tuple[str, ...]:
        """The ``comm_<tier>_s`` columns, top tier first (metrics.csv's order)."""
        return tuple(c for c in self.metrics.columns if COMM_COLUMN.match(c))

    def algorithm(self, label: str) -> AlgorithmInfo:
        for algo in self.algorithms:
            if algo.label == label:
                return algo
        raise KeyError(f"{self.path / METRICS_FILE}: no algorithm labelled {label!r}")

    def curves(self, label: str) -> dict[int, pd.DataFrame]:
        """Rows of one algorithm, per seed, sorted by iteration."""
        rows = self.metrics[self.metrics["algorithm"] == label]
        return {int(seed): g.sort_values("iteration", kind="stable") for seed, g in rows.groupby("seed", sort=True)}


def load_run(run_dir: str | Path) -> RunFolder:
    """Read a run folder; raises FileNotFoundError / ValueError naming the file and what is wrong."""
    path = _resolve_run_dir(Path(run_dir))
    notes: list[str] = []
    raw = _read_config(path / CONFIG_FILE)
    metrics = _read_metrics(path / METRICS_FILE)
    algorithms = _algorithms(raw, metrics, path, notes)
    levels = algorithm_levels({a.label: (a.spec, len(a.periods)) for a in algorithms})
    metrics = upgrade_metrics(metrics, levels, notes)
    events = _read_optional_csv(path / EVENTS_FILE, notes)
    if events is not None:
        events = upgrade_events(events, levels, notes)
    topology = _read_topology(path / TOPOLOGY_FILE, notes)
    traces = _read_traces(path / TRACES_DIR, notes, expected=topology is None or _names_traces(topology))
    _note_statuses(metrics, notes)
    config = raw.get("config", {})
    return RunFolder(
        path=path,
        config=config,
        preset=_opt_str(raw.get("preset")),
        topology_name=str(raw.get("topology") or config.get("topology") or "unknown topology"),
        algorithms=algorithms,
        versions={str(k): str(v) for k, v in (raw.get("versions") or {}).items()},
        git_revision=_opt_str(raw.get("git_revision")),
        created=_opt_str(raw.get("created")),
        model_params=_opt_int(raw.get("model_params")),
        model_bytes=_opt_int(raw.get("model_bytes")),
        metrics=metrics,
        events=events,
        topology=topology,
        traces=traces,
        notes=tuple(notes),
        raw_config=raw,
    )


def _resolve_run_dir(path: Path) -> Path:
    """The real folder: follows the ``latest`` symlink, or LATEST.txt where links failed."""
    pointer = path.parent / "LATEST.txt"
    if not path.exists() and path.name == "latest" and pointer.is_file():
        path = path.parent / pointer.read_text(encoding="utf-8").strip()
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {path} does not exist (give the folder written by `testbed experiment`)")
    # Resolved so the page names the run itself, not "latest".
    return path.resolve()


# ------------------------------------------------------------------ required files


def _read_config(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing; a run folder needs {CONFIG_FILE} and {METRICS_FILE}")
    raw = read_json_file(file, "a run folder's config.json is JSON written by `testbed experiment`")
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: expected a JSON object with keys config, algorithms, ...; got {type(raw).__name__}")
    if not isinstance(raw.get("config", {}), dict):
        raise ValueError(f"{file}: key 'config' must be an object of experiment keys")
    if not isinstance(raw.get("algorithms", []), list):
        raise ValueError(f"{file}: key 'algorithms' must be a list of objects with 'label' and 'spec'")
    return raw


def _read_metrics(file: Path) -> pd.DataFrame:
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing; a run folder needs {CONFIG_FILE} and {METRICS_FILE}")
    metrics = read_csv_file(file, f"needs at least {', '.join(REQUIRED_METRICS)}", REQUIRED_METRICS)
    if metrics.empty:
        raise ValueError(f"{file}: has a header but no rows; the run recorded no evaluation point")
    for column in ("seed", "iteration", "sim_time_s", "test_acc"):
        converted = pd.to_numeric(metrics[column], errors="coerce")
        bad = converted.isna() & metrics[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # +1 header, +1 one-based
            raise ValueError(f"{file}, row {row}: column {column} must be numeric, got {metrics[column][bad].iloc[0]!r}")
        if np.isinf(converted).any():  # a diverged run writes blanks, never inf
            row = int(np.flatnonzero(np.isinf(converted.to_numpy()))[0]) + 2
            raise ValueError(f"{file}, row {row}: column {column} is {metrics[column].iloc[row - 2]}; values must be finite")
        metrics[column] = converted
    metrics["algorithm"] = metrics["algorithm"].astype(str)
    return metrics


def _algorithms(raw: Mapping[str, Any], metrics: pd.DataFrame, path: Path, notes: list[str]) -> tuple[AlgorithmInfo, ...]:
    infos = [_algorithm_info(entry, path / CONFIG_FILE, i) for i, entry in enumerate(raw.get("algorithms", []))]
    in_metrics = list(dict.fromkeys(metrics["algorithm"]))
    known = {a.label for a in infos}
    for label in in_metrics:
        if label not in known:  # still plotted, but the runner's description is missing
            notes.append(f"{METRICS_FILE} has rows for {label!r}, which {CONFIG_FILE} does not list")
            infos.append(AlgorithmInfo(label, "", False, None, (), ()))
    for algo in infos:
        if algo.label not in in_metrics:
            notes.append(f"{CONFIG_FILE} lists {algo.label!r} but {METRICS_FILE} has no rows for it")
    return tuple(a for a in infos if a.label in in_metrics)


def _algorithm_info(entry: Any, file: Path, index: int) -> AlgorithmInfo:
    if not isinstance(entry, dict) or "label" not in entry:
        raise ValueError(f"{file}: algorithms[{index}] must be an object with at least a 'label'")
    periods = tuple(tuple(int(p) for p in level) if isinstance(level, list) else (int(level),) for level in entry.get("periods", []))
    return AlgorithmInfo(
        label=str(entry["label"]),
        spec=str(entry.get("spec", "")),
        is_local_sgd=bool(entry.get("is_local_sgd", False)),
        global_period=_opt_int(entry.get("global_period")),
        periods=periods,
        server_nodes=tuple(str(n) for n in entry.get("server_nodes", [])),
    )


# ------------------------------------------------------------------ optional files


def _read_optional_csv(file: Path, notes: list[str]) -> pd.DataFrame | None:
    if not file.is_file():
        notes.append(f"{file.name} not found in the run folder")
        return None
    try:
        return pd.read_csv(file)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        notes.append(f"{file.name} could not be read ({err})")
        return None


def _read_topology(file: Path, notes: list[str]) -> nx.Graph | None:
    if not file.is_file():
        notes.append(f"{TOPOLOGY_FILE} not found in the run folder: the topology is not drawn")
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        # networkx changed the default edge key from "links" to "edges"; accept either.
        edges_key = "links" if "links" in data and "edges" not in data else "edges"
        data.setdefault(edges_key, [])  # a lone cloud has no edges key at all
        return nx.node_link_graph(data, edges=edges_key)
    except (ValueError, KeyError, TypeError, AttributeError, nx.NetworkXError) as err:  # garbage in any shape
        notes.append(f"{TOPOLOGY_FILE} is not networkx node-link JSON ({type(err).__name__}: {err}): the topology is not drawn")
        return None


def _names_traces(topology: nx.Graph) -> bool:
    return any(k.endswith("_trace") for _, _, data in topology.edges(data=True) for k in data) or \
        any("compute_trace" in data for _, data in topology.nodes(data=True))


def _read_traces(folder: Path, notes: list[str], expected: bool = True) -> dict[str, Trace]:
    if not folder.is_dir():
        if expected:  # a topology of fixed latencies has no trace to copy
            notes.append(f"{TRACES_DIR}/ not found in the run folder: no trace distributions")
        return {}
    traces: dict[str, Trace] = {}
    for file in sorted(folder.glob("*.csv")):
        try:
            traces[file.stem] = read_trace(file)
        except ValueError as err:
            notes.append(str(err))
    return traces


def read_trace(file: Path) -> Trace:
    """One trace CSV: ``t_s`` plus one value column (``rtt_ms`` or ``mbps``)."""
    try:
        frame = pd.read_csv(file)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{TRACES_DIR}/{file.name}: cannot be read as CSV ({err})") from None
    value_columns = [c for c in frame.columns if c != "t_s"]
    if not value_columns:
        raise ValueError(f"{TRACES_DIR}/{file.name}: no value column (expected t_s,rtt_ms or t_s,mbps)")
    column = "rtt_ms" if "rtt_ms" in value_columns else "mbps" if "mbps" in value_columns else value_columns[0]
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"{TRACES_DIR}/{file.name}: column {column} has no numeric value")
    kind = "rtt" if column == "rtt_ms" else "bandwidth" if column.endswith("mbps") else "other"
    unit = {"rtt": "ms", "bandwidth": "Mbit/s"}.get(kind, column.rsplit("_", 1)[-1] if "_" in column else "")
    t_s = pd.to_numeric(frame["t_s"], errors="coerce").to_numpy(dtype=float) if "t_s" in frame else np.full(len(frame), np.nan)
    return Trace(name=file.stem, kind=kind, column=column, unit=unit, t_s=t_s, values=values)


def _note_statuses(metrics: pd.DataFrame, notes: list[str]) -> None:
    """Surface status messages (e.g. divergence) the runner left on a run's last row, and
    accuracies missing from rows that give no reason."""
    text = pd.Series("", index=metrics.index)
    if "status" in metrics.columns:
        # An all-empty status column is read as float NaN, so normalise cell by cell.
        text = metrics["status"].map(lambda v: "" if pd.isna(v) else str(v).strip())
        rows = metrics[~text.str.lower().isin(_NORMAL_STATUS)]
        for (label, seed), group in rows.groupby(["algorithm", "seed"], sort=False):
            notes.append(f"{label}, seed {int(seed)}: {text[group.index[-1]]}")
    unexplained = metrics[metrics["test_acc"].isna() & text.str.lower().isin(_NORMAL_STATUS)]
    if len(unexplained):
        first = unexplained.iloc[0]
        notes.append(f"{METRICS_FILE}: {len(unexplained)} row(s) have no test accuracy and no status, first "
                     f"{first['algorithm']}, seed {int(first['seed'])}, iteration {int(first['iteration'])}")


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
