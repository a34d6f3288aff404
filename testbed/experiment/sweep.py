"""``testbed sweep``: a grid of experiment configs, each point an ordinary run folder.

    <reports>/sweeps/<preset>-<grid keys>-<hash>/
        sweep.json                      the base config and the grid (written before any point runs)
        points/<point>/point.json       the point's config, and its run folder as `testbed experiment`
        points/<point>/<topology>/<run-id>/   writes it (report.html inside once finished)
        compare.html                    one comparison report over every point (written last)
        time_to_target.csv              one row per point x algorithm, the grid values as columns

Points run on this machine, K at a time (``--jobs K``; each gets cores // K torch threads
unless the config sets ``threads``), or as jobs submitted through submitit: Slurm, or
its local executor, which runs the same submission path on one machine. The same
command again resumes the sweep: finished points are skipped, an interrupted one
continues from its checkpoints (as ``testbed experiment --resume``), the rest run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.experiment.config import ExperimentConfig
from testbed.experiment.grid import Axis, Point, grid_points
from testbed.experiment.rundir import config_hash
from testbed.files import atomic_write_csv, atomic_write_json
from testbed.paths import safe_name

log = logging.getLogger("testbed.experiment")

EXECUTORS = ("local", "submitit-local", "slurm")  # local: a pool here; the others go through submitit
SWEEP_FILE, POINT_FILE, POINT_LOG = "sweep.json", "point.json", "point.log"
COMPARE_FILE, TARGET_FILE = "compare.html", "time_to_target.csv"
# submitit's parameters common to its executors, with their types; other parameters take
# the executor's prefix (slurm_partition, slurm_array_parallelism, ...)
SUBMITIT_PARAMS = {"timeout_min": int, "mem_gb": float, "cpus_per_task": int, "gpus_per_node": int,
                   "nodes": int, "tasks_per_node": int, "name": str}
SUBMITIT_DEFAULTS = {"timeout_min": 60, "cpus_per_task": 1}


@dataclass(frozen=True)
class Sweep:
    folder: Path
    preset: str  # the base config's preset, recorded in each run folder
    base: ExperimentConfig
    axes: tuple[Axis, ...]
    points: tuple[Point, ...]

    @property
    def identity(self) -> dict[str, Any]:
        """What makes two sweeps the same (sweep.json holds it): rerunning resumes only the same sweep."""
        return _identity(self.preset, self.base, self.axes)

    def point_dir(self, point: Point) -> Path:
        return self.folder / "points" / point.name


def _identity(preset: str, base: ExperimentConfig, axes: tuple[Axis, ...]) -> dict[str, Any]:
    return {"preset": preset, "base": base.to_dict(), "grid": {a.key: list(a.texts) for a in axes}}


def plan(base: ExperimentConfig, axes: list[Axis], preset: str, reports: Path, out: Path | None = None) -> Sweep:
    """The sweep's points, checked (nothing written); ``out`` None: a folder named by the
    preset, the grid keys and a hash of the whole sweep under ``<reports>/sweeps/``."""
    points = tuple(grid_points(base, axes))
    if out is None:
        digest = config_hash(_identity(preset, base, tuple(axes)))
        out = Path(reports) / "sweeps" / (safe_name("-".join([preset, *(a.key for a in axes)]), limit=60) + f"-{digest}")
    sweep = Sweep(Path(out), preset, base, tuple(axes), points)
    _check_folder(sweep)
    return sweep


def _check_folder(sweep: Sweep) -> None:
    """An existing folder must hold this very sweep (then it is resumed)."""
    folder = sweep.folder
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder; --out takes the sweep's folder")
    saved_file = folder / SWEEP_FILE
    if not saved_file.is_file():
        if any(folder.iterdir()):
            raise ValueError(f"{folder}: not empty and holds no {SWEEP_FILE}; give a new or empty --out folder")
        return
    from testbed.readers import read_json_file

    saved = read_json_file(saved_file, "is this a sweep folder written by `testbed sweep`?")
    mine = sweep.identity
    differs = next((k for k in mine if not isinstance(saved, dict) or saved.get(k) != mine[k]), None)
    if differs is not None:
        raise ValueError(f"{saved_file}: another sweep (its {differs} differs); give another --out to start a new "
                         f"sweep, or the same preset, config and grid to resume this one")


def write_plan(sweep: Sweep) -> None:
    """The point files, then sweep.json (a point is run from its point.json)."""
    for point in sweep.points:
        info = {"preset": sweep.preset, "grid": dict(point.values), "config": point.config.to_dict()}
        atomic_write_json(sweep.point_dir(point) / POINT_FILE, info)
    atomic_write_json(sweep.folder / SWEEP_FILE, {**sweep.identity, "points": [p.name for p in sweep.points]})


def finished_run(point_dir: Path) -> Path | None:
    """The point's run folder once it has its report (written after its last pair)."""
    run = _run_folder(point_dir)
    return run if run is not None and (run / "report.html").is_file() else None


