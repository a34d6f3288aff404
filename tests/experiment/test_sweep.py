"""`testbed sweep`: grids, refusals, a sweep killed and resumed, and submitit's submission path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from testbed.cli import main
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.grid import grid_points, parse_grid_args, read_grid_file
from testbed.experiment.sweep import finished_run, plan, run_point, write_plan

# star: ten workers under the cloud; two local SGD periods, a few seconds per point
TINY = ["iterations=20", "eval_every=10", "seeds=0", "divergence_every=0", "algorithms=local:2,local:4", "target_acc=0.3"]
GRID = ["lr=0.05|0.1", "participation=1|0.5", "weighting=uniform|samples"]


def sweep_argv(reports: Path, grid=GRID, *extra: str) -> list[str]:
    argv = ["sweep", "--topo", "star", "--reports", str(reports)]
    argv += [a for s in TINY for a in ("--set", s)] + [a for g in grid for a in ("--grid", g)]
    return argv + list(extra)


def test_grid_values_keep_their_commas_and_points_are_named_in_order(tmp_path):
    base = ExperimentConfig(topology="star")
    axes = parse_grid_args(["algorithms=local:5,hsgd:50,5|local:10", "lr=0.1|0.2"], base)
    assert axes[0].values == (("local:5", "hsgd:50,5"), ("local:10",))
    points = grid_points(base, axes)
    assert [p.name for p in points] == ["0-algorithms_local_5_hsgd_50_5-lr_0.1", "1-algorithms_local_5_hsgd_50_5-lr_0.2",
                                        "2-algorithms_local_10-lr_0.1", "3-algorithms_local_10-lr_0.2"]
    assert points[1].values == (("algorithms", "local:5,hsgd:50,5"), ("lr", "0.2"))
    assert points[2].config.algorithms == ("local:10",) and points[2].config.lr == 0.1

    grid_file = tmp_path / "grid.toml"
    grid_file.write_text('seeds = [0, 1]\nalgorithms = ["local:2,local:4", ["local:8"]]\nmomentum = [0, 0.5]\n')
    axes = read_grid_file(grid_file, base)
    assert [a.values for a in axes] == [((0,), (1,)), (("local:2", "local:4"), ("local:8",)), (0.0, 0.5)]
    assert len(grid_points(base, axes)) == 8


@pytest.mark.parametrize("argv, message", [
    (["--grid", "lrr=0.1|0.2"], "--grid lrr: unknown key; allowed: "),
    (["--grid", "lr=0.1|abc"], "--grid lr=abc: expected a finite float"),
    (["--grid", "lr=0.1|-1"], "--grid lr=-1: must be > 0, got -1.0"),
    ([], "sweep: empty grid; give --grid KEY=V1|V2"),
    (["--grid", "lr="], "--grid lr: no values"),
    (["--grid", "lr=0.1||0.2"], "--grid lr=0.1||0.2: an empty value between '|'"),
    (["--grid", "lr=0.1|0.10"], "--grid lr: the value 0.1 is given twice"),
    (["--grid", "lr=0.1"], "the grid spans 1 point; a sweep needs two or more"),
    (["--grid", "lr=0.1|0.2", "--grid", "lr=0.3|0.4"], "--grid lr: the key is also given as --grid lr"),
    (["--grid", "iterations=5|6", "--set", "iterations=4"], "--grid iterations: the key is also given by --set"),
    (["--grid", "dataset=synthetic|cifar10"], "--grid dataset=cifar10: partition: 'natural' splits by writer"),
    (["--grid", "algorithms=local:2|hsgd:3,3"], "sweep: point 1-algorithms_hsgd_3_3: --grid algorithms: algorithm 'hsgd:3,3'"),
    (["--grid", "lr=0.1|0.2", "--jobs", "0"], "--jobs: must be >= 1, got 0"),
    (["--grid", "lr=0.1|0.2", "--slurm", "timeout_min=5"], "--slurm applies to --executor slurm or submitit-local"),
    (["--grid", "lr=0.1|0.2", "--executor", "slurm", "--slurm", "foo=1"], "--slurm foo: unknown parameter"),
    (["--grid", "lr=0.1|0.2", "--executor", "slurm", "--slurm", "timeout_min=x"], "--slurm timeout_min=x: expected int"),
    (["--grid", "lr=0.1|0.2", "--executor", "slurm", "--jobs", "2"], "--jobs applies to --executor local"),
    (["--grid", "lr=0.1|0.2", "--executor", "submitit-local", "--slurm", "nodes=2"],
     "--slurm: submitit refuses the parameters: LocalExecutor can use only one node"),
    (["--grid", "lr=0.1|0.2", "--executor", "submitit-local", "--slurm", "local_foo=1"],
     "--slurm: submitit refuses the parameters: Unknown argument 'foo'"),
])
def test_bad_sweeps_are_refused_in_one_line_before_anything_is_written(tmp_path, capsys, argv, message):
    if "submitit-local" in argv:
        pytest.importorskip("submitit")
    reports = tmp_path / "reports"
    argv = ["sweep", "--topo", "star", "--reports", str(reports)] + argv
    if "--set" not in argv:
        argv += ["--set", "iterations=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("testbed sweep: error: ") and message in err, err
    assert not reports.exists()


def test_a_topology_in_the_grid_is_checked_before_anything_runs(tmp_path, capsys):
    assert main(["sweep", "--reports", str(tmp_path / "r"), "--grid", "topology=star|nosuch"]) == 2
    assert "sweep: point 1-topology_nosuch: topology 'nosuch': no such file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_another_grid_in_the_same_folder_is_refused(tmp_path, capsys):
    base = ExperimentConfig(topology="star")
    write_plan(plan(base, parse_grid_args(["lr=0.1|0.2"], base), "quick", tmp_path, tmp_path / "sweep"))
    before = sorted(p for p in (tmp_path / "sweep").rglob("*"))
    assert main(sweep_argv(tmp_path, ["lr=0.1|0.3"], "--out", str(tmp_path / "sweep"))) == 2
    assert "sweep.json: another sweep (its base differs)" in capsys.readouterr().err
    assert sorted(p for p in (tmp_path / "sweep").rglob("*")) == before


def test_an_interrupted_point_resumes_in_its_own_run_folder(tmp_path, monkeypatch):
    from testbed.experiment import runner

    base = ExperimentConfig(topology="star").with_overrides(TINY + ["iterations=40", "checkpoint_every=10", "algorithms=local:2"])
    sweep = plan(base, parse_grid_args(["lr=0.05|0.1"], base), "quick", tmp_path, tmp_path / "sweep")
    write_plan(sweep)
    reference = run_point(sweep.point_dir(sweep.points[1]))
    point_dir = sweep.point_dir(sweep.points[0])

    real = runner.Checkpointer.after_iteration

    def crash_after_save(self, t):  # a job killed right after its first checkpoint
        real(self, t)
        if self.last_t == t and t > 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.Checkpointer, "after_iteration", crash_after_save)
    with pytest.raises(KeyboardInterrupt):
        run_point(point_dir)
    monkeypatch.undo()
    (interrupted,) = point_dir.glob("star/2*")
    assert finished_run(point_dir) is None and list(interrupted.glob("checkpoints/*.pt"))
    assert run_point(point_dir) == interrupted and finished_run(point_dir) == interrupted
    fresh = runner.run_experiment(sweep.points[0].config, reports_root=tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(interrupted / "metrics.csv"), pd.read_csv(fresh / "metrics.csv"))
    assert run_point(point_dir) == interrupted and finished_run(sweep.point_dir(sweep.points[1])) == reference


def test_a_failing_point_is_named_with_its_log_and_no_report_is_written(tmp_path):
    missing = tmp_path / "missing.npz"  # found missing only when the point loads its data
    argv = sweep_argv(tmp_path, ["lr=0.05|0.1"], "--set", "dataset=npz", "--set", f"data_root={missing}",
                      "--set", "partition=iid", "--out", str(tmp_path / "sweep"))
    out = subprocess.run([sys.executable, "-m", "testbed", *argv], capture_output=True, text=True, timeout=600)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("testbed sweep: error: 2 of 2 points failed; 0-lr_0.05: error: dataset 'npz': file ")
    assert f"(log: {tmp_path / 'sweep' / 'points' / '0-lr_0.05' / 'point.log'})" in last and "Traceback" not in last
    assert not (tmp_path / "sweep" / "compare.html").exists() and not (tmp_path / "sweep" / "time_to_target.csv").exists()


def _point_processes(folder: Path) -> list[str]:
    """Processes whose command line names the sweep folder (Linux's /proc; none elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        if str(folder) in text:
            found.append(text)
    return found


def _reports(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("points/*/star/2*/report.html")}


def test_a_killed_sweep_resumes_skipping_finished_points_and_ends_in_one_report_and_table(tmp_path):
    """2 x 2 x 2 points, two at a time; SIGKILL after some finished, then the same command again."""
    argv = sweep_argv(tmp_path, GRID, "--jobs", "2", "--out", str(tmp_path / "sweep"))
    proc = subprocess.Popen([sys.executable, "-m", "testbed", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "sweep"
    deadline = time.monotonic() + 300
    while len(_reports(folder)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 120  # a point's process notices within a second, once it has started
    while _point_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _point_processes(folder), "the points' processes end with the sweep that started them"
    finished = _reports(folder)
    assert 2 <= len(finished) < 8 and not (folder / "compare.html").exists()

    resumed = subprocess.run([sys.executable, "-m", "testbed", *argv], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"report: {folder / 'compare.html'}" in resumed.stdout
    assert f"({8} points, {len(finished)} finished)" in resumed.stderr
    after = _reports(folder)
    assert len(after) == 8 and all(after[p] == finished[p] for p in finished), "finished points are not run again"
    assert all(len(list(p.glob("star/2*"))) == 1 for p in (folder / "points").iterdir()), "one run folder per point"

    table = pd.read_csv(folder / "time_to_target.csv")
    assert list(table.columns[:4]) == ["point", "lr", "participation", "weighting"]
    assert len(table) == 8 * 2 and set(table.algorithm) == {"local SGD P=2", "local SGD P=4"}
    assert sorted(set(zip(table.lr, table.participation, table.weighting))) == sorted(
        (lr, p, w) for lr in (0.05, 0.1) for p in (0.5, 1.0) for w in ("samples", "uniform"))
    assert table.time_to_target_s.notna().any() and (table.n_seeds == 1).all()
    for row in table.itertuples():  # each row is that point's own run: its config holds the grid values
        config = json.loads((folder / row.run_dir / "config.json").read_text())["config"]
        assert (config["lr"], config["participation"], config["weighting"]) == (row.lr, row.participation, row.weighting)
    page = (folder / "compare.html").read_text()
    assert all(p.name in page for p in (folder / "points").iterdir())


def test_submitit_local_executor_runs_every_point_through_the_submission_path(tmp_path):
    pytest.importorskip("submitit")
    argv = sweep_argv(tmp_path, ["lr=0.05|0.1"], "--executor", "submitit-local", "--out", str(tmp_path / "sweep"),
                      "--set", "budget_s=1")  # simulated seconds: the table gains the accuracy at the budget
    out = subprocess.run([sys.executable, "-m", "testbed", *argv], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "sweep"
    assert "2 job(s) submitted to local" in out.stderr
    assert len(list((folder / "submitit").glob("*_result.pkl"))) == 2, "each point ran as a submitit job"
    table = pd.read_csv(folder / "time_to_target.csv")
    assert list(table.lr) == [0.05, 0.05, 0.1, 0.1] and (folder / "compare.html").is_file()
    assert table.acc_at_budget.notna().all() and (table.end_time_s < 1.5).all()
