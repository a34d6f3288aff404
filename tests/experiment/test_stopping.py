"""Runs that end before their iteration count: a simulated time budget, a target accuracy."""

import io
import re

import numpy as np
import pandas as pd
import pytest
import torch

import testbed
from testbed.experiment.api import price_on_network
from testbed.experiment.checkpoint import Checkpointer, checkpoint_path, load_checkpoint
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.progress import Progress
from testbed.experiment.runner import resume_experiment, run_experiment
from testbed.experiment.stopping import TimeBudget, check_stop_at_target, short_of_budget
from testbed.report import build_report
from testbed.report.tables import SeedEnd, budget_text
from testbed.simulate import Callback

BUDGET_S = 3.0
# local SGD P=2 pays a cloud round every other iteration, P=40 one per 40: ~10x apart in iterations per second
UNEVEN = ("local:2", "hsgd", "local:40")


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    """Every evaluation point an iteration, so each stop can be checked against the one before."""
    config = ExperimentConfig(algorithms=UNEVEN, iterations=5000, eval_every=1, seeds=(0, 1), divergence_every=0,
                              target_acc=0.3, budget_s=BUDGET_S, checkpoint_every=0)
    return run_experiment(config, reports_root=tmp_path_factory.mktemp("budget"), progress=False)


def test_budget_runs_end_within_one_iteration_of_the_budget_for_every_algorithm(budget_run):
    metrics = pd.read_csv(budget_run / "metrics.csv")
    last_iterations = {}
    for (spec, seed), rows in metrics.groupby(["spec", "seed"]):
        before, last = rows.iloc[-2], rows.iloc[-1]
        assert last["stop"] == "budget" and rows["stop"].iloc[:-1].isna().all()
        assert before["iteration"] == last["iteration"] - 1
        assert before["sim_time_s"] < BUDGET_S <= last["sim_time_s"], (spec, seed)
        last_iterations[spec, seed] = last["iteration"]
    for seed in (0, 1):  # very different round costs, the same end in simulated time
        assert last_iterations["local:40", seed] > 5 * last_iterations["local:2", seed]
    events = pd.read_csv(budget_run / "events.csv")
    ends = metrics.groupby(["algorithm", "seed"])["sim_time_s"].max()
    assert (events.groupby(["algorithm", "seed"])["end_s"].max() <= ends + 1e-9).all()


def test_the_report_shows_accuracy_at_the_budget_with_its_seed_spread(budget_run):
    metrics = pd.read_csv(budget_run / "metrics.csv")
    html = build_report(budget_run).read_text(encoding="utf-8")
    assert "acc at budget 3 s: median (min–max)" in html
    assert '"text":"budget 3 s"' in html  # the line on the accuracy-time figure where every run stopped
    for spec in UNEVEN:
        accs = metrics[metrics.spec == spec].groupby("seed")["test_acc"].last()
        assert budget_text([SeedEnd(s, a, BUDGET_S) for s, a in accs.items()], BUDGET_S) in html


def test_accuracy_at_the_budget_text_names_short_and_diverged_seeds():
    assert budget_text([SeedEnd(0, 0.8, 3.0), SeedEnd(1, 0.9, 3.1), SeedEnd(2, 0.85, 3.0)], 3.0) == "0.850 (0.800–0.900)"
    assert budget_text([SeedEnd(0, 0.8, 3.0), SeedEnd(1, 0.9, 1.25)], 3.0) == "0.850 (0.800–0.900), 1 of 2 seeds ended at 1.25 s"
    assert budget_text([SeedEnd(0, 0.8, 3.0), SeedEnd(1, None, 1.0)], 3.0) == "0.800, 1 of 2 seeds diverged"
    assert budget_text([SeedEnd(0, None, 1.0)], 3.0) == "diverged"


def test_stop_at_target_stops_at_the_first_evaluation_at_or_above_it(tiny_config, tmp_path):
    free = run_experiment(tiny_config.with_overrides(["iterations=200", "algorithms=local:2"]), reports_root=tmp_path / "a",
                          progress=False)
    reference = pd.read_csv(free / "metrics.csv")
    # reached at the 4th evaluation or sooner, not at the first (below the CSV's rounding of test_acc)
    target = float(reference["test_acc"].iloc[3]) - 1e-9
    first = int(np.argmax(reference["test_acc"].to_numpy() >= target))
    assert 0 < first < len(reference) - 1
    stopped = run_experiment(tiny_config.with_overrides(["iterations=200", "algorithms=local:2", f"target_acc={target!r}",
                                                         "stop_at_target=true"]), reports_root=tmp_path / "b", progress=False)
    rows = pd.read_csv(stopped / "metrics.csv")
    assert list(rows["stop"].fillna("")) == [""] * first + ["target"]
    pd.testing.assert_frame_equal(rows.drop(columns="stop"), reference.iloc[:first + 1], check_exact=True)


