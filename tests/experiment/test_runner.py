"""The experiment runner end to end on a tiny budget, and re-timing."""

import json

import numpy as np
import pandas as pd
import pytest

from testbed.experiment.retime import retime
from testbed.experiment.runner import run_experiment


def write_slow_trace(path, base_ms):
    t = np.arange(200.0)
    rtt = base_ms + 5 * np.sin(t / 7)
    pd.DataFrame({"t_s": t, "rtt_ms": rtt}).to_csv(path, index=False)
    return path


def test_run_folder_has_every_file_and_tidy_metrics(tiny_config, tmp_path):
    run_dir = run_experiment(tiny_config, reports_root=tmp_path, tag="tiny", progress=False)
    assert run_dir.parent.name == "edge3level"
    for name in ("config.json", "metrics.csv", "events.csv", "schedule.json", "topology.json", "report.html", "COLUMNS.md"):
        assert (run_dir / name).is_file(), name
    assert (run_dir.parent / "latest").resolve() == run_dir.resolve()
    assert not list(run_dir.rglob("*.tmp")), "temporary files left behind"
    info = json.loads((run_dir / "config.json").read_text())
    assert info["config"]["iterations"] == 40 and info["versions"]["torch"]
    assert [a["spec"] for a in info["algorithms"]] == ["hsgd", "local:2", "hsgd:40,2@0,2"]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    # stable order: the data dictionary's, per-level columns by the topology's tiers, top first
    assert list(metrics.columns) == [
        "algorithm", "spec", "seed", "iteration", "sim_time_s", "elapsed_s", "compute_s", "comm_cloud_s",
        "comm_regional_s", "comm_edge_s", "comm_s", "wait_s", "worker_loss", "global_train_loss", "test_loss", "test_acc"]
    assert len(metrics) == 3 * 4  # three algorithms x four evaluation points
    for _, rows in metrics.groupby("algorithm"):
        assert rows.sim_time_s.is_monotonic_increasing
        parts = rows.compute_s + rows.filter(regex=r"^comm_[a-z_0-9]+_s$").fillna(0).sum(axis=1) + rows.wait_s
        np.testing.assert_allclose(parts, rows.elapsed_s, rtol=1e-9)
    # H-SGD (40,2) @ levels 0,2 spends its local rounds at the edge servers, never the regional ones
    partial = metrics[metrics.spec == "hsgd:40,2@0,2"].iloc[-1]
    assert partial.comm_edge_s > 0 and np.isnan(partial.comm_regional_s)
    assert metrics[metrics.spec == "local:2"][["comm_regional_s", "comm_edge_s"]].isna().all().all()
    events = pd.read_csv(run_dir / "events.csv")
    tiers = events[events.algorithm == "H-SGD (40,2) @ levels 0,2"].groupby("level").tier.unique()
    assert {k: list(v) for k, v in tiers.items()} == {0: ["cloud"], 2: ["edge"]}
    # local SGD sends every worker's model across the inter-region links: slower per iteration
    last = metrics.groupby("spec").sim_time_s.max()
    assert last["local:2"] > last["hsgd:40,2@0,2"]


@pytest.mark.parametrize("tcp", ["tcp_model=tcp", "tcp_model=fluid", "tcp_idle=keep"])
def test_retime_under_trace_b_equals_a_fresh_run_on_trace_b(tiny_config, tmp_path, tcp):
    trace_b = write_slow_trace(tmp_path / "slow_inter_region.csv", base_ms=180.0)
    override = {"ec2_us_eu": str(trace_b), "synth_home_access": str(write_slow_trace(tmp_path / "home.csv", 40.0))}
    tiny_config = tiny_config.with_overrides([tcp])
    original = run_experiment(tiny_config, reports_root=tmp_path / "a", progress=False)
    retimed = retime(original, override)
    fresh_config = tiny_config.with_overrides([f"traces={','.join(f'{k}={v}' for k, v in override.items())}"])
    fresh = run_experiment(fresh_config, reports_root=tmp_path / "b", progress=False)

    a, b = pd.read_csv(retimed / "metrics.csv"), pd.read_csv(fresh / "metrics.csv")
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(pd.read_csv(retimed / "events.csv"), pd.read_csv(fresh / "events.csv"), check_exact=False, rtol=1e-12)
    # and the new trace did change the clock
    before = pd.read_csv(original / "metrics.csv")
    assert (a.sim_time_s.to_numpy() > before.sim_time_s.to_numpy()).all()
    assert (a.test_acc.to_numpy() == before.test_acc.to_numpy()).all()  # training untouched
    assert json.loads((retimed / "config.json").read_text())["retimed_from"] == str(original)


