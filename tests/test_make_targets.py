"""Every make target, run in a subprocess on a tiny budget, as a user would type it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = "iterations=20 eval_every=10 seeds=0 divergence_every=0 algorithms=hsgd,local:2"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args, timeout=300):
    env = {**os.environ, "PYTHON": sys.executable}
    # the installed .venv is reused: the stamp is newer than pyproject.toml after `make install`
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def installed():
    if not (REPO / ".venv" / ".installed").exists():
        pytest.skip("no .venv: run `make install` (make test does) first")


def test_help_is_the_default_target(installed):
    out = make()
    assert out.returncode == 0, out.stderr
    for target in ("install", "experiment", "experiment-dist", "report", "retime", "compare", "sweep", "test", "test-slow",
                   "bench", "peers", "browser", "clean", "netval"):
        assert f"make {target}" in out.stdout


def test_experiment_report_and_retime(installed, tmp_path):
    out = make("experiment", "TOPO=star", f"REPORTS={tmp_path}", f"SET={TINY}")
    assert out.returncode == 0, out.stderr[-2000:]
    report = Path(next(line for line in out.stdout.splitlines() if line.startswith("report: ")).removeprefix("report: "))
    assert report.is_file() and report.parent.parent == tmp_path / "star"

    (report).unlink()
    out = make("report", "TOPO=star", f"REPORTS={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert report.is_file()

    trace = tmp_path / "far.csv"
    trace.write_text("t_s,rtt_ms\n0,120\n1,130\n2,125\n")
    out = make("retime", f"RUN={report.parent}", f"TRACE=synth_home_access={trace}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "report:" in out.stdout and len(list((tmp_path / "star").glob("*-retime-*"))) == 1

    out = make("retime", f"RUN={report.parent}", "SET=tcp_model=fluid tcp_idle=keep")  # network keys only
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(list((tmp_path / "star").glob("*-retime-*"))) == 2
    runs = " ".join(str(p) for p in [report.parent, *sorted((tmp_path / "star").glob("*-retime-*"))])
    out = make("compare", f"RUNS={runs}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip().splitlines()[-1]).parent == tmp_path / "compare"
    out = make("retime", f"RUN={report.parent}", "SET=lr=0.5")
    assert out.returncode != 0 and "--set lr: a re-time changes only how the network prices the run" in out.stderr


def test_experiment_with_a_bad_key_exits_2_naming_it(installed, tmp_path):
    out = make("experiment", "TOPO=star", f"REPORTS={tmp_path}", "SET=iteration=5")
    assert out.returncode != 0
    assert "--set iteration: unknown key" in out.stderr
    assert "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())


def test_bench_runs_on_a_tiny_budget(installed):
    out = make("bench", "BENCH_ARGS=--quick", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "batched/loop" in out.stdout and "simulate/engine" in out.stdout
    assert "2x1 samples/s" in out.stdout and "bytes/min" in out.stdout


def test_experiment_dist_trains_on_two_processes(installed, tmp_path):
    out = make("experiment-dist", "NPROC=2", "TOPO=star", f"REPORTS={tmp_path}", f"SET={TINY} device=cpu")
    assert out.returncode == 0, out.stderr[-2000:]
    reports = [line for line in out.stdout.splitlines() if line.startswith("report: ")]
    assert len(reports) == 1 and Path(reports[0].removeprefix("report: ")).is_file()  # rank 0 alone writes and speaks


def test_peers_target_installs_flower_in_its_own_venv(installed):
    out = make("-n", "peers")
    assert out.returncode == 0 and "bench/.peers-venv/bin/pip install --quiet 'flwr[simulation]'" in out.stdout


def test_test_target_is_wired_to_pytest(installed):
    # running the suite from inside itself would recurse; check what it would run
    out = make("-n", "test")
    assert out.returncode == 0 and "pytest" in out.stdout


def test_netval_is_wired_and_lists_its_grid(installed):
    # the grid itself needs ns-3 (a 0.5 GB wheel) and ~20 min of CPU: check what it would run
    out = make("-n", "netval")
    assert out.returncode == 0 and "ns3==3.44.post0" in out.stdout and "bench/netval/ns3run.py" in out.stdout
    listed = subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(REPO / "bench" / "netval" / "ns3run.py"),
                             "--list", "--only", "single"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert sum(line.startswith("single/") for line in listed.stdout.splitlines()) == 36
