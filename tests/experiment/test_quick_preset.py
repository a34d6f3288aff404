"""The default experiment shows what the testbed is for (slow: the full quick preset)."""

import pandas as pd
import pytest

from testbed.experiment.config import preset
from testbed.experiment.runner import run_experiment


def first_time_at(curve: pd.DataFrame, target: float) -> float:
    hit = curve[curve.test_acc >= target]
    return float(hit.sim_time_s.iloc[0]) if len(hit) else float("inf")


@pytest.mark.slow
def test_quick_preset_shows_the_sandwich_and_a_wall_clock_winner(tmp_path):
    config = preset("quick")
    run_dir = run_experiment(config, reports_root=tmp_path, tag="quick", progress=False)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    mean = metrics.groupby(["spec", "iteration"])[["test_acc", "sim_time_s"]].mean().reset_index()
    curve = {spec: rows.set_index("iteration") for spec, rows in mean.groupby("spec")}
    fine, coarse = curve["local:2"], curve["local:40"]

    # the sandwich, against iterations: local SGD with the finest period above H-SGD above
    # local SGD with the coarsest period (mean accuracy over the run, and point by point)
    for spec in ("hsgd", "hsgd:40,2@0,2", "hsgd:40,10@0,1"):
        acc = curve[spec].test_acc
        assert fine.test_acc.mean() >= acc.mean() >= coarse.test_acc.mean(), spec
        inside = (acc <= fine.test_acc + 0.02) & (acc >= coarse.test_acc - 0.02)
        assert inside.mean() >= 0.8, (spec, inside.mean())

    # some H-SGD with the same global period (40) reaches the target sooner in wall-clock
    target = config.target_acc
    baseline = first_time_at(coarse.reset_index(), target)
    best = min(first_time_at(curve[s].reset_index(), target) for s in ("hsgd", "hsgd:40,2@0,2", "hsgd:40,10@0,1"))
    assert best < baseline, (best, baseline)
    assert (run_dir / "report.html").stat().st_size > 1e6  # plotly.js embedded
    html = (run_dir / "report.html").read_text()
    assert "Theory: bounds and divergences" in html
    # the verdict opens the page: the winner and the cost structure of the network
    assert html.index('id="verdict"') < html.index('id="accuracy-time"')
    assert "reaches 80% test accuracy first" in html and "ratio to a global round" in html
