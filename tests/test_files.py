import os

import numpy as np
import pandas as pd
import pytest

from testbed.files import GrowingCsv, atomic_write_csv, atomic_write_text


def test_atomic_write_replaces_whole_file_and_cleans_up_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    atomic_write_text(target, "old")
    assert target.read_text() == "old" and oct(target.stat().st_mode & 0o777) == "0o644"

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_growing_csv_is_the_csv_of_its_frames_concatenated(tmp_path):
    frames = [pd.DataFrame({"algorithm": [name] * k, "t": np.arange(k), "end_s": np.linspace(0, 1 / 3, k), "peer": ""})
              for name, k in (("a", 3), ("b", 0), ("c", 4))]
    log = GrowingCsv(tmp_path / "events.csv")
    for i, frame in enumerate(frames):
        log.add(frame)
        log.write()
        atomic_write_csv(tmp_path / "whole.csv", pd.concat(frames[: i + 1], ignore_index=True))
        assert (tmp_path / "events.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    with pytest.raises(ValueError, match="events.csv: columns \\['t', 'algorithm'\\] differ"):
        log.add(pd.DataFrame({"t": [1], "algorithm": ["d"]}))


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_writer_removes_its_own_stale_temporaries_only(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".metrics.csv.{dead}.abc123.tmp"
    live = tmp_path / f".metrics.csv.{os.getppid()}.abc123.tmp"  # a running process is still writing it
    other = tmp_path / f".metrics.csv.old.{dead}.x.tmp"  # another file's temporary
    for p in (stale, live, other):
        p.write_text("partial")
    atomic_write_text(tmp_path / "metrics.csv", "a,b\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["metrics.csv", live.name, other.name])


def test_remove_temporaries_clears_a_folder_tree(tmp_path):
    from testbed.files import remove_temporaries

    (tmp_path / "checkpoints").mkdir()
    junk = [tmp_path / ".report.html.1.x.tmp", tmp_path / "checkpoints" / ".hsgd-seed0.pt.2.y.tmp"]
    for p in junk:
        p.write_text("x")
    (tmp_path / "keep.csv").write_text("x")
    assert sorted(remove_temporaries(tmp_path)) == sorted(junk)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["keep.csv"]


def test_latest_and_latest_txt_name_the_same_run_after_concurrent_updates(tmp_path):
    import threading

    from testbed.experiment.rundir import point_latest

    runs = [tmp_path / f"run{k}" for k in range(8)]
    for run in runs:
        run.mkdir()
    start = threading.Barrier(len(runs))

    def point(run):
        start.wait()
        for _ in range(20):
            point_latest(run)

    threads = [threading.Thread(target=point, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (tmp_path / "LATEST.txt").read_text().strip() == os.readlink(tmp_path / "latest")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_run_folder_is_staged_hidden_then_published_or_discarded(tmp_path):
    from testbed.experiment import rundir

    staged = rundir.new_run_dir(tmp_path, "star", "quick", {"a": 1})
    assert staged.name.startswith(".") and rundir.is_staged(staged)
    (staged / "config.json").write_text("{}")
    final = rundir.publish(staged)
    assert not staged.exists() and (final / "config.json").exists() and not final.name.startswith(".")
    rundir.discard(final)  # a published folder is never removed
    assert final.exists()

    again = rundir.new_run_dir(tmp_path, "star", "quick", {"a": 1})
    (again / "x").write_text("x")
    second = rundir.publish(again)  # in the same second it gets '-1': never the first run's folder
    assert second != final and second.parent == final.parent and (second / "x").exists()
    refused = rundir.new_run_dir(tmp_path, "other", "quick", {})
    rundir.discard(refused)
    assert not (tmp_path / "other").exists(), "a refused run leaves not even its topology folder"

    dead = tmp_path / "star" / f".20200101-000000-quick-abcdef.{_dead_pid()}.staging"
    dead.mkdir()
    rundir.new_run_dir(tmp_path, "star", "quick", {})
    assert not dead.exists(), "a killed process's staged folder is removed by the next run"


@pytest.mark.parametrize("errno_code, exit_code", [(28, 1), (30, 1), (13, 2)])  # ENOSPC, EROFS, EACCES
def test_a_refused_write_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys, errno_code, exit_code):
    """Disk full, read-only or forbidden while writing a run folder: one line, no traceback."""
    from testbed import files
    from testbed.cli import main

    def refuse(fd):
        raise OSError(errno_code, os.strerror(errno_code), "metrics.csv")

    monkeypatch.setattr(files.os, "fsync", refuse)
    code = main(["experiment", "--topo", "star", "--reports", str(tmp_path), "--no-progress", "--set", "iterations=2",
                 "--set", "seeds=0", "--set", "algorithms=local:2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == exit_code and err[-1] == f"testbed experiment: error: metrics.csv: {os.strerror(errno_code)}"
    assert not list(tmp_path.rglob("*.tmp")), "the failed write removed its temporary file"
