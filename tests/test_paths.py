"""Every name that becomes a path stays inside its folder: topology names (run folders,
``latest``, ``LATEST.txt``, retime output), tags, trace names (run folder copies, ``trace
import`` output), algorithm specs (checkpoints)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testbed.cli import main
from testbed.experiment.checkpoint import checkpoint_path
from testbed.experiment.config import ExperimentConfig
from testbed.paths import check_inside, inside, safe_name

HOSTILE = ["..", ".", "../../x", "/abs/x", "a/../../b", "..\\..\\x", ".hidden", "", "²", "x" * 300, "a\nb", "~"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_safe_name_is_one_plain_visible_component(name):
    text = safe_name(name)
    assert text and len(text) <= 80
    assert "/" not in text and "\\" not in text and ".." not in text and not text.startswith(".")
    assert text.isascii() and text.isprintable()
    assert safe_name(text) == text  # idempotent: sanitising twice names the same file


def test_plain_names_are_kept():
    assert safe_name("edge3level") == "edge3level"
    assert safe_name("hsgd:50,5") == "hsgd_50_5"
    assert safe_name("us-east-1__eu.west") == "us-east-1__eu.west"


@pytest.mark.parametrize("name", HOSTILE)
def test_inside_never_leaves_its_folder(tmp_path, name):
    path = inside(tmp_path / "out", name, name)
    assert (tmp_path / "out").resolve() in path.resolve().parents


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        inside(tmp_path / "out", "link", "file.csv")
    with pytest.raises(ValueError, match="outside"):
        check_inside(tmp_path / "out", tmp_path / "out" / ".." / "x")


@pytest.mark.parametrize("spec", ["../../x", "/abs/x", "hsgd:50,5"])
def test_checkpoints_stay_in_the_run_folder(tmp_path, spec):
    path = checkpoint_path(tmp_path / "run", spec, 0)
    assert path.parent == tmp_path / "run" / "checkpoints"


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_hostile_topology_and_trace_names_stay_under_reports(tmp_path, monkeypatch):
    """A topology named '..' whose link replays a trace named '../../up': the run folder,
    latest, LATEST.txt, the trace copy and a retime all land under --reports."""
    monkeypatch.chdir(tmp_path)
    trace = tmp_path / "in" / "up.csv"
    trace.parent.mkdir()
    trace.write_text("t_s,rtt_ms\n0,10\n1,12\n")
    graph = {"directed": False, "multigraph": False, "graph": {"name": ".."},
             "nodes": [{"id": "cloud", "role": "cloud", "period": 2}, {"id": "w0", "role": "worker", "compute_ms": 1.0}],
             "edges": [{"source": "cloud", "target": "w0", "rtt_trace": "../../up", "bandwidth_mbps": 10.0}]}
    topo = tmp_path / "in" / "dots.json"
    topo.write_text(json.dumps(graph))
    reports = tmp_path / "a" / "b" / "reports"
    before = _files(tmp_path)
    code = main(["experiment", "--topo", str(topo), "--reports", str(reports), "--no-progress",
                 "--set", "iterations=4", "--set", "seeds=0", "--set", "algorithms=local:2",
                 "--set", "divergence_every=0", "--set", f"traces=../../up={trace}"])
    assert code == 0
    new = _files(tmp_path) - before
    assert new and all(reports in p.parents or p in reports.parents or p == reports for p in new), sorted(new)
    topo_dir = reports / "_"
    run = next(p for p in topo_dir.iterdir() if p.name[0].isdigit())
    assert os.readlink(topo_dir / "latest") == run.name
    assert (topo_dir / "LATEST.txt").read_text() == run.name + "\n"
    assert [p.name for p in (run / "traces").iterdir()] == ["____up.csv"]

    before = _files(tmp_path)
    assert main(["retime", str(run)]) == 0
    new = _files(tmp_path) - before
    assert new and all(topo_dir in p.parents for p in new), sorted(new)


def test_run_experiment_sanitises_its_tag(tmp_path):
    from testbed.experiment.runner import run_experiment

    config = ExperimentConfig(topology="star", iterations=2, seeds=(0,), algorithms=("local:2",), divergence_every=0)
    run = run_experiment(config, reports_root=tmp_path / "r", tag="../../../evil", progress=False)
    assert run.parent == tmp_path / "r" / "star" and "evil" in run.name and ".." not in run.name


@pytest.mark.parametrize("fmt, name, text", [
    ("matrix", "m.json", json.dumps({"data": {"../../x": {"/abs/y": 12.0}}})),
    ("ping-table", "p.csv", "source,destination,timestamp,min,avg,max,mdev\n/abs/x,../../y,1,1,2,3,0.1\n"),
])
def test_trace_import_names_stay_in_out_dir(tmp_path, monkeypatch, fmt, name, text):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / name
    src.write_text(text)
    out = tmp_path / "d1" / "d2" / "out"
    before = _files(tmp_path)
    assert main(["trace", "import", str(src), "--out-dir", str(out), "--format", fmt, "--samples", "5"]) == 0
    new = _files(tmp_path) - before
    assert {p.name for p in new if p.parent == out} >= {"summary.json"}
    assert all(out in p.parents or p in out.parents or p == out for p in new), sorted(new)
    assert len([p for p in out.iterdir() if p.suffix == ".csv"]) == 1
