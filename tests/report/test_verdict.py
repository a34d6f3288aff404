"""The verdict at the top of the report: best algorithm, time, speed-up with its per-seed
spread, and the cost structure per aggregation level on every shipped topology."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from testbed.net.costs import round_costs
from testbed.report.runfolder import load_run
from testbed.report.sections import DEFAULT_SECTIONS
from testbed.report.curves import first_crossing
from testbed.report.tables import run_target_table
from testbed.report.verdict import Verdict, verdict, verdict_html, verdict_sentence

SHIPPED = ["edge3level", "edge_mec", "paper2level", "paper_table2", "star", "zoo_usbackbone"]


def _with_costs(run_dir, costs):
    info = json.loads((run_dir / "config.json").read_text())
    info["round_costs"] = costs.to_dict()
    (run_dir / "config.json").write_text(json.dumps(info))
    return run_dir


def test_verdict_names_the_winner_its_speedup_and_the_seed_spread(run_dir):
    run = load_run(run_dir)
    v = verdict(run)
    times = {r.label: r.time_s for r in run_target_table(run, 0.5)}
    assert v.best == min(times, key=times.get) and v.best.startswith("H-SGD")
    local = {label: t for label, t in times.items() if label.startswith("local SGD")}
    assert v.best_local == min(local, key=local.get) and v.speedup == pytest.approx(local[v.best_local] / times[v.best])
    # the speed-up is the baseline's mean-curve time over the winner's
    per_seed = []
    for seed in (0, 1):
        a, b = (run.curves(label)[seed] for label in (v.best, v.best_local))
        per_seed.append(first_crossing(b.sim_time_s.to_numpy(), b.test_acc.to_numpy(), 0.5)
                        / first_crossing(a.sim_time_s.to_numpy(), a.test_acc.to_numpy(), 0.5))
    assert v.seed_speedups == pytest.approx(per_seed) and v.speedup > 1
    text = verdict_sentence(v)
    assert text.startswith(f"{v.best} reaches 50% test accuracy first, at ")
    assert f"{v.speedup:.2f}x sooner than the best local SGD, {v.best_local}" in text
    assert f"per seed {min(per_seed):.2f}x to {max(per_seed):.2f}x" in text


def test_verdict_when_nothing_reaches_the_target(make_run):
    v = verdict(load_run(make_run(target_acc=0.99)))
    assert v.best is None and verdict_sentence(v).startswith("No algorithm reached 99% test accuracy within the run")


def test_verdict_says_when_round_costs_are_missing(run_dir):
    html = verdict_html(load_run(run_dir))
    assert "no round_costs" in html


def test_verdict_is_the_first_section():
    assert DEFAULT_SECTIONS[0].__name__ == "verdict_section"


@pytest.mark.parametrize("name", SHIPPED)
def test_cost_structure_on_every_shipped_topology(run_dir, name):
    costs = round_costs(name, model_bytes=250_000, seed=0, rounds=2)
    assert costs.levels[0].level == 0 and costs.levels[0].ratio == 1.0
    assert all(lc.cost_s > 0 for lc in costs.levels) and costs.local_sgd_global_s > 0
    html = verdict_html(load_run(_with_costs(run_dir, costs)))
    assert html.count("<tr>") == len(costs.levels) + 2  # header, one per level, local SGD's global round
    assert "global (cloud)" in html and "ratio to a global round" in html
    if len(costs.levels) == 1:
        assert "one aggregation level" in html
    else:
        assert "Local aggregation " in html and "% of a global round" in html


def test_home_uplinks_make_local_aggregation_useless_for_a_big_model(run_dir):
    costs = round_costs("paper2level", model_bytes=531_453_344, window_bytes=4 << 20, seed=0, rounds=2)
    local = costs.levels[1]
    assert local.bottleneck_mbps == 20.0 and local.ratio > 0.8
    html = verdict_html(load_run(_with_costs(run_dir, costs)))
    assert "Local aggregation cannot pay off on this network: every round crosses the 20 Mbit/s link" in html


def test_edge_computing_makes_local_rounds_cheap():
    costs = round_costs("edge_mec", model_bytes=10_000_000, seed=0, rounds=2)
    assert costs.levels[1].ratio < 0.2 and costs.levels[0].bottleneck_mbps == 100.0
    assert costs.local_sgd_global_s > 2 * costs.levels[0].cost_s  # 4 workers share each site uplink


def test_verdict_when_local_sgd_wins_or_is_alone(make_run):
    run_dir = make_run("local")
    info = json.loads((run_dir / "config.json").read_text())
    info["algorithms"] = [a for a in info["algorithms"] if a["is_local_sgd"]]  # drop the H-SGD runs
    (run_dir / "config.json").write_text(json.dumps(info))
    metrics = run_dir / "metrics.csv"
    frame = pd.read_csv(metrics)
    frame[frame.algorithm.str.startswith("local SGD")].to_csv(metrics, index=False)
    v = verdict(load_run(run_dir))
    assert v.best == v.best_local and verdict_sentence(v).endswith("(only local SGD was run).")


@pytest.mark.parametrize("seeds, says", [
    ((1.2, 1.4), None),
    ((0.85, 0.89), "on every seed on its own local SGD P=2 reaches the target sooner"),
    ((0.9, 1.3), "The seeds disagree (1 of 2 reach it sooner with local SGD P=2)"),
])
def test_verdict_warns_when_the_seeds_do_not_bear_out_the_mean_curve(seeds, says):
    v = Verdict(0.6, "H-SGD (40,10,2)", 12.1, "local SGD P=2", 1.04, seeds, None)
    text = verdict_sentence(v)
    assert "1.04x sooner than the best local SGD, local SGD P=2" in text
    if says is None:
        assert "seed" not in text.split("(per seed")[1].split(")", 1)[1]
    else:
        assert says in text
