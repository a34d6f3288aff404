"""deadline_s through `testbed experiment`: recorded drops, resume, determinism, the report, retime's refusal."""

import dataclasses
import json

import pandas as pd
import pytest

from testbed.experiment.checkpoint import checkpoint_path, load_checkpoint
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.retime import retime
from testbed.experiment.runner import resume_experiment, run_experiment

# local SGD's first rounds on edge3level take ~1-2 s (TCP slow start on the WAN): a 1 s deadline drops some
DEADLINE = ExperimentConfig(algorithms=("local:4",), iterations=24, eval_every=8, seeds=(0,), divergence_every=0,
                            checkpoint_every=8, participation=0.75, momentum=0.5, deadline_s=(1.0,), device="cpu")


def _pairs(run_dir):
    return json.loads((run_dir / "schedule.json").read_text())["pairs"]


@pytest.fixture(scope="module")
def deadline_run(tmp_path_factory):
    return run_experiment(DEADLINE, reports_root=tmp_path_factory.mktemp("deadline"), progress=False)


def test_drops_are_recorded_and_reported(deadline_run):
    (pair,) = _pairs(deadline_run)
    schedule = pair["schedule"]
    assert schedule["timing"] == "deadline_s" and schedule["drops"]
    for drop in schedule["drops"]:
        start = (drop["t"] - 1) // schedule["round_length"] * schedule["round_length"] + 1
        drawn = next(r["participants"] for r in schedule["rounds"] if r["start"] == start)
        assert drop["worker"] in drawn and drop["server"] == 0 and drop["late_s"] > 0
    html = (deadline_run / "report.html").read_text()
    assert "Deadlines: who was dropped" in html and "rounds with drops" in html


def test_a_deadline_run_is_deterministic(deadline_run, tmp_path):
    again = run_experiment(DEADLINE, reports_root=tmp_path, progress=False)
    for name in ("metrics.csv", "events.csv", "schedule.json"):
        assert (again / name).read_bytes() == (deadline_run / name).read_bytes(), name


def test_resume_with_a_deadline_equals_an_uninterrupted_run(deadline_run, tmp_path, monkeypatch):
    from testbed.experiment import runner

    real = runner.Checkpointer.after_iteration

    def crash_after_save(self, t):
        real(self, t)
        if self.last_t == t and t > 8:  # the second checkpoint: drops before it are in the record
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.Checkpointer, "after_iteration", crash_after_save)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(DEADLINE, reports_root=tmp_path, progress=False)
    monkeypatch.undo()
    run_dir = next((tmp_path / "edge3level").glob("2*"))
    saved = load_checkpoint(checkpoint_path(run_dir, "local:4", 0))
    assert saved["run"]["t"] == 16 and saved["callbacks"]["timer"]["drops"]
    resume_experiment(run_dir, progress=False)
    for name in ("metrics.csv", "events.csv", "schedule.json"):
        assert (run_dir / name).read_bytes() == (deadline_run / name).read_bytes(), name


def test_retime_of_a_deadline_run_is_refused(deadline_run):
    with pytest.raises(ValueError, match="was trained with deadline_s = \\(1.0,\\): the network decided who was averaged"):
        retime(deadline_run)


def test_a_generous_deadline_changes_nothing(tmp_path):
    plain = run_experiment(dataclasses.replace(DEADLINE, deadline_s=()), reports_root=tmp_path / "a", progress=False)
    generous = run_experiment(dataclasses.replace(DEADLINE, deadline_s=(1e6,)), reports_root=tmp_path / "b", progress=False)
    for name in ("metrics.csv", "events.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(generous / name), pd.read_csv(plain / name), check_exact=True)
    assert _pairs(generous)[0]["schedule"]["drops"] == []


def test_too_many_deadlines_are_refused(tmp_path):
    with pytest.raises(ValueError, match="deadline_s: 4 deadlines but .* has 3 server level"):
        run_experiment(dataclasses.replace(DEADLINE, deadline_s=(1.0,) * 4), reports_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())
