"""`retime --topo`: the run's own algorithms, priced on another topology only where it
groups the workers as the training did; `retimed_from` names the real folder."""

import json

import networkx as nx
import pandas as pd
import pytest

from testbed.experiment.config import ExperimentConfig
from testbed.experiment.retime import retime
from testbed.experiment.runner import run_experiment
from testbed.net.graphfiles import write_graph

TINY = dict(iterations=20, eval_every=10, seeds=(0,), divergence_every=0, target_acc=0.3)


def groups_of_two(path):
    """Ten workers as the paper topologies have them, but in five groups of two."""
    g = nx.Graph(name="five_pairs")
    g.add_node("cloud", role="cloud", period=10)
    for s in range(5):
        g.add_node(f"s{s}", role="server", period=5)
        g.add_edge("cloud", f"s{s}", latency_ms=40.0, bandwidth_mbps=1000.0)
        for w in range(2):
            g.add_node(f"s{s}w{w}", role="worker", compute_ms=4.0)
            g.add_edge(f"s{s}", f"s{s}w{w}", latency_ms=5.0, bandwidth_mbps=100.0)
    write_graph(g, path)
    return path


def test_retime_onto_a_topology_with_the_same_tree_reuses_the_expanded_specs_and_equals_a_fresh_run(tmp_path):
    original = run_experiment(ExperimentConfig(topology="paper2level", **TINY), reports_root=tmp_path / "a", progress=False)
    trained = [a["spec"] for a in json.loads((original / "config.json").read_text())["algorithms"]]
    retimed = retime(original.parent / "latest", topology="paper_table2")  # through the link
    fresh = run_experiment(ExperimentConfig(topology="paper_table2", algorithms=tuple(trained), **TINY),
                           reports_root=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(retimed / "metrics.csv"), pd.read_csv(fresh / "metrics.csv"),
                                  check_exact=False, rtol=1e-12)
    info = json.loads((retimed / "config.json").read_text())
    assert info["retimed_from"] == str(original.resolve())  # the real folder, not `latest`
    assert info["config"]["algorithms"] == trained and info["topology"] == "paper_table2"
    assert info["algorithms"][0]["server_nodes"] == json.loads((fresh / "config.json").read_text())["algorithms"][0]["server_nodes"]


def test_retime_refuses_a_topology_that_groups_the_workers_otherwise_before_writing(tmp_path):
    original = run_experiment(ExperimentConfig(topology="paper2level", algorithms=("hsgd", "local:5"), **TINY),
                              reports_root=tmp_path, progress=False)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=r"H-SGD \(50,5\) would aggregate .* a re-time keeps the training"):
        retime(original, topology=str(groups_of_two(tmp_path / "pairs.json")))
    (tmp_path / "pairs.json").unlink()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no run folder, no report


def test_retime_of_a_default_run_keeps_its_specs_instead_of_expanding_auto_again(tmp_path):
    star = run_experiment(ExperimentConfig(topology="star", **TINY), reports_root=tmp_path, progress=False)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    # star's 'auto' is H-SGD (10) and local SGD P=10; paper2level's would be other specs (once a KeyError)
    with pytest.raises(ValueError, match=r"--topo paper2level: H-SGD \(10\) would aggregate"):
        retime(star, topology="paper2level")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_local_sgd_retimes_onto_any_tree_of_the_same_workers_as_a_fresh_run_there(tmp_path):
    local = dict(algorithms=("local:5",), **TINY)
    original = run_experiment(ExperimentConfig(topology="paper2level", **local), reports_root=tmp_path / "a", progress=False)
    pairs = str(groups_of_two(tmp_path / "pairs.json"))
    retimed = retime(original, topology=pairs)
    fresh = run_experiment(ExperimentConfig(topology=pairs, **local), reports_root=tmp_path / "b", progress=False)
    a, b = pd.read_csv(retimed / "metrics.csv"), pd.read_csv(fresh / "metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    assert not a.sim_time_s.equals(pd.read_csv(original / "metrics.csv").sim_time_s)  # priced on the new network


def test_resuming_through_latest_keeps_the_link_on_the_real_folder(tmp_path):
    from testbed.experiment.runner import resume_experiment

    run_dir = run_experiment(ExperimentConfig(topology="star", algorithms=("local:5",), **TINY), reports_root=tmp_path,
                             progress=False)
    resumed = resume_experiment(tmp_path / "star" / "latest", progress=False)
    assert resumed == run_dir.resolve()
    assert (tmp_path / "star" / "latest").resolve() == run_dir.resolve()  # once a link to itself
    assert (tmp_path / "star" / "latest" / "report.html").is_file()
