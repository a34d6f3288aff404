"""Where each worker's data comes from: the dataset partitioned over the topology's
workers, then the partitions placed under the servers by the configured grouping."""

from __future__ import annotations

import dataclasses

import numpy as np


def federate(setup, seed: int):
    """Partition the dataset over the topology's workers, then place the partitions under
    the servers by the configured grouping strategy."""
    from testbed.data import group_workers, make_federated

    cfg = setup.config
    tree = setup.topology.tree
    try:
        federated = make_federated(
            setup.dataset, tree.n_workers, scheme=cfg.partition, seed=seed, device=str(setup.device),
            shards_per_worker=cfg.shards_per_worker, alpha=cfg.dirichlet_alpha,
        )
    except ValueError as err:  # the partition does not fit the data: say which data and key
        source = f"dataset {cfg.dataset}" + (f" ({cfg.data_root})" if cfg.data_root else "")
        raise ValueError(f"partition={cfg.partition} of {source} over {tree.n_workers} workers: {err}") from None
    largest = max(len(y) for _, y in federated.worker_data)
    if cfg.batch_size > largest:  # sampling a batch bigger than the data only repeats it, at great cost
        raise ValueError(f"batch_size: {cfg.batch_size} is more than the largest worker's {largest} samples; "
                         f"use at most {largest}, or 0 for each worker's full local set")
    if cfg.grouping == "as-given":
        return federated
    groups = tree.level(tree.n_levels - 1)
    labels = [y.cpu().numpy() for _, y in federated.worker_data]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    placed = group_workers(labels, [len(s.workers) for s in groups], cfg.grouping, rng, setup.dataset.num_classes)
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
