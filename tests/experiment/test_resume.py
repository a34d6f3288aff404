"""Kill an experiment with SIGKILL at random points, resume it, get the same metrics."""

import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from testbed.experiment.checkpoint import checkpoint_path, load_checkpoint
from testbed.experiment.runner import resume_experiment, run_experiment

SETTINGS = ["iterations=200", "eval_every=20", "seeds=0", "checkpoint_every=40", "divergence_every=2",
            "algorithms=hsgd,local:2", "participation=0.75", "momentum=0.5"]


def start(reports, *extra):
    cmd = [sys.executable, "-m", "testbed", "experiment", "--topo", "edge3level", "--reports", str(reports), "--no-progress"]
    cmd += [a for s in SETTINGS for a in ("--set", s)] + list(extra)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def progress_marks(root):
    """Modification times of the files a run writes as it goes (checkpoints, metrics)."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.suffix in (".pt", ".csv") and p.is_file()}


def wait_for_progress(proc, root, before, timeout_s=120.0):
    """Until the run writes something new (or exits); True if it is still running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if progress_marks(root) != before:
            return True
        time.sleep(0.05)
    return proc.poll() is None


def test_killed_runs_resume_to_identical_metrics(tmp_path):
    reference = start(tmp_path / "ref")
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    ref_dir = next((tmp_path / "ref" / "edge3level").glob("2*"))

    rng = np.random.default_rng(0)
    root = tmp_path / "killed"
    proc = start(root)
    kills = 0
    for _ in range(3):  # several random points: some progress, then a random moment
        if not wait_for_progress(proc, root, progress_marks(root)):
            break
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        run_dir = next((root / "edge3level").glob("2*"))
        proc = subprocess.Popen([sys.executable, "-m", "testbed", "experiment", "--resume", str(run_dir), "--no-progress"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert kills >= 2, f"only {kills} kill(s) landed before the run finished"
    run_dir = next((root / "edge3level").glob("2*"))
    for name in ("metrics.csv", "events.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(run_dir / name), pd.read_csv(ref_dir / name), check_exact=True)
    assert not list((run_dir / "checkpoints").glob("*.pt")), "checkpoints of finished pairs are removed"


def test_resume_from_a_checkpoint_in_process_equals_an_uninterrupted_run(tmp_path, crash_after_first_checkpoint):
    from testbed.experiment.config import preset

    config = preset("quick").with_overrides(SETTINGS + ["iterations=120", "seeds=0", "algorithms=hsgd"])
    reference = run_experiment(config, reports_root=tmp_path / "ref", progress=False)

    run_dir = crash_after_first_checkpoint(config)  # killed right after its first checkpoint
    saved = load_checkpoint(checkpoint_path(run_dir, "hsgd", 0))
    assert saved["run"]["t"] == 40 and not (run_dir / "metrics.csv").exists()
    resume_experiment(run_dir, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(reference / "metrics.csv"), check_exact=True)


def test_a_corrupt_checkpoint_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(path)


# A child process that SIGKILLs itself in the middle of the nth atomic write of one file:
# the temporary file is complete but not yet renamed, exactly what a kill there leaves.
KILL_DURING_WRITE = """
import os, signal, sys
target, nth = sys.argv[1], int(sys.argv[2])
real, seen = os.replace, [0]
def replace(src, dst, *a, **k):
    if os.path.basename(str(dst)).endswith(target) and str(src).endswith(".tmp"):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from testbed.cli import main
sys.exit(main(sys.argv[3:]))
"""
SMALL = ["iterations=40", "eval_every=10", "seeds=0", "checkpoint_every=10", "divergence_every=2",
         "algorithms=local:2,local:4", "participation=0.75"]
OUTPUTS = ("metrics.csv", "events.csv", "schedule.json")


def _small_argv(reports):
    return ["experiment", "--topo", "star", "--reports", str(reports), "--no-progress",
            *[a for s in SMALL for a in ("--set", s)]]


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    from testbed.cli import main

    reports = tmp_path_factory.mktemp("ref")
    assert main(_small_argv(reports)) == 0
    return next((reports / "star").glob("2*"))


@pytest.mark.parametrize("target, nth", [("events.csv", 1), ("schedule.json", 2), ("metrics.csv", 1),
                                         (".pt", 2), ("report.html", 1), ("LATEST.txt", 1)])
def test_a_kill_during_each_kind_of_write_resumes_clean_and_identical(tmp_path, small_reference, target, nth):
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_WRITE, target, str(nth), *_small_argv(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = next((tmp_path / "star").glob("2*"))
    assert list(tmp_path.rglob(".*.tmp")), "the kill left the write's temporary file (the case under test)"
    resume_experiment(run_dir, progress=False)
    assert not list(tmp_path.rglob("*.tmp")), "a resume removes every stale temporary file"
    assert not list((tmp_path / "star").glob(".*.staging")), "no staged folder is left"
    for name in OUTPUTS:
        assert (run_dir / name).read_bytes() == (small_reference / name).read_bytes(), name
    assert (run_dir / "report.html").exists() and (tmp_path / "star" / "LATEST.txt").read_text().strip() == run_dir.name
