"""Split a training set over workers: iid, label shards, Dirichlet(alpha), natural (by writer).

Every scheme returns one sorted int64 array of train-sample indices per worker; each
index appears exactly once over all workers, and no worker is empty. Randomness comes
only from the ``rng`` passed in.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

SCHEMES: tuple[str, ...] = ("iid", "shards", "dirichlet", "natural")


def partition(
    labels: np.ndarray | Sequence[int],
    n_workers: int,
    scheme: str,
    rng: np.random.Generator,
    *,
    shards_per_worker: int = 2,
    alpha: float = 0.5,
    writers: np.ndarray | Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Indices of the train samples each of ``n_workers`` workers holds.

    - ``iid``: a random permutation cut into near-equal parts.
    - ``shards``: the papers' sorted-label split (McMahan et al. 2017; Wang et al. 2022):
      sort by label, cut into ``n_workers * shards_per_worker`` equal shards, give each
      worker ``shards_per_worker`` shards at random. A worker sees at most
      ``shards_per_worker`` labels when class sizes are multiples of the shard size
      (otherwise a shard can straddle two labels).
    - ``dirichlet``: for each class, proportions over workers ~ Dirichlet(alpha); small
      alpha = skewed label mixes. A worker left empty takes one sample from the largest.
    - ``natural``: whole writers per worker (``writers`` gives each sample's writer). With
      as many workers as writers, worker i holds the i-th writer (ids sorted); with fewer,
      writers are shuffled and dealt out in near-equal numbers.
    """
    y = _check_labels(labels)
    n = len(y)
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    if n_workers > n:
        raise ValueError(
            f"n_workers ({n_workers}) exceeds the number of samples ({n}); every worker needs one"
        )
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    if scheme == "iid":
        parts = np.array_split(rng.permutation(n), n_workers)
    elif scheme == "shards":
        parts = _shards(y, n_workers, shards_per_worker, rng)
    elif scheme == "dirichlet":
        parts = _dirichlet(y, n_workers, alpha, rng)
    elif scheme == "natural":
        parts = _natural(n, n_workers, writers, rng)
    else:
        raise ValueError(f"scheme: unknown partition scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    out = [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    logger.debug("partition %s: %d workers, sizes %s", scheme, n_workers, [len(p) for p in out])
    return out


def _check_labels(labels: np.ndarray | Sequence[int]) -> np.ndarray:
    if hasattr(labels, "detach"):  # a torch tensor: accept it without importing torch here
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) == 0 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(
            f"labels must be a non-empty 1-D array of non-negative ints, got shape {y.shape} {y.dtype}"
        )
    return y


def _shards(
    y: np.ndarray, n_workers: int, shards_per_worker: int, rng: np.random.Generator
) -> list[np.ndarray]:
    if (
        isinstance(shards_per_worker, bool)
        or not isinstance(shards_per_worker, (int, np.integer))
        or shards_per_worker < 1
    ):
        raise ValueError(f"shards_per_worker must be a positive int, got {shards_per_worker!r}")
    n_shards = n_workers * shards_per_worker
    if n_shards > len(y):
        raise ValueError(
            f"shards_per_worker: {n_workers} workers x {shards_per_worker} shards = {n_shards} shards "
            f"but there are only {len(y)} samples"
        )
    # A stable sort of a random permutation: samples sorted by label, in random order
    # within each label, so which samples of a label share a shard is random too.
    perm = rng.permutation(len(y))
    by_label = perm[np.argsort(y[perm], kind="stable")]
    shards = np.array_split(by_label, n_shards)
    deal = rng.permutation(n_shards)
    return [
        np.concatenate([shards[s] for s in deal[w * shards_per_worker : (w + 1) * shards_per_worker]])
        for w in range(n_workers)
    ]


def _dirichlet(y: np.ndarray, n_workers: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"alpha must be a number > 0 (Dirichlet concentration), got {alpha!r}")
    owner = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        share = rng.dirichlet(np.full(n_workers, float(alpha)))
        # cumulative cut points: class c's samples split in the drawn proportions
        cuts = np.round(np.cumsum(share)[:-1] * len(idx)).astype(np.int64)
        for w, part in enumerate(np.split(idx, cuts)):
            owner[part] = w
    sizes = np.bincount(owner, minlength=n_workers)
    # Small alpha can leave a worker with nothing; it takes one random sample from the
    # currently largest worker (deterministic given rng, and always terminates).
    for w in np.flatnonzero(sizes == 0):
        donor = int(np.argmax(sizes))
        moved = rng.choice(np.flatnonzero(owner == donor))
        owner[moved] = w
        sizes[donor] -= 1
        sizes[w] += 1
    order = np.argsort(owner, kind="stable")
    return np.split(order, np.cumsum(sizes)[:-1])


def _natural(
    n: int, n_workers: int, writers: np.ndarray | Sequence[int] | None, rng: np.random.Generator
) -> list[np.ndarray]:
    if writers is None:
        raise ValueError(
            "writers: the natural partition needs each sample's writer id (Dataset.writers), got None"
        )
    ids = np.asarray(writers)
    if ids.shape != (n,):
        raise ValueError(f"writers must have one id per sample ({n}), got shape {ids.shape}")
    uniq, inverse = np.unique(ids, return_inverse=True)
    if n_workers > len(uniq):
        raise ValueError(
            f"n_workers ({n_workers}) exceeds the number of writers ({len(uniq)}); the natural "
            f"partition keeps every writer whole, so use at most {len(uniq)} workers"
        )
    if n_workers == len(uniq):
        owner_of_writer = np.arange(len(uniq))
    else:
        owner_of_writer = np.empty(len(uniq), dtype=np.int64)
        for w, chunk in enumerate(np.array_split(rng.permutation(len(uniq)), n_workers)):
            owner_of_writer[chunk] = w
    owner = owner_of_writer[inverse]
    return [np.flatnonzero(owner == w) for w in range(n_workers)]
