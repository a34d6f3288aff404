"""Divergences (7)-(10) of an aggregation tree, sigma^2 (6), and Lemmas 1-3 by Monte Carlo."""

import math

import numpy as np
import pytest
import torch

from testbed.theory.divergence import (
    estimate_sigma2,
    expected_random_split,
    measure_divergences,
    random_equal_tree,
)
from testbed.tree import AggregationTree


def heterogeneous_grads(rng: np.random.Generator, n_workers: int, dim: int) -> np.ndarray:
    """Per-worker gradients with a shared part, a per-worker offset and mixed scales."""
    shared = rng.normal(size=dim) * 3.0
    return shared + rng.normal(size=(n_workers, dim)) * rng.uniform(0.2, 2.0, size=(n_workers, 1))


def test_two_level_divergences_by_hand():
    # Scalar gradients 1, 3 | 5, 11: grad f = 5; global = (16 + 4 + 0 + 36)/4 = 14.
    # Groups average 2 and 8: upward = (9 + 9)/2 = 9; downward = (1 + 1)/2 = 1 and (9 + 9)/2 = 9.
    d = measure_divergences(np.array([[1.0], [3.0], [5.0], [11.0]]), [[0, 1], [2, 3]])
    assert d.global_divergence == pytest.approx(14.0)
    assert d.upward == pytest.approx(9.0)
    assert d.downward == pytest.approx((1.0, 9.0))
    assert d.levels[0].downward_mean == pytest.approx(5.0)
    assert d.partition_residual < 1e-15
    assert d.as_dict() == pytest.approx(
        {"div_global": 14.0, "div_up_l1": 9.0, "div_down_l1": 5.0, "div_down_l1_g0": 1.0,
         "div_down_l1_g1": 9.0, "partition_residual_l1": 0.0}  # fmt: skip
    )


def test_unequal_groups_weight_by_group_size():
    # Groups {0} and {1, 2} with scalar gradients 0 | 3, 6: grad f = 3, group means 0 and 4.5.
    # upward = 1/3 * 9 + 2/3 * 2.25 = 4.5; downward = (0, 2.25); global = (9 + 0 + 9)/3 = 6.
    d = measure_divergences(torch.tensor([[0.0], [3.0], [6.0]]), [[0], [1, 2]])
    assert (d.global_divergence, d.upward) == pytest.approx((6.0, 4.5))
    assert d.downward == pytest.approx((0.0, 2.25))
    assert d.levels[0].masses == pytest.approx((1 / 3, 2 / 3))


