"""Where each worker's data comes from: the dataset partitioned over a tree's workers,
then the partitions placed under its servers by a grouping strategy."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from testbed.data.dataset import Dataset
from testbed.data.federated import FederatedData, make_federated
from testbed.data.grouping import group_workers
from testbed.tree import AggregationTree


def federate(dataset: Dataset, tree: AggregationTree, seed: int, *, partition: str = "iid", grouping: str = "as-given",
             batch_size: int = 0, device: str | torch.device = "cpu", shards_per_worker: int = 2,
             dirichlet_alpha: float = 0.5, source: str = "") -> FederatedData:
    """Partition ``dataset`` over the tree's workers (:func:`make_federated`), then place
    the partitions under its bottom servers by ``grouping`` (:func:`group_workers`).
    Raises ValueError when the partition does not fit the data (naming it as ``source``,
    default its name) or ``batch_size`` (0: each worker's full local set) is more than the
    largest worker holds."""
    try:
        federated = make_federated(dataset, tree.n_workers, scheme=partition, seed=seed, device=device,
                                   shards_per_worker=shards_per_worker, alpha=dirichlet_alpha)
    except ValueError as err:  # the partition does not fit the data: say which data and key
        source = source or f"dataset {dataset.name}"
        raise ValueError(f"partition={partition} of {source} over {tree.n_workers} workers: {err}") from None
    largest = max(len(y) for _, y in federated.worker_data)
    if batch_size > largest:  # sampling a batch bigger than the data only repeats it, at great cost
        raise ValueError(f"batch_size: {batch_size} is more than the largest worker's {largest} samples; "
                         f"use at most {largest}, or 0 for each worker's full local set")
    if grouping == "as-given":
        return federated
    groups = tree.level(tree.n_levels - 1)
    labels = [y.cpu().numpy() for _, y in federated.worker_data]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    placed = group_workers(labels, [len(s.workers) for s in groups], grouping, rng, dataset.num_classes)
    order = [p for group in placed for p in group]  # worker slot k (tree order) gets partition order[k]
    slots = [w for s in groups for w in s.workers]
    placement = [0] * tree.n_workers
    for slot, part in zip(slots, order):
        placement[slot] = part
    return dataclasses.replace(
        federated,
        worker_data=[federated.worker_data[p] for p in placement],
        indices=None if federated.indices is None else [federated.indices[p] for p in placement],
    )