def _run_folder(point_dir: Path) -> Path | None:
    """The point's run folder (published: staged folders are hidden), finished or not."""
    runs = [p for p in point_dir.glob("*/*") if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
    return max(runs, key=lambda p: p.name) if runs else None


def run_point(point_dir: Path, threads: int = 0) -> Path:
    """Run one point to its end: skip it if finished, resume its run folder if a killed job
    left one, else start it; returns the finished run folder. With ``threads`` > 0, a
    fresh run whose config leaves ``threads`` at 0 uses that many."""
    from testbed.experiment.runner import resume_experiment, run_experiment
    from testbed.readers import read_json_file

    point_dir = Path(point_dir)
    with _point_lock(point_dir):
        done = finished_run(point_dir)
        if done is not None:
            return done
        run = _run_folder(point_dir)
        if run is not None:
            return resume_experiment(run, progress=False)
        info = read_json_file(point_dir / POINT_FILE, "is this a sweep point written by `testbed sweep`?")
        config = ExperimentConfig.from_dict(info["config"], where=str(point_dir / POINT_FILE))
        if threads and not config.threads:
            config = dataclasses.replace(config, threads=threads)
        return run_experiment(config, reports_root=point_dir, tag=str(info["preset"]), progress=False)


@contextlib.contextmanager
def _point_lock(point_dir: Path) -> Iterator[None]:
    """One process per point: a second (another sweep of the same folder, or a job still
    running on the cluster) is refused instead of writing the same run folder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(point_dir / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{point_dir}: another process is running this point; wait for it to end") from None
        yield


def pending(sweep: Sweep) -> list[Point]:
    return [p for p in sweep.points if finished_run(sweep.point_dir(p)) is None]


def threads_per_job(jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // jobs)


def run_local(sweep: Sweep, points: list[Point], jobs: int) -> dict[str, str]:
    """Run the points ``jobs`` at a time, each in its own process; returns the failures
    (point name -> the last line its process wrote)."""
    threads = threads_per_job(jobs)
    log.info("sweep: %d point(s) to run, %d at a time, %d thread(s) each", len(points), jobs, threads)
    failures = {}
    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(_run_child, sweep.point_dir(p), threads): p for p in points}
        for k, future in enumerate(as_completed(futures), 1):
            point, error = futures[future], future.result()
            if error:
                failures[point.name] = error
            log.info("sweep: %d of %d: %s %s", k, len(points), point.name, "FAILED" if error else "done")
    return failures


def _run_child(point_dir: Path, threads: int) -> str | None:
    """One point in a child process (`python -m testbed.experiment.sweep`), its output in
    point.log; None when it succeeded, else the last line it wrote."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    logfile = point_dir / POINT_LOG
    with open(logfile, "a") as out:
        code = subprocess.run([sys.executable, "-m", __name__, str(point_dir), str(threads), str(os.getpid())], stdout=out,
                              stderr=subprocess.STDOUT, env=env).returncode
    if code == 0:
        return None
    lines = [line for line in logfile.read_text(errors="replace").splitlines() if line.strip()]
    return f"{lines[-1] if lines else f'exit code {code}'} (log: {logfile})"


def submitit_params(items: list[str]) -> dict[str, Any]:
    """``--slurm KEY=VALUE`` as submitit parameters, typed; unknown names refused."""
    params: dict[str, Any] = dict(SUBMITIT_DEFAULTS)
    for item in items:
        key, sep, text = (s.strip() for s in item.partition("="))
        if not sep or not key or not text:
            raise ValueError(f"--slurm {item!r}: expected KEY=VALUE, e.g. timeout_min=120 or slurm_partition=gpu")
        kind = SUBMITIT_PARAMS.get(key)
        if kind is None and not key.startswith(("slurm_", "local_")):
            raise ValueError(f"--slurm {key}: unknown parameter; allowed: {', '.join(SUBMITIT_PARAMS)}, or "
                             f"slurm_* (submitit's SlurmExecutor parameters, e.g. slurm_partition)")
        try:
            params[key] = kind(text) if kind is not None else (int(text) if text.lstrip("-").isdigit() else text)
        except ValueError:
            raise ValueError(f"--slurm {key}={text}: expected {kind.__name__}") from None
    return params


def submitit_executor(folder: Path, cluster: str, params: dict[str, Any]):
    """submitit's executor for ``cluster`` (slurm or local) with ``params``; refusals in one
    line. Call it on a scratch folder to check the parameters before anything is written."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    except RuntimeError as err:  # e.g. no srun: not a Slurm machine
        raise ValueError(f"--executor {cluster}: submitit cannot submit here: {str(err).splitlines()[0]}") from None
    try:
        executor.update_parameters(**params)
    except (NameError, AssertionError, ValueError, TypeError) as err:
        raise ValueError(f"--slurm: submitit refuses the parameters: {str(err).splitlines()[0]}") from None
    return executor


def run_submitit(sweep: Sweep, points: list[Point], cluster: str, params: dict[str, Any]) -> dict[str, str]:
    """Submit the points as one job array through submitit and wait for them; returns the
    failures. ``cluster``: slurm, or local (submitit's local executor, same code path)."""
    executor = submitit_executor(sweep.folder / "submitit", cluster, params)
    threads = params["cpus_per_task"]
    with executor.batch():
        jobs = [executor.submit(run_point, sweep.point_dir(p), threads) for p in points]
    log.info("sweep: %d job(s) submitted to %s (logs in %s)", len(jobs), cluster, sweep.folder / "submitit")
    failures = {}
    for k, (point, job) in enumerate(zip(points, jobs), 1):
        try:
            job.result()
        except Exception as err:  # submitit's FailedJobError carries the job's traceback: keep its last line
            lines = [line for line in str(err).splitlines() if line.strip()]
            failures[point.name] = f"{lines[-1] if lines else type(err).__name__} (job {job.job_id})"
        log.info("sweep: %d of %d: %s %s", k, len(points), point.name, "FAILED" if point.name in failures else "done")
    return failures


def finish(sweep: Sweep) -> tuple[Path, Path]:
    """The comparison report over every point and the tidy time-to-target CSV."""
    from testbed.report.compare import compare_runs
    from testbed.report.sweeptable import target_rows

    runs = {p.name: finished_run(sweep.point_dir(p)) for p in sweep.points}
    report = compare_runs([runs[p.name] for p in sweep.points], sweep.folder / COMPARE_FILE,
                          names=[p.name for p in sweep.points])
    table = sweep.folder / TARGET_FILE
    atomic_write_csv(table, target_rows([(p.name, dict(p.values), runs[p.name]) for p in sweep.points], sweep.folder))
    return report, table


def run_sweep(sweep: Sweep, executor: str = "local", jobs: int = 1, params: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Run every unfinished point, then write the comparison and the table. Raises
    RuntimeError naming the failed points (the rest are kept; run again to retry)."""
    write_plan(sweep)
    todo = pending(sweep)
    log.info("sweep: %s (%d points, %d finished)", sweep.folder, len(sweep.points), len(sweep.points) - len(todo))
    if executor == "local":
        failures = run_local(sweep, todo, jobs) if todo else {}
    else:
        failures = run_submitit(sweep, todo, executor.removeprefix("submitit-"), params or {}) if todo else {}
    if failures:
        name = next(p.name for p in sweep.points if p.name in failures)
        raise RuntimeError(f"{len(failures)} of {len(sweep.points)} points failed; {name}: {failures[name]}. "
                           f"Finished points are kept: run the same command again to retry")
    return finish(sweep)


def _exit_with_parent(parent: int) -> None:
    """A point's process ends when the sweep that started it (pid ``parent``) is killed, even
    while it was still starting, so a resumed sweep never meets an orphan writing the same run folder."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _main(argv: list[str]) -> int:
    """``python -m testbed.experiment.sweep POINT_DIR THREADS PARENT_PID``: one point, as run_local starts it."""
    from testbed.cli import one_line

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _exit_with_parent(int(argv[2]))
    try:
        log.info("run folder: %s", run_point(Path(argv[0]), int(argv[1])))
    except Exception as err:
        log.exception("%s failed", argv[0])  # the traceback, for point.log
        log.error("error: %s", one_line(err))  # its last line: what the sweep reports
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