def test_the_tcp_model_changes_the_clock_and_is_stated_in_the_report(tiny_config, tmp_path):
    runs = {m: run_experiment(tiny_config.with_overrides([f"tcp_model={m}"]), reports_root=tmp_path / m, progress=False)
            for m in ("tcp", "fluid")}
    tcp, fluid = (pd.read_csv(runs[m] / "metrics.csv") for m in ("tcp", "fluid"))
    assert (tcp.sim_time_s > fluid.sim_time_s).all()  # slow start and headers only ever cost time
    assert (tcp.test_acc == fluid.test_acc).all()
    report = (runs["tcp"] / "report.html").read_text(encoding="utf-8")
    assert "Network model</b>: TCP slow start from 10 x 1448 B segments, 52 B of headers" in report
    assert "idle connections restart (RTO = 200 ms + RTT)" in report and "W = 4,096 KiB" in report
    assert "fluid max-min flows" in (runs["fluid"] / "report.html").read_text(encoding="utf-8")


def test_retime_under_another_tcp_model_equals_a_fresh_run_with_it(tiny_config, tmp_path):
    original = run_experiment(tiny_config, reports_root=tmp_path / "a", progress=False)  # the TCP model
    retimed = retime(original, network=["tcp_model=fluid", "window_kib=1024"])
    fresh = run_experiment(tiny_config.with_overrides(["tcp_model=fluid", "window_kib=1024"]), reports_root=tmp_path / "b",
                           progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(retimed / "metrics.csv"), pd.read_csv(fresh / "metrics.csv"),
                                  check_exact=False, rtol=1e-12)
    assert json.loads((retimed / "config.json").read_text())["config"]["tcp_model"] == "fluid"
    before = sorted(p.name for p in (tmp_path / "a").rglob("*"))
    with pytest.raises(ValueError, match=r"--set lr: a re-time changes only how the network prices the run; allowed: tcp_model"):
        retime(original, network=["lr=0.1"])
    with pytest.raises(ValueError, match="tcp_idle: must be one of restart, keep"):
        retime(original, network=["tcp_idle=never"])
    assert sorted(p.name for p in (tmp_path / "a").rglob("*")) == before  # nothing written


def test_a_run_saved_before_the_tcp_model_keeps_the_fluid_clock(tiny_config, tmp_path):
    run_dir = run_experiment(tiny_config.with_overrides(["tcp_model=fluid"]), reports_root=tmp_path, progress=False)
    info = json.loads((run_dir / "config.json").read_text())
    info["config"] = {k: v for k, v in info["config"].items() if not k.startswith("tcp_")}
    (run_dir / "config.json").write_text(json.dumps(info))
    retimed = retime(run_dir)
    a, b = pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(retimed / "metrics.csv")
    np.testing.assert_array_equal(a.sim_time_s, b.sim_time_s)


def test_retime_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json: missing"):
        retime(tmp_path)


