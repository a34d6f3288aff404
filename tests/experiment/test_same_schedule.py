"""Algorithms with one schedule on a topology are trained once and labelled as such."""

import json

import pandas as pd

import testbed.experiment.runner as runner
from testbed.experiment.algorithms import resolve_all
from testbed.experiment.config import ExperimentConfig
from testbed.net import load_topology

TINY = dict(iterations=20, eval_every=10, seeds=(0,), divergence_every=0, target_acc=0.3)


def test_star_marks_h_sgd_and_local_sgd_with_its_period_as_one_schedule():
    algorithms = resolve_all(("hsgd", "local:10", "local:5"), load_topology("star").tree)
    assert [a.label for a in algorithms] == ["H-SGD (10)", "local SGD P=10 (same schedule as H-SGD (10))", "local SGD P=5"]
    assert [a.same_schedule_as for a in algorithms] == [None, "hsgd", None]
    # on a two-level topology the same specs are different schedules
    assert not any(a.same_schedule_as for a in resolve_all(("hsgd", "local:5"), load_topology("paper2level").tree))


def test_the_twin_is_trained_once_and_both_labels_are_in_the_run(tmp_path, monkeypatch):
    calls = []
    train_one = runner.train_one
    monkeypatch.setattr(runner, "train_one", lambda setup, algorithm, *a, **k: calls.append(algorithm.spec) or train_one(setup, algorithm, *a, **k))
    run_dir = runner.run_experiment(ExperimentConfig(topology="star", **TINY), reports_root=tmp_path, progress=False)
    assert calls == ["hsgd"]  # star's 'auto' is H-SGD (10) and local SGD P=10: one schedule
    metrics, events = pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(run_dir / "events.csv")
    twin = "local SGD P=10 (same schedule as H-SGD (10))"
    assert list(metrics.algorithm.unique()) == ["H-SGD (10)", twin]
    a, b = (metrics[metrics.spec == s].drop(columns=["algorithm", "spec"]).reset_index(drop=True) for s in ("hsgd", "local:10"))
    pd.testing.assert_frame_equal(a, b)
    assert (events.algorithm == twin).sum() == (events.algorithm == "H-SGD (10)").sum() > 0
    info = json.loads((run_dir / "config.json").read_text())
    assert [x["same_schedule_as"] for x in info["algorithms"]] == [None, "hsgd"]
    assert twin in (run_dir / "report.html").read_text(encoding="utf-8")


def test_a_resumed_run_fills_the_twin_from_the_finished_pair_without_training(tmp_path, monkeypatch):
    run_dir = runner.run_experiment(ExperimentConfig(topology="star", **TINY), reports_root=tmp_path, progress=False)
    full = pd.read_csv(run_dir / "metrics.csv")
    full[full.spec == "hsgd"].to_csv(run_dir / "metrics.csv", index=False)  # killed before the twin was written

    def no_training(*args, **kwargs):
        raise AssertionError("the twin must not be trained")

    monkeypatch.setattr(runner, "train_one", no_training)
    runner.resume_experiment(run_dir, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "metrics.csv"), full)
