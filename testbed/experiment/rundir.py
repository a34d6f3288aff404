"""Run folders: ``reports/<topology>/<run-id>/``, written so that a crash never leaves a
file that looks finished. Every file is written atomically (``testbed.files``);
``report.html`` and the ``latest`` pointer are written last. An experiment and a re-time
describe their run with the same files (:func:`write_description`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from testbed.experiment.columns import COLUMNS_FILE, columns_markdown
from testbed.files import (GrowingCsv, atomic_write_bytes, atomic_write_csv, atomic_write_json,
                           atomic_write_text, folder_lock, fsync_dir, pid_alive,
                           remove_temporaries)
from testbed.paths import inside, safe_name
from testbed.net.costs import CostStructure, round_costs
from testbed.readers import read_csv_file, read_json_file, require_keys

__all__ = ["GrowingCsv", "atomic_write_bytes", "atomic_write_csv", "atomic_write_json", "atomic_write_text",
           "config_hash", "cost_structure", "discard", "graph_json", "is_staged", "new_run_dir", "point_latest",
           "provenance", "publish", "remove_temporaries", "safe_name", "write_description"]

RUN_FOLDER = "is this a run folder written by `testbed experiment`?"
PACKAGES = ("hsgd-testbed", "torch", "torchvision", "numpy", "simpy", "networkx", "pandas", "plotly")


STAGING_SUFFIX = ".staging"


def new_run_dir(reports_root: Path, topology: str, tag: str, config: dict[str, Any]) -> Path:
    """Create the run folder as a hidden temporary sibling,
    ``reports/<topology>/.<time>-<tag>-<hash>.<pid>.staging/`` (the hash names the config).
    :func:`publish` renames it into place once training starts, :func:`discard` removes it
    after a refusal: a refused run leaves nothing behind."""
    digest = config_hash(config)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = inside(Path(reports_root), topology)
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(base)
    name = f"{stamp}-{safe_name(tag)}-{digest}"
    staging = base / f".{name}.{os.getpid()}{STAGING_SUFFIX}"
    shutil.rmtree(staging, ignore_errors=True)  # our own pid's: left by an earlier call of this process
    staging.mkdir()
    return staging


def is_staged(run_dir: Path) -> bool:
    return Path(run_dir).name.endswith(STAGING_SUFFIX)


def publish(staging: Path) -> Path:
    """Rename a staged run folder to its final name (``<time>-<tag>-<hash>``, with ``-k``
    added when two runs of one second share it); returns the final path. The name is
    reserved with mkdir, then the staged folder replaces the empty reservation in one rename."""
    staging = Path(staging)
    name = staging.name[1:-len(STAGING_SUFFIX)].rsplit(".", 1)[0]
    for k in range(100):
        final = staging.parent / (name + ("" if k == 0 else f"-{k}"))
        try:
            final.mkdir()
        except FileExistsError:
            continue
        os.replace(staging, final)
        fsync_dir(staging.parent)
        return final
    raise RuntimeError(f"could not name a fresh run folder under {staging.parent}")


def discard(run_dir: Path) -> None:
    """Remove a staged run folder (never a published one), and its topology folder if that
    is left empty."""
    run_dir = Path(run_dir)
    if is_staged(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        try:
            run_dir.parent.rmdir()  # only succeeds when empty
        except OSError:
            pass


def remove_stale_staging(base: Path) -> None:
    """Staged folders of processes that no longer run (killed before training started)."""
    for path in base.glob(f".*{STAGING_SUFFIX}"):
        pid = path.name[: -len(STAGING_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def config_hash(config: dict[str, Any]) -> str:
    """Six hex digits naming a resolved config (in run folder names and comparisons)."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:6]


def point_latest(run_dir: Path) -> None:
    """Make ``<topology>/latest`` (a symlink) and ``LATEST.txt`` (for where links fail)
    name this run. Both change under one lock, so two runs finishing together cannot
    leave them naming different runs. ``run_dir`` may be given through ``latest`` itself
    (a resume): the link names the real folder."""
    run_dir = Path(run_dir).resolve()
    with folder_lock(run_dir.parent / ".latest.lock"):
        link = run_dir.parent / "latest"
        tmp = run_dir.parent / f".latest.{os.getpid()}.tmp"
        try:
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(run_dir.name, target_is_directory=True)
            os.replace(tmp, link)
        except OSError:
            tmp.unlink(missing_ok=True)
        atomic_write_text(run_dir.parent / "LATEST.txt", run_dir.name + "\n")


