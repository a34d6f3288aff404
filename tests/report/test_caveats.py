from testbed.report import build_report, load_run
from testbed.report.caveats import caveats
from testbed.report.theory_panel import bound_check


def test_no_caveat_for_a_run_long_enough(run_dir):
    assert caveats(load_run(run_dir)) == []


def test_runs_shorter_than_a_global_period_or_with_one_evaluation_are_flagged(make_run):
    short = load_run(make_run("short", n_points=2, eval_every=10))  # 20 iterations, global periods 40 and 2
    (text,) = caveats(short)
    assert text.startswith("20 iterations are fewer than one global period of H-SGD (40,10,2) (global period 40)")
    assert "local SGD P=2" not in text
    one = make_run("one", n_points=1)
    found = caveats(load_run(one))
    assert any(c.startswith("fewer than two evaluations per seed for") for c in found)
    assert "fewer than two evaluations per seed" in build_report(one).read_text(encoding="utf-8")


def test_a_measured_value_above_its_bound_is_flagged():
    assert bound_check(0.5, 1.0) == "yes"
    assert bound_check(2.5, 1.0) == "⚠ exceeds the bound (2.5x)"
    assert bound_check(None, 1.0) == "—"
