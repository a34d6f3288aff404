"""Run folders: ``reports/<topology>/<run-id>/``, written so that a crash never leaves a
file that looks finished. Every file is written atomically (``testbed.files``);
``report.html`` and the ``latest`` pointer are written last."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from testbed.files import (GrowingCsv, atomic_write_bytes, atomic_write_csv, atomic_write_json,
                           atomic_write_text, folder_lock, fsync_dir, pid_alive,
                           remove_temporaries)
from testbed.paths import inside, safe_name

__all__ = ["GrowingCsv", "atomic_write_bytes", "atomic_write_csv", "atomic_write_json", "atomic_write_text",
           "discard", "is_staged", "new_run_dir", "point_latest", "provenance", "publish", "remove_temporaries", "safe_name"]

PACKAGES = ("hsgd-testbed", "torch", "torchvision", "numpy", "simpy", "networkx", "pandas", "plotly")


STAGING_SUFFIX = ".staging"


def new_run_dir(reports_root: Path, topology: str, tag: str, config: dict[str, Any]) -> Path:
    """Create the run folder as a hidden temporary sibling,
    ``reports/<topology>/.<time>-<tag>-<hash>.<pid>.staging/`` (the hash names the config).
    :func:`publish` renames it into place once training starts, :func:`discard` removes it
    after a refusal: a refused run leaves nothing behind."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:6]
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


def point_latest(run_dir: Path) -> None:
    """Make ``<topology>/latest`` (a symlink) and ``LATEST.txt`` (for where links fail)
    name this run. Both change under one lock, so two runs finishing together cannot
    leave them naming different runs."""
    run_dir = Path(run_dir)
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
