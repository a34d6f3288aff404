import dataclasses

import numpy as np
import pandas as pd
import pytest

from testbed.report.curves import band
from testbed.report.runfolder import load_run
from testbed.report.tables import (
    Speedup,
    aggregation_summary,
    breakdown,
    component_columns,
    run_target_table,
    speedup_text,
    target_table,
)


def _band(*seeds):
    return band([(np.array(x, float), np.array(y, float)) for x, y in seeds])


# local SGD P=2 reaches 0.5 at 20 s (iteration 40); H-SGD's mean reaches it at 8 s (iteration 30,
# from its iteration band); local SGD P=40 never reaches it and ends at 10 s.
BY_TIME = {
    "H-SGD": _band(([0, 4, 8], [0.2, 0.45, 0.6]), ([0, 5, 10], [0.2, 0.5, 0.6])),
    "local SGD P=2": _band(([0, 10, 20, 30], [0.1, 0.3, 0.5, 0.6])),
    "local SGD P=40": _band(([0, 5, 10], [0.1, 0.2, 0.3])),
}
BY_ITER = {
    "H-SGD": _band(([0, 10, 20, 30], [0.2, 0.4, 0.45, 0.6]), ([0, 10, 20, 30], [0.2, 0.4, 0.5, 0.5])),
    "local SGD P=2": _band(([0, 20, 40], [0.1, 0.3, 0.5])),
    "local SGD P=40": _band(([0, 20, 40], [0.1, 0.2, 0.3])),
}


def test_time_to_target_and_speedups_exact():
    rows = {r.label: r for r in target_table(BY_TIME, BY_ITER, ["local SGD P=2", "local SGD P=40"], 0.5)}
    h = rows["H-SGD"]
    assert (h.time_s, h.iteration, h.end_time_s) == (8.0, 30.0, 8.0)
    assert h.final_acc == pytest.approx(0.55)
    assert h.speedups[0] == Speedup("local SGD P=2", 2.5)  # 20 s / 8 s
    assert h.speedups[1] == Speedup("local SGD P=40", 1.25, lower_bound=True)  # its whole 10 s / 8 s
    p2 = rows["local SGD P=2"]
    assert (p2.time_s, p2.iteration) == (20.0, 40.0)
    assert p2.speedups[0].is_self
    assert p2.speedups[1] == Speedup("local SGD P=40", 0.5, lower_bound=True)
    p40 = rows["local SGD P=40"]
    assert p40.time_s is None and p40.iteration is None
    assert p40.speedups[0] == Speedup("local SGD P=2", None)


def test_speedup_text():
    assert speedup_text(Speedup("local SGD P=2", 1.8)) == "1.80x"  # the column names the baseline
    assert speedup_text(Speedup("local SGD P=40", 1.25, lower_bound=True)) == "> 1.25x (never reached)"
    assert speedup_text(Speedup("local SGD P=2", None)) == "—"
    assert speedup_text(Speedup("local SGD P=2", 1.0, is_self=True)) == "baseline"
    assert speedup_text(Speedup("x", float("inf"))) == "∞x"


def test_target_at_time_zero_is_an_infinite_speedup():
    rows = target_table({"a": _band(([0, 1], [0.6, 0.7])), "b": _band(([0, 1], [0.1, 0.6]))}, {}, ["b"], 0.5)
    assert rows[0].speedups[0].ratio == float("inf")
    assert rows[0].iteration is None  # no iteration band given


def test_run_target_table_on_a_fake_folder_matches_the_fake_curves(run_dir):
    run = load_run(run_dir)
    rows = {r.label: r for r in run_target_table(run, 0.5)}
    assert [s.baseline for s in rows["H-SGD (40,10,2)"].speedups] == ["local SGD P=2", "local SGD P=40"]
    # The fake H-SGD is faster on the clock than both baselines, local SGD P=2 faster per iteration.
    assert all(s.ratio > 1 for s in rows["H-SGD (40,10,2)"].speedups)
    assert rows["local SGD P=2"].iteration < rows["H-SGD (40,10,2)"].iteration < rows["local SGD P=40"].iteration


def test_component_columns_name_the_tiers_in_metrics_order():
    cols = ["wait_s", "comm_cloud_s", "compute_s", "comm_regional_s", "comm_s", "comm_level_2_s", "div_up"]
    assert component_columns(cols) == [
        ("compute_s", "compute"), ("comm_cloud_s", "communication: cloud"), ("comm_regional_s", "communication: regional"),
        ("comm_level_2_s", "communication: level 2"), ("wait_s", "waiting"),
    ]  # fmt: skip


def test_breakdown_takes_each_seeds_last_row_and_averages():
    m = pd.DataFrame({
        "algorithm": ["a"] * 4, "seed": [0, 0, 1, 1], "iteration": [0, 10, 0, 10],
        "sim_time_s": [0, 10, 0, 14], "compute_s": [0, 4, 0, 6], "comm_cloud_s": [0, 5, 0, 7], "wait_s": [0, 1, 0, 1],
    })  # fmt: skip
    (row,) = breakdown(m, ["a", "missing"])
    assert row.parts == (("compute", 5.0), ("communication: cloud", 6.0), ("waiting", 1.0))
    assert row.sim_time_s == 12.0


def test_aggregation_summary_counts_per_seed():
    ev = pd.DataFrame({
        "algorithm": ["a"] * 3, "seed": [0, 0, 1], "kind": ["aggregate"] * 3, "level": [0, 0, 0], "node": ["cloud"] * 3,
        "start_s": [0.0, 1.0, 0.0], "end_s": [0.5, 1.5, 1.0], "bytes": [100, 100, 100],
    })  # fmt: skip
    (row,) = aggregation_summary(ev).itertuples()
    assert (row.per_seed, row.mean_duration_s, row.bytes_per_seed) == (1.5, pytest.approx(2 / 3), 150.0)


def test_aggregation_summary_names_missing_columns():
    with pytest.raises(ValueError, match="events.csv: missing column.*end_s"):
        aggregation_summary(pd.DataFrame({"algorithm": [], "seed": [], "kind": [], "level": [], "start_s": []}))


def test_time_to_target_per_seed_spread(make_run):
    from testbed.report.tables import seeds_text, spread_text

    run = load_run(make_run(seeds=(0, 1, 2)))
    rows = {r.label: r for r in run_target_table(run, 0.5)}
    h = rows["H-SGD (40,10,2)"]
    own = {seed: g[g.test_acc >= 0.5].sim_time_s.min() for seed, g in run.metrics[run.metrics.algorithm == h.label].groupby("seed")}
    assert dict(h.seed_times_s) == pytest.approx(own)
    median, lo, hi, reached = h.spread
    assert (median, lo, hi, reached) == (pytest.approx(np.median(list(own.values()))), min(own.values()), max(own.values()), 3)
    assert spread_text(h).count(" s") == 3 and seeds_text(h).startswith("0: ")
    never = rows["local SGD P=40"]
    assert never.spread is None or never.spread[3] <= 3
    partial = dataclasses.replace(h, seed_times_s=((0, 10.0), (1, None), (2, 30.0)))
    assert spread_text(partial) == "20 s (10 s–30 s), 2 of 3 seeds"
    assert seeds_text(partial) == "0: 10 s; 1: not reached; 2: 30 s"