def test_resume_with_a_budget_and_a_target_equals_an_uninterrupted_run(tmp_path, crash_after_first_checkpoint):
    config = ExperimentConfig(algorithms=("hsgd", "local:4"), iterations=5000, eval_every=10, seeds=(0,), divergence_every=2,
                              target_acc=0.8, stop_at_target=True, budget_s=20.0, checkpoint_every=40,
                              participation=0.75)
    reference = run_experiment(config, reports_root=tmp_path / "ref", progress=False)
    assert set(pd.read_csv(reference / "metrics.csv")["stop"].dropna()) == {"budget", "target"}
    # killed right after the first checkpoint of the second algorithm
    run_dir = crash_after_first_checkpoint(config, part="local")
    assert load_checkpoint(checkpoint_path(run_dir, "local:4", 0))["run"]["t"] == 40
    resume_experiment(run_dir, progress=False)
    for name in ("metrics.csv", "events.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(run_dir / name), pd.read_csv(reference / name), check_exact=True)


def test_a_budget_run_is_deterministic_by_seed(tiny_config, tmp_path):
    config = tiny_config.with_overrides(["iterations=5000", f"budget_s={BUDGET_S}", "stop_at_target=true",
                                         "target_acc=0.52", "divergence_every=1"])
    a = run_experiment(config, reports_root=tmp_path / "a", progress=False)
    b = run_experiment(config, reports_root=tmp_path / "b", progress=False)
    for name in ("metrics.csv", "events.csv", "schedule.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert set(pd.read_csv(a / "metrics.csv")["stop"].dropna()) == {"budget", "target"}


def worker_pairs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(24, 4, generator=g) + j % 3, torch.randint(0, 3, (24,), generator=g)) for j in range(n)]


class StopAt(Callback):
    def __init__(self, t):
        self.t, self.seen = t, []

    def on_start(self, run):
        self.run = run

    def on_step(self, step):
        self.seen.append(step.t)
        if step.t == self.t:
            self.run.stop("test")


def test_a_stopped_run_evaluates_its_last_iteration_and_is_not_checkpointed_there(tmp_path):
    stop = StopAt(8)
    path = tmp_path / "c.pt"
    result = testbed.simulate("mlp", worker_pairs(4), tree=[[0, 1], [2, 3]], periods=[4, 2], iterations=20, lr=0.05, batch_size=8,
                              eval_every=5, callbacks=[stop, Checkpointer(path, 1, {})], device="cpu",
                              eval_data=worker_pairs(1, seed=1)[0])
    assert stop.seen == list(range(1, 9))
    assert list(result.metrics["iteration"]) == [5, 8] and result.metrics["stop"].iloc[-1] == "test"
    assert result.extras["stop"] == "test"
    assert int(load_checkpoint(path)["run"]["t"]) == 4  # the round boundary at 8 ended the run: not saved


def test_the_library_takes_the_budget_as_a_callback():
    from testbed.models import build_model

    pricing = price_on_network("edge3level", "local:2", build_model("mlp", num_classes=3, input_shape=(4,)), 5.0, seed=0)
    data = worker_pairs(pricing.tree.n_workers)
    times = []

    class Times(Callback):
        def on_step(self, step):
            times.append(pricing.timer.clock.now_s)

    budget = TimeBudget(pricing.timer.clock, 1.0)
    result = testbed.simulate("mlp", data, tree=pricing.tree, iterations=10_000, lr=0.05, batch_size=8, device="cpu",
                              callbacks=[pricing.timer, budget, Times()])
    assert times[-2] < 1.0 <= times[-1] == result.metrics["sim_time_s"].iloc[-1]
    assert result.metrics["iteration"].iloc[-1] == len(times) < 10_000


def test_progress_shows_the_budget_and_ends_its_line_on_a_stop():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    class Run:
        stop_reason = None

    stream, run = Tty(), Run()
    progress = Progress("a", 1000, budget_s=10.0, stream=stream, width=10)
    progress.on_start(run)
    progress.on_eval({"iteration": 10, "sim_time_s": 5.0, "test_acc": 0.5})
    assert "[#####.....]" in stream.getvalue() and "sim 5.0s/10s" in stream.getvalue()
    assert not stream.getvalue().endswith("\n")
    run.stop_reason = "budget"
    progress.on_eval({"iteration": 21, "sim_time_s": 10.2, "test_acc": 0.6})
    assert "[##########]" in stream.getvalue() and "stop: budget" in stream.getvalue() and stream.getvalue().endswith("\n")


@pytest.mark.parametrize("values, message", [
    ({"budget_s": -1.0}, "budget_s: must be a finite number of simulated seconds >= 0 (0 = off), got -1.0"),
    ({"budget_s": float("inf")}, "config: budget_s: expected a finite float, got inf"),
    ({"stop_at_target": 1}, "stop_at_target: expected bool, got int 1"),
])
def test_bad_stopping_keys_are_refused_naming_the_key(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ExperimentConfig.from_dict(values)


def test_stop_at_target_needs_a_test_set():
    check_stop_at_target(False, False, "npz")
    with pytest.raises(ValueError, match="stop_at_target: dataset 'npz' has no test set, so test_acc never reaches target_acc"):
        check_stop_at_target(True, False, "npz")


def test_a_run_out_of_iterations_before_the_budget_is_named_and_no_other():
    rows = pd.DataFrame({"iteration": [10, 20], "sim_time_s": [1.0, 2.0], "test_acc": [0.5, 0.6]})
    assert short_of_budget(rows, 3.0) == ("ended after its 20 iterations at 2 s, short of budget_s=3 s; "
                                          "raise iterations (an upper bound with a budget)")
    assert short_of_budget(rows, 2.0) is None and short_of_budget(rows, 0.0) is None
    assert short_of_budget(rows.assign(stop=[None, "target"]), 3.0) is None
    assert short_of_budget(rows.assign(status=[None, "diverged: ..."]), 3.0) is None


def test_retime_refuses_a_budget_run(budget_run):
    from testbed.experiment.retime import retime

    with pytest.raises(ValueError, match="budget_s=3 stopped every algorithm .* cannot re-price that without retraining"):
        retime(budget_run, network=["tcp_model=fluid"])
