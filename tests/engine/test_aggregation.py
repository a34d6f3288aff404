import numpy as np
import pytest

from testbed.engine.aggregation import plan_aggregation, subtree_weights
from testbed.schedule import sample_participants
from testbed.tree import AggregationTree


def test_uniform_weights_average_group_means_as_algorithm_1():
    tree = AggregationTree([[0, 1], [2, 3, 4]], [4, 2])
    w = subtree_weights(tree, tree.servers[0], "uniform", np.ones(5))
    np.testing.assert_allclose(w, [1 / 4, 1 / 4, 1 / 6, 1 / 6, 1 / 6])  # 1/N sum_i (1/n_i sum_j w_j)


def test_sample_weights_equal_flat_sample_weighting():
    tree = AggregationTree([[[0], [1, 2]], [[3, 4]]], [4, 2, 1])
    counts = np.array([10, 20, 30, 15, 25])
    w = subtree_weights(tree, tree.servers[0], "samples", counts)
    np.testing.assert_allclose(w, counts / counts.sum())


def test_non_participants_get_zero_weight_but_receive_the_average():
    tree = AggregationTree([[0, 1], [2, 3]], [4, 2])
    active = np.array([True, False, True, True])
    plan = plan_aggregation(tree, tree.top_aggregating(4), "uniform", np.ones(4), active)
    np.testing.assert_allclose(plan.weight, [0.5, 0.0, 0.25, 0.25])
    assert plan.covers_all and list(plan.segment) == [0, 0, 0, 0]


def test_participants_are_drawn_per_bottom_group():
    tree = AggregationTree([[0, 1, 2, 3], [4, 5]], [4, 2])
    rng = np.random.default_rng(0)
    for _ in range(20):
        active = sample_participants(tree, 0.5, rng)
        assert active[:4].sum() == 2 and active[4:].sum() == 1
    assert sample_participants(tree, 1.0, rng) is None


def test_empty_server_is_refused():
    tree = AggregationTree([[0, 1], [2, 3]], [4, 2])
    with pytest.raises(ValueError, match="no participating worker"):
        subtree_weights(tree, tree.servers[1], "uniform", np.ones(4), np.array([False, False, True, True]))