def write_description(run_dir: Path, info: dict[str, Any], topology, topology_json: str | None = None) -> None:
    """config.json (``info``), the columns' glossary, topology.json (``topology_json``, else
    the topology's graph) and the traces the topology uses (the report draws them)."""
    atomic_write_json(run_dir / "config.json", info)
    atomic_write_text(run_dir / COLUMNS_FILE, columns_markdown())
    atomic_write_text(run_dir / "topology.json", graph_json(topology.graph) if topology_json is None else topology_json)
    for name, trace in topology.traces.items():
        frame = pd.DataFrame({"t_s": trace.t_s, trace.column: trace.values})
        atomic_write_csv(inside(run_dir / "traces", safe_name(name) + ".csv"), frame)


def graph_json(graph: nx.Graph) -> str:
    return json.dumps(nx.node_link_data(graph, edges="links"), indent=1, default=str) + "\n"


def cost_structure(topology, model_bytes: float, config) -> CostStructure:
    """What one round costs at each level of the topology's own tree, priced on the clock
    with the run's model size, window and TCP model (config.json's ``round_costs``: the
    report's verdict explains results with it; a re-time prices it again on its network)."""
    return round_costs(topology, model_bytes=model_bytes, window_bytes=config.window_bytes, seed=0, tcp=config.tcp())


def provenance() -> dict[str, Any]:
    """Package versions, Python, platform and git revision, for config.json."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def git_revision() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def read_saved_config(run_dir: Path):
    """The :class:`ExperimentConfig` a run folder's config.json holds."""
    from testbed.experiment.config import ExperimentConfig

    config_file = Path(run_dir) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: missing; --resume takes a run folder made by `testbed experiment`")
    info = require_keys(config_file, read_json_file(config_file, RUN_FOLDER), ("config",), RUN_FOLDER)
    if not isinstance(info["config"], dict):
        raise ValueError(f"{config_file}: key 'config' is not an object of config keys; {RUN_FOLDER}")
    return ExperimentConfig.from_saved(info["config"], where=str(config_file))


@dataclass(frozen=True)
class Done:
    """What a run folder already holds: finished pairs' metrics, the event log, the schedules."""

    metrics: pd.DataFrame | None
    events: pd.DataFrame | None
    schedules: "SchedulePairs"


def read_done(run_dir: Path) -> Done:
    """The files of a run folder that a resume continues, read strictly (refusals name the file)."""
    schedules = read_schedules(run_dir / "schedule.json")
    return Done(_read_csv(run_dir / "metrics.csv", ("algorithm", "spec", "seed", "iteration")),
                _read_csv(run_dir / "events.csv", ("algorithm", "seed")), schedules)


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame | None:
    return read_csv_file(path, RUN_FOLDER, required) if path.exists() else None


# ---- schedule.json: the recorded Schedule (testbed.schedule) of every algorithm x seed ----
SCHEDULE_FORMAT = "testbed-schedules/1"
SchedulePairs = dict[tuple[str, int], dict[str, Any]]  # (spec, seed) -> Schedule.to_json()


def schedules_json(pairs: SchedulePairs) -> dict[str, Any]:
    """The file's content for ``pairs``, in their order."""
    return {"format": SCHEDULE_FORMAT, "pairs": [{"spec": spec, "seed": seed, "schedule": s} for (spec, seed), s in pairs.items()]}


def read_schedules(path: Path) -> SchedulePairs:
    """The pairs of a schedule.json (none when the file is absent); an old run folder's
    ``"spec|seed"`` keys are read too. Refusals name the file and what was expected."""
    if not path.exists():
        return {}
    data = read_json_file(path, RUN_FOLDER)
    if isinstance(data, dict) and data.get("format") == SCHEDULE_FORMAT:
        pairs = data.get("pairs")
        if not isinstance(pairs, list) or not all(isinstance(p, dict) and {"spec", "seed", "schedule"} <= set(p)
                                                   and isinstance(p["schedule"], dict) for p in pairs):
            raise ValueError(f"{path}: 'pairs' must be a list of {{spec, seed, schedule}} objects; {RUN_FOLDER}")
        return {(str(p["spec"]), int(p["seed"])): p["schedule"] for p in pairs}
    if isinstance(data, dict) and "format" not in data:  # before the format: {"spec|seed": {start: [workers]}}
        try:
            return {_legacy_key(key): {"rounds": [{"start": int(t), "participants": list(w)} for t, w in rounds.items()],
                                       "drops": [], "timing": None} for key, rounds in data.items()}
        except (AttributeError, TypeError, ValueError):
            pass
    raise ValueError(f"{path}: not a schedule file: expected {{\"format\": \"{SCHEDULE_FORMAT}\", \"pairs\": [...]}} "
                     f"(or an older run's {{\"spec|seed\": {{round start: [workers]}}}}); {RUN_FOLDER}")


def _legacy_key(key: str) -> tuple[str, int]:
    spec, sep, seed = key.rpartition("|")
    if not sep:
        raise ValueError(key)
    return spec, int(seed)
