"""The library API: seeded models, pricing on a network, whole experiments from Python."""

import io

import pandas as pd
import pytest

import testbed
from testbed.data import load_dataset, make_federated
from testbed.experiment.config import ExperimentConfig

STAR_WORKERS = 10
RUN = dict(iterations=20, lr=0.05, batch_size=16, eval_every=10, device="cpu")


@pytest.fixture(scope="module")
def data():
    """The quick preset's data on star, as the runner makes it for seed 0."""
    return make_federated(load_dataset("synthetic", n_workers=STAR_WORKERS, seed=0), STAR_WORKERS, scheme="natural", seed=0)


def test_same_seed_same_run_other_seed_other_weights(data):
    tree = dict(tree=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], periods=[10, 2])
    a, b = (testbed.simulate("mlp", data, **tree, **RUN, seed=0) for _ in range(2))
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    other = testbed.simulate("mlp", data, **tree, **RUN, seed=1)
    assert not other.metrics.test_loss.equals(a.metrics.test_loss)
    from testbed.models import build_model

    # a function returning the model is built with the seed too, and a name means that function
    built = testbed.simulate(lambda: build_model("mlp", num_classes=10, in_features=60), data, **tree, **RUN, seed=0)
    pd.testing.assert_frame_equal(built.metrics, a.metrics)


def test_simulate_on_a_network_equals_the_cli_run_of_that_algorithm(data, tmp_path):
    lib = testbed.simulate("mlp", data, tree="local:5", network="star", **RUN, seed=0)
    assert {"sim_time_s", "compute_s", "comm_s", "wait_s", "comm_cloud_s"} <= set(lib.metrics.columns)
    assert lib.metrics.sim_time_s.is_monotonic_increasing and lib.metrics.sim_time_s.iloc[0] > 0
    assert set(lib.events.kind) >= {"up", "down"} and lib.events.t.max() == 20
    config = {"topology": "star", "algorithms": ["local:5"], "seeds": [0], "iterations": 20, "eval_every": 10,
              "divergence_every": 0, "device": "cpu"}
    run = testbed.run_experiment(config, reports=tmp_path)
    assert run.folder.parent == tmp_path / "star" and (run.folder / "report.html").is_file()
    assert isinstance(run.config, ExperimentConfig) and run.config.iterations == 20
    cli = run.metrics.drop(columns=["algorithm", "spec", "seed"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(cli[list(lib.metrics.columns)], lib.metrics, check_exact=False, rtol=1e-12)
    events = pd.read_csv(io.StringIO(lib.events.to_csv(index=False)))  # as events.csv holds it
    pd.testing.assert_frame_equal(run.events.drop(columns=["algorithm", "seed"])[list(events.columns)], events,
                                  check_exact=False, rtol=1e-12, check_dtype=False)


def test_library_levels_and_columns_are_the_topologys():
    """H-SGD at levels 0 and 2 of edge3level: its local rounds are the edge servers', in the
    library as in events.csv (level 2, tier edge), never level 1's column."""
    edge = make_federated(load_dataset("synthetic", n_workers=24, seed=0), 24, scheme="natural", seed=0)
    lib = testbed.simulate("mlp", edge, tree="hsgd:20,2@0,2", network="edge3level", **RUN)
    assert sorted(set(zip(lib.events.level, lib.events.tier))) == [(0, "cloud"), (2, "edge")]
    assert {"comm_cloud_s", "comm_edge_s"} <= set(lib.metrics.columns) and "comm_regional_s" not in lib.metrics


def test_compute_ms_prices_every_iteration(data):
    slow = testbed.simulate("mlp", data, tree="local:5", network="star", compute_ms=50.0, **RUN)
    assert slow.metrics.compute_s.iloc[-1] == pytest.approx(20 * 0.050)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tree="hsgd"), "needs network="),
    (dict(tree=[[0, 1], [2, 3]], periods=[4, 2], compute_ms=5.0), "compute_ms: prices iterations on a network"),
    (dict(tree="local:5", periods=[5], network="star"), "periods: with network="),
    (dict(tree=[list(range(10))], network="star"), "give one algorithm spec on that topology"),
    (dict(tree="hsgd:9,9", network="star"), "hsgd:9,9"),
])
def test_library_misuse_is_named(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        testbed.simulate("mlp", data, **{"iterations": 2, **kwargs})
