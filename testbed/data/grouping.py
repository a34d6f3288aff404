"""Assign workers to local servers (groups): as given, random, group-IID, group-non-IID.

Wang et al. 2022 show that what local aggregation buys depends on the upward divergence
(how far each group's average gradient is from the global one). With label-skewed
workers, grouping controls it: groups whose label mix matches the global mix
(``group-iid``) have small upward divergence; groups split by label (``group-noniid``)
have large upward divergence. Both are found by a greedy start plus pairwise swaps that
lower (or raise) the summed label-mix distance of the groups to the global mix; swaps
keep every group's size, so unequal sizes are honoured exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from testbed.data.summary import label_counts

logger = logging.getLogger(__name__)

STRATEGIES: tuple[str, ...] = ("as-given", "random", "group-iid", "group-noniid")

MAX_PASSES = 30  # swap passes over all workers; the search usually settles in a few
MAX_CANDIDATES = 512  # swap partners tried per worker and pass, so big populations stay fast


def group_workers(
    worker_labels: Sequence[np.ndarray],
    group_sizes: Sequence[int],
    strategy: str,
    rng: np.random.Generator,
    num_classes: int,
) -> list[list[int]]:
    """Worker indices per group; ``group_sizes[g]`` workers go to group g.

    - ``as-given``: consecutive workers, in index order (the topology's own grouping).
    - ``random``: a uniformly random assignment.
    - ``group-iid``: every group's label mix close to the global mix.
    - ``group-noniid``: groups split by label, their mixes far from the global mix.
    """
    counts = label_counts(worker_labels, num_classes)
    sizes = _check_sizes(group_sizes, len(counts))
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    if strategy == "as-given":
        order = np.arange(len(counts))
        group_of = _cut(order, sizes)
    elif strategy == "random":
        group_of = _cut(rng.permutation(len(counts)), sizes)
    elif strategy == "group-iid":
        group_of = _deal(_by_label(counts, rng), sizes)
        _swap_search(counts, group_of, minimise=True, rng=rng)
    elif strategy == "group-noniid":
        group_of = _cut(_by_label(counts, rng), sizes)
        _swap_search(counts, group_of, minimise=False, rng=rng)
    else:
        raise ValueError(
            f"strategy: unknown grouping strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}"
        )
    groups = [np.flatnonzero(group_of == g).tolist() for g in range(len(sizes))]
    logger.debug("group_workers %s: sizes %s", strategy, [len(g) for g in groups])
    return groups


def _check_sizes(group_sizes: Sequence[int], n_workers: int) -> np.ndarray:
    sizes = list(group_sizes) if not isinstance(group_sizes, (str, bytes)) else []
    if not sizes or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise ValueError(f"group_sizes must be a non-empty list of positive ints, got {group_sizes!r}")
    if sum(sizes) != n_workers:
        raise ValueError(
            f"group_sizes sum to {sum(sizes)} but there are {n_workers} workers; they must be equal"
        )
    return np.asarray(sizes, dtype=np.int64)


def _cut(order: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Consecutive runs of ``order`` go to groups 0, 1, ... with the given sizes."""
    group_of = np.empty(len(order), dtype=np.int64)
    for g, chunk in enumerate(np.split(order, np.cumsum(sizes)[:-1])):
        group_of[chunk] = g
    return group_of


def _deal(order: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Deal ``order`` out like cards, each next worker to the group that is least full
    relative to its size, so every group gets workers from every part of the order."""
    group_of = np.empty(len(order), dtype=np.int64)
    filled = np.zeros(len(sizes), dtype=np.int64)
    for w in order:
        open_ = filled < sizes
        g = int(np.argmin(np.where(open_, filled / sizes, np.inf)))
        group_of[w] = g
        filled[g] += 1
    return group_of


def _by_label(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Workers ordered by their main label, then by their mean label; random among equals."""
    totals = np.maximum(counts.sum(axis=1), 1)
    mean_label = (counts * np.arange(counts.shape[1])).sum(axis=1) / totals
    tiebreak = rng.permutation(len(counts))
    return np.lexsort((tiebreak, mean_label, counts.argmax(axis=1)))


def _swap_search(
    counts: np.ndarray, group_of: np.ndarray, *, minimise: bool, rng: np.random.Generator
) -> None:
    """Swap pairs of workers between groups while the summed TV distance of the groups'
    label mixes to the global mix goes down (``minimise``) or up; edits ``group_of``."""
    n_groups = int(group_of.max()) + 1
    if n_groups < 2:
        return
    counts = counts.astype(np.float64)
    ref = counts.sum(axis=0) / counts.sum()
    group_counts = np.zeros((n_groups, counts.shape[1]))
    np.add.at(group_counts, group_of, counts)
    sign = 1.0 if minimise else -1.0

    def tv(mat: np.ndarray) -> np.ndarray:
        return 0.5 * np.abs(mat / np.maximum(mat.sum(axis=-1, keepdims=True), 1e-12) - ref).sum(axis=-1)

    for _ in range(MAX_PASSES):
        improved = False
        for i in rng.permutation(len(counts)):
            g = group_of[i]
            cand = np.flatnonzero(group_of != g)
            if len(cand) > MAX_CANDIDATES:
                cand = rng.choice(cand, MAX_CANDIDATES, replace=False)
            h = group_of[cand]
            diff = counts[cand] - counts[i]  # group g gains worker j and loses i; group h the reverse
            before = tv(group_counts[g]) + tv(group_counts[h])
            after = tv(group_counts[g] + diff) + tv(group_counts[h] - diff)
            gain = sign * (after - before)
            k = int(np.argmin(gain))
            if gain[k] < -1e-12:
                j, hk = cand[k], h[k]
                group_counts[g] += diff[k]
                group_counts[hk] -= diff[k]
                group_of[i], group_of[j] = hk, g
                improved = True
        if not improved:
            return