def test_bad_config_fails_before_any_run_folder_exists(tmp_path):
    from testbed.experiment.config import ExperimentConfig

    for bad in (dict(model="transformer"), dict(dataset="imagenet"), dict(topology="nowhere"), dict(algorithms=("local:3x",))):
        with pytest.raises((ValueError, FileNotFoundError)):
            run_experiment(ExperimentConfig(**bad), reports_root=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_a_diverging_algorithm_stops_alone_and_the_report_says_so(tiny_config, tmp_path, monkeypatch):
    import torch.nn.functional as F

    from testbed.experiment import runner

    real_simulate = runner.testbed.simulate

    def nan_for_local_sgd(model, data, tree, **kwargs):
        if tree.n_levels == 1:  # inject NaN losses into local SGD only, from iteration 1
            kwargs["loss"] = lambda out, y: F.cross_entropy(out, y, reduction="none") * float("nan")
        return real_simulate(model, data, tree, **kwargs)

    monkeypatch.setattr(runner.testbed, "simulate", nan_for_local_sgd)
    run_dir = run_experiment(tiny_config, reports_root=tmp_path, progress=False)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    local = metrics[metrics.spec == "local:2"]
    assert len(local) == 1 and local.status.iloc[0].startswith("diverged: training loss is nan at iteration 1")
    assert local.iteration.iloc[0] == 2  # stopped at local:2's first aggregation
    assert len(metrics[metrics.spec == "hsgd"]) == 4  # the others finished
    assert "diverged: training loss is nan" in (run_dir / "report.html").read_text()


def test_a_run_that_diverges_before_any_evaluation_still_gets_its_report(tmp_path):
    """lr=1e30: every pair stops at iteration 2, before its first evaluation, with the
    divergence probe on; the run folder is still complete and the report shows the status."""
    from testbed.experiment.config import ExperimentConfig

    config = ExperimentConfig(topology="star", lr=1e30, iterations=20, eval_every=10, seeds=(0, 1),
                              algorithms=("local:2", "local:4"), divergence_every=1)
    run_dir = run_experiment(config, reports_root=tmp_path, progress=False)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert len(metrics) == 4 and metrics.status.str.startswith("diverged: training loss is").all()
    assert metrics.test_acc.isna().all()  # the column is there, empty: nothing was evaluated
    page = (run_dir / "report.html").read_text()
    assert page.count("diverged: training loss is") >= 4
    assert (run_dir.parent / "LATEST.txt").read_text().strip() == run_dir.name


def test_same_seed_gives_identical_files_and_other_seeds_differ(tiny_config, tmp_path):
    a = run_experiment(tiny_config, reports_root=tmp_path / "a", progress=False)
    b = run_experiment(tiny_config, reports_root=tmp_path / "b", progress=False)
    for name in ("metrics.csv", "events.csv", "schedule.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    other = run_experiment(tiny_config.with_overrides(["seeds=1"]), reports_root=tmp_path / "c", progress=False)
    m_a, m_c = pd.read_csv(a / "metrics.csv"), pd.read_csv(other / "metrics.csv")
    assert not np.allclose(m_a.worker_loss, m_c.worker_loss)
    assert not np.allclose(m_a.sim_time_s, m_c.sim_time_s)  # trace offsets are drawn from the seed too


def test_retime_refuses_a_trace_name_the_topology_does_not_use(tiny_config, tmp_path):
    run_dir = run_experiment(tiny_config.with_overrides(["algorithms=local:2", "iterations=10"]), reports_root=tmp_path, progress=False)
    with pytest.raises(ValueError, match="--trace nosuch: not a trace of"):
        retime(run_dir, {"nosuch": str(write_slow_trace(tmp_path / "x.csv", 10.0))})


def test_resume_refuses_a_corrupt_config_naming_it(tmp_path):
    from testbed.experiment.runner import resume_experiment

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: line 1"):
        resume_experiment(tmp_path)


def test_events_setting_thins_the_log_and_leaves_the_clock_alone(tiny_config, tmp_path):
    config = tiny_config.with_overrides(["algorithms=hsgd", "iterations=20"])
    runs = {mode: run_experiment(config.with_overrides([f"events={mode}"]), reports_root=tmp_path / mode, progress=False)
            for mode in ("all", "aggregations", "none")}
    full = pd.read_csv(runs["all"] / "events.csv")
    aggregations = pd.read_csv(runs["aggregations"] / "events.csv")
    pd.testing.assert_frame_equal(aggregations, full[full.kind == "aggregate"].reset_index(drop=True), check_dtype=False)
    assert len(aggregations) > 0 and len(full) > 10 * len(aggregations)
    assert pd.read_csv(runs["none"] / "events.csv").empty
    times = [pd.read_csv(run / "metrics.csv").sim_time_s.tolist() for run in runs.values()]
    assert times[0] == times[1] == times[2]
    assert "holds no events (the run was made with events=none)" in (runs["none"] / "report.html").read_text()
    retimed = retime(runs["aggregations"], {})
    assert set(pd.read_csv(retimed / "events.csv").kind) == {"aggregate"}  # re-timing keeps the setting


def test_threads_key_sets_torch_threads_and_zero_keeps_the_default(tiny_config):
    import dataclasses

    import torch

    from testbed.experiment.setup import prepare

    before = torch.get_num_threads()
    try:
        prepare(dataclasses.replace(tiny_config, threads=3))
        assert torch.get_num_threads() == 3
        torch.set_num_threads(2)
        prepare(tiny_config)  # threads=0: left as it was
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
