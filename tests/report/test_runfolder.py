import json

import pandas as pd
import pytest

from testbed.report import load_run


def test_load_run_reads_every_file(run_dir):
    run = load_run(run_dir)
    assert run.topology_name == "edge3level" and run.preset == "quick"
    assert [a.label for a in run.algorithms] == ["H-SGD (40,10,2)", "local SGD P=2", "local SGD P=40", "H-SGD (40,2) @ levels 0,2"]
    assert [a.is_local_sgd for a in run.algorithms] == [False, True, True, False]
    assert run.algorithm("H-SGD (40,10,2)").periods == ((40,), (10, 10), (2, 2, 2, 2))
    assert run.seeds == (0, 1) and run.target_acc == 0.5 and run.comm_columns == ("comm_cloud_s", "comm_regional_s", "comm_edge_s")
    assert run.git_revision == "0123456789abcdef" and run.model_bytes == 4936
    assert len(run.metrics) == 4 * 2 * 30
    assert set(run.curves("local SGD P=2")) == {0, 1}
    assert run.events is not None and run.topology is not None and run.topology.number_of_nodes() == 15
    assert {t.name: (t.kind, t.unit) for t in run.traces.values()} == {"lte-bw": ("bandwidth", "Mbit/s"), "wan": ("rtt", "ms")}
    assert run.notes == ()


def test_an_old_run_folder_loads_with_todays_columns(make_run):
    """Before tiers, comm_l<k>_s counted each algorithm's own levels: H-SGD (40,2) @ levels 0,2
    had its edge traffic in comm_l1_s. Loading maps it by the spec onto the topology's level 2."""
    old, new = load_run(make_run("old", legacy=True)), load_run(make_run("new"))
    assert old.comm_columns == ("comm_cloud_s", "comm_level_1_s", "comm_level_2_s")
    partial = old.metrics[old.metrics.algorithm == "H-SGD (40,2) @ levels 0,2"]
    expected = new.metrics[new.metrics.algorithm == "H-SGD (40,2) @ levels 0,2"]
    assert partial.comm_level_2_s.tolist() == expected.comm_edge_s.tolist()
    assert partial.comm_level_1_s.isna().all() and "worker_loss" in old.metrics and "train_loss" not in old.metrics
    events = old.events[old.events.algorithm == "H-SGD (40,2) @ levels 0,2"]
    assert sorted(set(zip(events.level, events.tier))) == [(0, "cloud"), (2, "level_2")]
    assert old.events.size_bytes.sum() == new.events.size_bytes.sum()  # aggregate rows no longer count twice
    assert old.events.round_bytes.sum() == new.events.round_bytes.sum()
    assert any("predates tier-named columns" in n for n in old.notes)


@pytest.mark.parametrize("name", ["config.json", "metrics.csv"])
def test_missing_required_file_names_it(run_dir, name):
    (run_dir / name).unlink()
    with pytest.raises(FileNotFoundError, match=f"{name} is missing; a run folder needs config.json and metrics.csv"):
        load_run(run_dir)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "nope")


def test_missing_metrics_column_is_named(run_dir):
    m = pd.read_csv(run_dir / "metrics.csv").drop(columns=["test_acc"])
    m.to_csv(run_dir / "metrics.csv", index=False)
    with pytest.raises(ValueError, match=r"metrics.csv: missing column\(s\) test_acc"):
        load_run(run_dir)


def test_non_numeric_cell_names_row_and_column(run_dir):
    m = pd.read_csv(run_dir / "metrics.csv")
    m["sim_time_s"] = m["sim_time_s"].astype(object)
    m.loc[3, "sim_time_s"] = "soon"
    m.to_csv(run_dir / "metrics.csv", index=False)
    with pytest.raises(ValueError, match=r"metrics.csv, row 5: column sim_time_s must be numeric, got 'soon'"):
        load_run(run_dir)


def test_bad_config_json(run_dir):
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: line 1, column 2: invalid JSON"):
        load_run(run_dir)


def test_missing_optional_files_become_notes(make_run):
    run = load_run(make_run(files=()))
    assert run.events is None and run.topology is None and run.traces == {}
    assert "events.csv not found in the run folder" in run.notes
    assert any(n.startswith("topology.json not found") for n in run.notes)
    assert any(n.startswith("traces/ not found") for n in run.notes)


def test_unreadable_optional_files_become_notes(run_dir):
    (run_dir / "topology.json").write_text(json.dumps({"nodes": "oops"}))
    (run_dir / "traces" / "broken.csv").write_text("t_s\n1\n")
    run = load_run(run_dir)
    assert run.topology is None
    assert any("topology.json is not networkx node-link JSON" in n for n in run.notes)
    assert any("traces/broken.csv: no value column" in n for n in run.notes)


def test_status_messages_and_label_mismatches_become_notes(run_dir, make_run):
    run = load_run(make_run("div", diverge=True))
    assert run.notes == ("H-SGD (40,2) @ levels 0,2, seed 1: diverged: loss is NaN at iteration 120",)
    config = json.loads((run_dir / "config.json").read_text())
    config["algorithms"][1]["label"] = "renamed"
    (run_dir / "config.json").write_text(json.dumps(config))
    run = load_run(run_dir)
    assert "config.json lists 'renamed' but metrics.csv has no rows for it" in run.notes
    assert "metrics.csv has rows for 'local SGD P=2', which config.json does not list" in run.notes
    assert "local SGD P=2" in [a.label for a in run.algorithms]


def test_latest_pointer_symlink_and_text_file(make_run):
    run_dir = make_run("20240501-120000-quick-abc123")
    (run_dir.parent / "latest").symlink_to(run_dir.name, target_is_directory=True)
    assert load_run(run_dir.parent / "latest").path == run_dir.resolve()
    (run_dir.parent / "latest").unlink()
    (run_dir.parent / "LATEST.txt").write_text(run_dir.name + "\n")
    assert load_run(run_dir.parent / "latest").path == run_dir.resolve()


def test_missing_accuracies_without_a_status_get_a_note(run_dir):
    m = pd.read_csv(run_dir / "metrics.csv")
    m["test_acc"] = m["test_acc"].astype(float)
    m.loc[[5, 7], "test_acc"] = float("nan")
    m.to_csv(run_dir / "metrics.csv", index=False)
    notes = [n for n in load_run(run_dir).notes if "no test accuracy" in n]
    first = m.loc[5]
    assert notes == [f"metrics.csv: 2 row(s) have no test accuracy and no status, first {first.algorithm}, "
                     f"seed {first.seed}, iteration {first.iteration}"]


def test_an_infinite_accuracy_is_refused_naming_the_row(run_dir):
    m = pd.read_csv(run_dir / "metrics.csv")
    m["test_acc"] = m["test_acc"].astype(object)
    m.loc[2, "test_acc"] = "inf"
    m.to_csv(run_dir / "metrics.csv", index=False)
    with pytest.raises(ValueError, match="metrics.csv, row 4: column test_acc is inf; values must be finite"):
        load_run(run_dir)