@pytest.mark.parametrize(
    "nested",
    [
        [[0, 1], [2, 3, 4]],
        [[0], [1, 2, 3, 4, 5, 6], [7, 8]],
        [[[0, 1], [2]], [[3, 4], [5]]],
        [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]],
        [[[[0], [1]], [[2, 3]]], [[[4, 5]], [[6], [7]]]],
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_partition_identity_10_on_random_gradients(nested, weighted):
    rng = np.random.default_rng(10)
    tree = AggregationTree(nested, [1] * _depth(nested))
    grads = heterogeneous_grads(rng, tree.n_workers, dim=257) + 100.0  # large common part: cancellation
    weights = rng.uniform(0.5, 3.0, size=tree.n_workers) if weighted else None
    d = measure_divergences(grads, tree, weights)
    assert len(d.levels) == tree.n_levels - 1
    for lv in d.levels:
        assert lv.partition_residual <= 1e-6
        # (10) recomputed independently with a plain loop
        p = np.ones(tree.n_workers) if weights is None else np.asarray(weights)
        p = p / p.sum()
        grad_f = p @ grads
        upward = downward = 0.0
        for s in tree.level(lv.level):
            idx = list(s.workers)
            mass = p[idx].sum()
            grad_fs = p[idx] @ grads[idx] / mass
            upward += mass * np.sum((grad_fs - grad_f) ** 2)
            downward += np.sum(p[idx] * np.sum((grads[idx] - grad_fs) ** 2, axis=1))
        assert lv.upward == pytest.approx(upward, rel=1e-9)
        assert lv.downward_mean == pytest.approx(downward, rel=1e-9)
        assert upward + downward == pytest.approx(d.global_divergence, rel=1e-6)


def _depth(node) -> int:
    return 0 if isinstance(node, int) else 1 + _depth(node[0])


def test_multilevel_levels_match_the_two_level_tree_cut_at_that_level():
    # Level l of a 3-level tree is the two-level grouping by level-l subtrees.
    rng = np.random.default_rng(3)
    nested = [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]
    grads = heterogeneous_grads(rng, 12, dim=33)
    three = measure_divergences(grads, nested)
    cut_at_1 = measure_divergences(grads, [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    cut_at_2 = measure_divergences(grads, [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]])
    for level, two in ((three.levels[0], cut_at_1), (three.levels[1], cut_at_2)):
        assert level.upward == pytest.approx(two.upward, rel=1e-12)
        assert level.downward == pytest.approx(two.downward, rel=1e-12)
    assert three.global_divergence == pytest.approx(cut_at_1.global_divergence, rel=1e-12)
    # and a two-level tree has exactly one level, which the two-level shortcuts read
    assert len(cut_at_1.levels) == 1 and cut_at_1.upward == cut_at_1.levels[0].upward


def test_weights_act_like_replicated_workers():
    # Weight 2 on worker 0 is the same as worker 0 appearing twice in its group.
    rng = np.random.default_rng(5)
    g = rng.normal(size=(4, 9))
    weighted = measure_divergences(g, [[0, 1], [2, 3]], weights=[2.0, 1.0, 1.0, 1.0])
    replicated = measure_divergences(np.vstack([g[0], g]), [[0, 1, 2], [3, 4]])
    assert weighted.global_divergence == pytest.approx(replicated.global_divergence, rel=1e-12)
    assert weighted.upward == pytest.approx(replicated.upward, rel=1e-12)
    assert weighted.downward == pytest.approx(replicated.downward, rel=1e-12)


def test_one_level_tree_is_local_sgd_and_identical_gradients_have_no_divergence():
    g = np.random.default_rng(0).normal(size=(4, 5))
    flat = measure_divergences(g, [0, 1, 2, 3])
    assert flat.levels == () and flat.upward == 0.0 and flat.downward == (flat.global_divergence,)
    assert flat.as_dict() == {"div_global": flat.global_divergence}
    same = measure_divergences(np.ones((4, 3)), [[0, 1], [2, 3]])
    assert same.global_divergence == same.upward == same.partition_residual == 0.0


def test_numpy_torch_and_per_worker_tensor_lists_agree():
    g = np.random.default_rng(1).normal(size=(6, 40)).astype(np.float32)
    a = measure_divergences(g, [[0, 1, 2], [3, 4, 5]])
    b = measure_divergences(torch.from_numpy(g), AggregationTree([[0, 1, 2], [3, 4, 5]], [4, 2]))
    c = measure_divergences([torch.from_numpy(row).requires_grad_() for row in g], [[0, 1, 2], [3, 4, 5]])
    assert a == b == c


@pytest.mark.parametrize(
    "grads, tree, weights, match",
    [
        (np.zeros((3, 2)), [[0, 1], [2, 3]], None, "grads has 3 rows but the tree has 4 workers"),
        (np.zeros(4), [[0, 1], [2, 3]], None, "grads must have 2 dimensions"),
        (np.full((4, 2), np.nan), [[0, 1], [2, 3]], None, "grads contains NaN or inf"),
        (np.zeros((4, 2)), [[0, 1], [2, 3]], [1, 1, 0, 1], "weights must all be > 0"),
        (np.zeros((4, 2)), [[0, 1], [2, 3]], [1, 1, 1], "weights has 3 entries but there are 4 workers"),
        (np.zeros((4, 2)), [[0, 1], [2, 2]], None, "duplicate"),
    ],
)
def test_measure_divergences_rejects_bad_input(grads, tree, weights, match):
    with pytest.raises(ValueError, match=match):
        measure_divergences(grads, tree, weights)


# ------------------------------------------------------------- Lemmas 1-3 by Monte Carlo


def _monte_carlo(grads: np.ndarray, branching: list[int], level: int, n_groupings: int, seed: int):
    """Per random grouping: (upward, mean downward, first server's downward) at ``level``."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_groupings):
        lv = measure_divergences(grads, random_equal_tree(branching, rng)).levels[level - 1]
        samples.append((lv.upward, lv.downward_mean, lv.downward[0]))
    return np.asarray(samples)


def _within_three_standard_errors(samples: np.ndarray, expected: float) -> bool:
    # dim = 64 keeps each divergence a sum over many coordinates, so its sample mean is
    # near-normal; in a 2-dim problem the skew makes 3 standard errors fail too often.
    standard_error = samples.std(ddof=1) / math.sqrt(len(samples))
    return abs(samples.mean() - expected) <= 3 * standard_error


def test_lemmas_1_and_2_hold_with_equality_at_the_measured_global_divergence():
    # n = 12 workers in N = 3 random groups of 4: E_S upward = (N-1)/(n-1) eps~^2 (13) and
    # E_S downward = (1 - (N-1)/(n-1)) eps~^2 (14), with eps~^2 the divergence at this model.
    grads = heterogeneous_grads(np.random.default_rng(7), 12, dim=64)
    eps2 = measure_divergences(grads, [list(range(12))]).global_divergence
    split = expected_random_split(eps2, n_workers=12, n_servers=3)
    assert split.upward_share == pytest.approx(2 / 11)
    samples = _monte_carlo(grads, [3, 4], level=1, n_groupings=1500, seed=11)
    assert _within_three_standard_errors(samples[:, 0], split.upward)
    assert _within_three_standard_errors(samples[:, 1], split.downward)
    assert _within_three_standard_errors(samples[:, 2], split.downward)  # each group alone too


def test_lemmas_1_and_2_sit_below_their_bound_when_eps2_bounds_several_models():
    # Assumption 2's eps~^2 bounds (9) at every model; at a model with a smaller divergence
    # the expected upward / downward divergences fall strictly below (13) / (14).
    rng = np.random.default_rng(8)
    calm, wild = heterogeneous_grads(rng, 12, 6), 3.0 * heterogeneous_grads(rng, 12, 6)
    eps2_bound = max(measure_divergences(g, [list(range(12))]).global_divergence for g in (calm, wild))
    bound = expected_random_split(eps2_bound, n_workers=12, n_servers=3)
    samples = _monte_carlo(calm, [3, 4], level=1, n_groupings=400, seed=12)
    for column, rhs in ((0, bound.upward), (1, bound.downward)):
        standard_error = samples[:, column].std(ddof=1) / math.sqrt(len(samples))
        assert samples[:, column].mean() + 3 * standard_error < rhs


def test_lemma_3_holds_with_equality_at_every_level():
    # N = (2, 2, 3): level 1 has n_1 = 2 servers, level 2 has n_2 = 4; (20) and (21).
    grads = heterogeneous_grads(np.random.default_rng(9), 12, dim=64)
    eps2 = measure_divergences(grads, [list(range(12))]).global_divergence
    for level, n_servers in ((1, 2), (2, 4)):
        split = expected_random_split(eps2, n_workers=12, n_servers=n_servers)
        samples = _monte_carlo(grads, [2, 2, 3], level=level, n_groupings=1000, seed=20 + level)
        assert _within_three_standard_errors(samples[:, 0], split.upward), level
        assert _within_three_standard_errors(samples[:, 2], split.downward), level  # one server, (21)


def test_random_equal_tree_deals_a_permutation_into_the_shape():
    tree = random_equal_tree([2, 2, 3], np.random.default_rng(0))
    assert [len(g) for g in tree] == [2, 2] and all(len(s) == 3 for g in tree for s in g)
    assert sorted(w for g in tree for s in g for w in s) == list(range(12))
    assert sorted(random_equal_tree([5], np.random.default_rng(1))) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n_servers=5 must divide n_workers=12"):
        expected_random_split(1.0, n_workers=12, n_servers=5)


# -------------------------------------------------------------------------- sigma^2


def test_sigma2_by_hand_with_and_without_the_full_gradient():
    # One worker, minibatch gradients (1, 0) and (3, 0), full gradient (2, 0):
    # with it: mean(1, 1) = 1; without: ((1)^2 + (1)^2) / (2 - 1) = 2.
    mb = np.array([[1.0, 0.0], [3.0, 0.0]])
    assert estimate_sigma2(mb, full_grads=np.array([2.0, 0.0])).per_worker == (1.0,)
    estimate = estimate_sigma2(mb)
    assert (estimate.per_worker, estimate.reference, estimate.n_minibatches) == ((2.0,), "sample mean", 2)


def test_sigma2_recovers_known_noise_and_reports_the_worst_worker():
    # Worker j draws grad F_j + N(0, s_j^2 I_d): E||g - grad F_j||^2 = d s_j^2.
    gen = torch.Generator().manual_seed(0)
    dim, K, scales = 20, 4000, torch.tensor([0.5, 1.0, 2.0])
    full = torch.randn(3, dim, generator=gen)
    mb = full[:, None, :] + scales[:, None, None] * torch.randn(3, K, dim, generator=gen)
    truth = (dim * scales**2).tolist()
    for estimate in (estimate_sigma2(mb, full), estimate_sigma2(mb)):
        assert estimate.per_worker == pytest.approx(truth, rel=0.03)
        assert estimate.sigma2 == max(estimate.per_worker)
        assert estimate.as_dict()["sigma2_mean"] == pytest.approx(sum(truth) / 3, rel=0.03)


def test_sigma2_rejects_too_few_minibatches_and_mismatched_shapes():
    with pytest.raises(ValueError, match="needs K >= 2"):
        estimate_sigma2(np.zeros((3, 1, 4)))
    with pytest.raises(ValueError, match=r"full_grads has shape \(2, 4\); expected \[n_workers, dim\] = \[3, 4\]"):
        estimate_sigma2(np.zeros((3, 2, 4)), np.zeros((2, 4)))
