"""Label mixes of workers and groups, and the partition summary table.

The label-mix distance used throughout is the total variation distance between a
worker's (or group's) label distribution and the global one,
``TV(p, q) = 0.5 * sum_c |p_c - q_c|`` in [0, 1]: 0 = the same mix as the whole dataset,
1 = no label in common. It is a cheap, model-free proxy for the gradient divergences of
Wang et al. 2022: label skew between groups drives the upward divergence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def label_counts(worker_labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """[n_workers, num_classes] int64 matrix of how many samples of each label each worker holds."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if len(worker_labels) == 0:
        raise ValueError("worker_labels must hold one label array per worker, got an empty list")
    rows = []
    for w, labels in enumerate(worker_labels):
        y = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
        if y.ndim != 1 or (
            y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes)
        ):
            raise ValueError(
                f"worker_labels[{w}] must be a 1-D array of ints in 0 .. num_classes - 1 = {num_classes - 1}"
            )
        rows.append(np.bincount(y.astype(np.int64), minlength=num_classes))
    return np.stack(rows).astype(np.int64)


def total_variation(counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """TV distance of each row of ``counts`` (label counts or mixes) to ``reference``'s mix.

    Rows are normalised to distributions first; an empty row has no mix and gives NaN.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref / ref.sum()
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mix = counts / totals
    return 0.5 * np.abs(mix - ref).sum(axis=1)


def partition_summary(
    worker_labels: Sequence[np.ndarray],
    num_classes: int,
    groups: Sequence[Sequence[int]] | None = None,
) -> pd.DataFrame:
    """One row per worker, then (if ``groups`` is given) one row per group.

    Columns: ``kind`` ("worker" / "group"), ``id`` (worker or group index), ``group`` (the
    worker's group, -1 without groups; the group's own index on group rows), ``samples``,
    ``n_labels`` (labels present), ``tv_to_global`` (label-mix distance to the global mix),
    ``workers`` (1 on worker rows, group size on group rows), then ``label_0`` ..
    ``label_{C-1}`` sample counts.
    """
    counts = label_counts(worker_labels, num_classes)
    total = counts.sum(axis=0)
    if total.sum() == 0:
        raise ValueError("worker_labels: every worker is empty; there is nothing to summarise")
    group_of = np.full(len(counts), -1, dtype=np.int64)
    if groups is not None:
        group_of = _group_index(groups, len(counts))
    label_cols = [f"label_{c}" for c in range(num_classes)]

    def rows(
        kind: str, ids: np.ndarray, group: np.ndarray, size: np.ndarray, mat: np.ndarray
    ) -> pd.DataFrame:
        df = pd.DataFrame(
            {
                "kind": kind,
                "id": ids,
                "group": group,
                "samples": mat.sum(axis=1),
                "n_labels": (mat > 0).sum(axis=1),
                "tv_to_global": total_variation(mat, total),
                "workers": size,
            }
        )
        return pd.concat([df, pd.DataFrame(mat, columns=label_cols)], axis=1)

    n = len(counts)
    parts = [rows("worker", np.arange(n), group_of, np.ones(n, dtype=np.int64), counts)]
    if groups is not None:
        g = np.arange(len(groups))
        group_counts = np.stack([counts[list(members)].sum(axis=0) for members in groups])
        parts.append(rows("group", g, g, np.array([len(m) for m in groups]), group_counts))
    return pd.concat(parts, ignore_index=True)


def _group_index(groups: Sequence[Sequence[int]], n_workers: int) -> np.ndarray:
    """Each worker's group; refuses groups that are not a partition of 0 .. n_workers - 1."""
    group_of = np.full(n_workers, -1, dtype=np.int64)
    for g, members in enumerate(groups):
        if len(members) == 0:
            raise ValueError(f"groups[{g}] is empty; every group needs at least one worker")
        for w in members:
            if not isinstance(w, (int, np.integer)) or not 0 <= w < n_workers:
                raise ValueError(f"groups[{g}] holds {w!r}, not a worker index in 0 .. {n_workers - 1}")
            if group_of[w] != -1:
                raise ValueError(f"groups: worker {w} appears in groups {group_of[w]} and {g}")
            group_of[w] = g
    missing = np.flatnonzero(group_of == -1)
    if len(missing):
        raise ValueError(f"groups: workers {missing.tolist()} are in no group; every worker needs one")
    return group_of
