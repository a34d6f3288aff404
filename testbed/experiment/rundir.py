"""Run folders: ``reports/<topology>/<run-id>/``, written so that a crash never leaves a
file that looks finished. Every file is written atomically (``testbed.files``);
``report.html`` and the ``latest`` pointer are written last."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from testbed.files import GrowingCsv, atomic_write_bytes, atomic_write_csv, atomic_write_json, atomic_write_text

__all__ = ["GrowingCsv", "atomic_write_bytes", "atomic_write_csv", "atomic_write_json", "atomic_write_text",
           "config_hash", "new_run_dir", "point_latest", "provenance", "safe_name"]

PACKAGES = ("hsgd-testbed", "torch", "torchvision", "numpy", "simpy", "networkx", "pandas", "plotly")


def new_run_dir(reports_root: Path, topology: str, tag: str, config: dict[str, Any]) -> Path:
    """Create ``reports/<topology>/<time>-<tag>-<hash>/``; the hash names the config."""
    digest = config_hash(config)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(reports_root) / safe_name(topology)
    for k in range(100):
        run_dir = base / (f"{stamp}-{safe_name(tag)}-{digest}" + ("" if k == 0 else f"-{k}"))
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run folder under {base}")


def config_hash(config: dict[str, Any]) -> str:
    """Six hex digits naming a resolved config (in run folder names and comparisons)."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:6]


def point_latest(run_dir: Path) -> None:
    """Make ``<topology>/latest`` name this run (a symlink, plus LATEST.txt where links fail).
    ``run_dir`` may be given through ``latest`` itself (a resume): the link names the real folder."""
    run_dir = Path(run_dir).resolve()
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
    atomic_write_text(run_dir.parent / "LATEST.txt", run_dir.name + "\n")


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


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "run"
