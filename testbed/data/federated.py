"""A dataset split over workers, on the device: what ``testbed.simulate`` trains on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from testbed.data.dataset import Dataset
from testbed.data.partition import partition
from testbed.device import resolve_device
from testbed.data.summary import partition_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # eq=False: tensors do not compare to a single bool
class FederatedData:
    """Per-worker train data plus a shared test set."""

    worker_data: list[tuple[torch.Tensor, torch.Tensor]]  # (x, y) per worker, on the device
    test_data: tuple[torch.Tensor, torch.Tensor] | None  # (x, y) on the device, or None
    num_classes: int
    name: str
    input_shape: tuple[int, ...]  # shape of one sample, e.g. (3, 32, 32)
    indices: list[np.ndarray] | None = None  # each worker's indices into the source train split

    def __post_init__(self) -> None:
        if not self.worker_data:
            raise ValueError("worker_data must hold one (x, y) pair per worker, got none")
        for w, pair in enumerate(self.worker_data):
            if len(pair) != 2 or len(pair[0]) != len(pair[1]):
                raise ValueError(f"worker_data[{w}] must be an (x, y) pair with as many x as y")

    @property
    def n_workers(self) -> int:
        return len(self.worker_data)

    def sizes(self) -> list[int]:
        """Samples per worker."""
        return [len(y) for _, y in self.worker_data]

    def labels_per_worker(self) -> list[np.ndarray]:
        """Each worker's labels as a CPU numpy array (for partition_summary and group_workers)."""
        return [y.detach().cpu().numpy() for _, y in self.worker_data]

    def summary(self, groups: Sequence[Sequence[int]] | None = None) -> pd.DataFrame:
        """:func:`partition_summary` of this split."""
        return partition_summary(self.labels_per_worker(), self.num_classes, groups)


def make_federated(
    ds: Dataset,
    n_workers: int,
    scheme: str = "iid",
    seed: int = 0,
    device: str | torch.device = "cpu",
    **partition_options: Any,
) -> FederatedData:
    """Partition ``ds``'s train split over ``n_workers`` and move everything to ``device``.

    ``partition_options`` go to :func:`partition` (``shards_per_worker``, ``alpha``,
    ``writers``); for ``scheme="natural"`` the dataset's own ``writers`` are used unless
    given. ``device="auto"`` picks CUDA when available. The split depends only on ``seed``.
    """
    if not isinstance(ds, Dataset):
        raise ValueError(f"ds must be a testbed.data.Dataset (from load_dataset), got {type(ds).__name__}")
    allowed = {"shards_per_worker", "alpha", "writers"}
    unknown = sorted(set(partition_options) - allowed)
    if unknown:
        raise ValueError(
            f"partition_options: unknown {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    if scheme == "natural" and partition_options.get("writers") is None:
        if ds.writers is None:
            raise ValueError(
                f"scheme: 'natural' needs writers, and dataset {ds.name!r} has none; pass writers="
            )
        partition_options["writers"] = ds.writers
    dev = resolve_device(device)
    # The partition's own Generator, derived from the seed alone, so the split is the same
    # whatever else the caller seeds.
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    parts = partition(ds.y_train.numpy(), n_workers, scheme, rng, **partition_options)
    worker_data = []
    for idx in parts:
        sel = torch.from_numpy(idx)
        worker_data.append((ds.x_train[sel].to(dev), ds.y_train[sel].to(dev)))
    test = None if ds.x_test is None or ds.y_test is None else (ds.x_test.to(dev), ds.y_test.to(dev))
    fed = FederatedData(worker_data, test, ds.num_classes, ds.name, ds.input_shape, parts)
    logger.debug("%s split %s over %d workers (seed %d) on %s", ds.name, scheme, n_workers, seed, dev)
    return fed
