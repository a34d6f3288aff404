"""federate: a dataset partitioned over a tree's workers, then placed under its servers."""

import numpy as np
import pytest
import torch

from testbed.data import Dataset, federate, make_federated
from testbed.tree import AggregationTree

TREE = AggregationTree([[0, 1], [2, 3]], [4, 2])


def toy(n_per_class: int = 10) -> Dataset:
    y = torch.arange(4).repeat_interleave(n_per_class)  # four classes, sorted
    return Dataset("toy", torch.randn(len(y), 3, generator=torch.Generator().manual_seed(0)), y, None, None, 4)


def test_as_given_is_the_partition_itself():
    placed = federate(toy(), TREE, seed=2, partition="shards", shards_per_worker=1)
    plain = make_federated(toy(), 4, scheme="shards", seed=2, shards_per_worker=1)
    assert [torch.equal(a[1], b[1]) for a, b in zip(placed.worker_data, plain.worker_data)] == [True] * 4


def test_group_noniid_puts_one_label_under_each_server():
    # 8 workers with one class each, two workers per class, four servers of two workers:
    # the partitions move (each worker keeps one whole class) so each server holds one class
    tree = AggregationTree([[0, 1], [2, 3], [4, 5], [6, 7]], [4, 2])
    kwargs = dict(partition="shards", shards_per_worker=1, grouping="group-noniid")
    placed = federate(toy(), tree, seed=0, **kwargs)
    classes = [set(y.tolist()) for _, y in placed.worker_data]
    assert [classes[w] | classes[w + 1] for w in range(0, 8, 2)] == [{0}, {1}, {2}, {3}]
    given = federate(toy(), tree, seed=0, partition="shards", shards_per_worker=1)
    assert sorted(map(tuple, placed.indices), key=str) == sorted(map(tuple, given.indices), key=str)
    again = federate(toy(), tree, seed=0, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(placed.indices, again.indices))  # deterministic by seed


def test_refusals_name_the_key():
    with pytest.raises(ValueError, match="batch_size: 11 is more than the largest worker's 10 samples"):
        federate(toy(), TREE, seed=0, partition="shards", shards_per_worker=1, batch_size=11)
    with pytest.raises(ValueError, match="partition=natural of dataset toy over 4 workers"):
        federate(toy(), TREE, seed=0, partition="natural")
    with pytest.raises(ValueError, match=r"partition=natural of dataset npz \(toy.npz\) over 4 workers"):
        federate(toy(), TREE, seed=0, partition="natural", source="dataset npz (toy.npz)")
