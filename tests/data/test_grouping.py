"""Grouping strategies: group-iid groups match the global label mix, group-noniid groups do not."""

import numpy as np
import pytest

from testbed.data import STRATEGIES, group_workers, partition, partition_summary

LABELS = np.repeat(np.arange(10), 200)


def _workers(scheme="shards", n_workers=40, seed=0, **kw):
    parts = partition(LABELS, n_workers, scheme, np.random.default_rng(seed), **kw)
    return [LABELS[p] for p in parts]


def _group_tv(worker_labels, groups) -> np.ndarray:
    df = partition_summary(worker_labels, 10, groups)
    return df.loc[df.kind == "group", "tv_to_global"].to_numpy()


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("sizes", [[10, 10, 10, 10], [4, 8, 12, 16]])
def test_every_worker_in_exactly_one_group_of_the_given_size(strategy, sizes):
    groups = group_workers(_workers(), sizes, strategy, np.random.default_rng(0), 10)
    assert [len(g) for g in groups] == sizes
    assert sorted(w for g in groups for w in g) == list(range(40))


def test_as_given_is_consecutive():
    groups = group_workers(_workers(n_workers=6), [1, 3, 2], "as-given", np.random.default_rng(0), 10)
    assert groups == [[0], [1, 2, 3], [4, 5]]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_by_seed(strategy):
    wl = _workers()
    a = group_workers(wl, [10] * 4, strategy, np.random.default_rng(3), 10)
    b = group_workers(wl, [10] * 4, strategy, np.random.default_rng(3), 10)
    assert a == b


def test_group_iid_small_and_group_noniid_large_divergence_shards():
    # Sorted-label shards, 2 labels per worker: every group could be anything from one
    # label pair to the global mix; the strategies must land at the two ends.
    wl = _workers()
    rng = np.random.default_rng(1)
    tv = {
        s: _group_tv(wl, group_workers(wl, [10] * 4, s, rng, 10))
        for s in ("random", "group-iid", "group-noniid")
    }
    assert tv["group-iid"].max() <= 0.05
    assert tv["group-noniid"].min() >= 0.35
    assert tv["group-noniid"].mean() > 5 * max(tv["group-iid"].mean(), 0.02)
    assert tv["group-iid"].mean() < tv["random"].mean() < tv["group-noniid"].mean()


def test_group_iid_reaches_the_shard_granularity_bound_with_unequal_sizes():
    # A group of k two-shard workers holds 2k shards over 10 labels; its mix can be no
    # closer to uniform than the best integer spread: TV 0.2, 0.15, 0.1, 0.05 for k = 4, 8, 12, 16.
    wl = _workers()
    tv = _group_tv(wl, group_workers(wl, [4, 8, 12, 16], "group-iid", np.random.default_rng(2), 10))
    assert np.allclose(tv, [0.2, 0.15, 0.1, 0.05], atol=0.051)
    tv_non = _group_tv(wl, group_workers(wl, [4, 8, 12, 16], "group-noniid", np.random.default_rng(2), 10))
    assert np.all(tv_non > tv + 0.2)


def test_group_iid_and_noniid_on_dirichlet_workers():
    wl = _workers("dirichlet", n_workers=50, alpha=0.3)
    rng = np.random.default_rng(4)
    iid = _group_tv(wl, group_workers(wl, [10] * 5, "group-iid", rng, 10))
    non = _group_tv(wl, group_workers(wl, [10] * 5, "group-noniid", rng, 10))
    assert iid.max() < 0.1 and non.min() > 0.3


@pytest.mark.parametrize(
    "sizes, strategy, word",
    [
        ([10, 10], "random", "group_sizes"),
        ([40, 0], "random", "group_sizes"),
        ([], "random", "group_sizes"),
        ([20, 20], "by-label", "strategy"),
    ],
)
def test_bad_arguments_name_the_argument(sizes, strategy, word):
    with pytest.raises(ValueError, match=word):
        group_workers(_workers(), sizes, strategy, np.random.default_rng(0), 10)


def test_labels_outside_num_classes_are_refused():
    with pytest.raises(ValueError, match="worker_labels"):
        group_workers([np.array([0, 12])], [1], "random", np.random.default_rng(0), 10)
