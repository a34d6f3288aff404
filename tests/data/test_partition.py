"""Partition schemes: coverage, label skew, writers kept whole, determinism, bad arguments."""

import numpy as np
import pytest
import torch

from testbed.data import SCHEMES, label_counts, partition, total_variation

BALANCED = np.repeat(np.arange(10), 100)  # 10 classes x 100 samples
WRITERS = np.repeat(np.arange(25), 40)  # 25 writers x 40 samples


def _run(scheme, n_workers=10, seed=0, labels=BALANCED, **kw):
    if scheme == "natural":
        kw.setdefault("writers", WRITERS)
    return partition(labels, n_workers, scheme, np.random.default_rng(seed), **kw)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_index_exactly_once_and_no_empty_worker(scheme):
    parts = _run(scheme, n_workers=10)
    assert len(parts) == 10
    assert all(len(p) > 0 and p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(BALANCED)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_deterministic_by_seed(scheme):
    a, b, c = (
        _run(scheme, n_workers=7, seed=5),
        _run(scheme, n_workers=7, seed=5),
        _run(scheme, n_workers=7, seed=6),
    )
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_iid_sizes_differ_by_at_most_one():
    sizes = [len(p) for p in _run("iid", n_workers=7)]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("shards_per_worker", [1, 2, 5])
def test_shards_give_at_most_k_labels(shards_per_worker):
    # 10 workers x k shards of 100/k samples: shard borders fall on label borders
    parts = _run("shards", n_workers=10, shards_per_worker=shards_per_worker)
    for p in parts:
        assert len(p) == 100
        assert len(np.unique(BALANCED[p])) <= shards_per_worker


def test_shards_accept_a_torch_label_tensor():
    parts = partition(torch.from_numpy(BALANCED), 5, "shards", np.random.default_rng(0))
    assert sum(len(p) for p in parts) == 1000


def _mean_tv(parts):
    counts = label_counts([BALANCED[p] for p in parts], 10)
    return float(total_variation(counts, counts.sum(axis=0)).mean())


def test_dirichlet_small_alpha_is_skewed():
    skewed, flat = _mean_tv(_run("dirichlet", alpha=0.05)), _mean_tv(_run("dirichlet", alpha=100.0))
    assert skewed > 0.6 and flat < 0.1


def test_dirichlet_fills_empty_workers():
    # 200 workers, tiny alpha: many would be empty without the fix-up
    parts = _run("dirichlet", n_workers=200, alpha=0.01)
    assert min(len(p) for p in parts) >= 1
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(BALANCED)))


def test_natural_one_writer_per_worker_in_id_order():
    parts = _run("natural", n_workers=25)
    for w, p in enumerate(parts):
        assert np.all(WRITERS[p] == w) and len(p) == 40


def test_natural_several_writers_per_worker_kept_whole():
    parts = _run("natural", n_workers=4)
    seen = set()
    for p in parts:
        ws = set(np.unique(WRITERS[p]).tolist())
        assert len(ws) in (6, 7) and not ws & seen  # 25 writers dealt 7, 6, 6, 6
        assert len(p) == 40 * len(ws)  # every writer whole
        seen |= ws
    assert seen == set(range(25))


@pytest.mark.parametrize(
    "args, kw, word",
    [
        ((BALANCED, 10, "pathological"), {}, "scheme"),
        ((BALANCED, 0, "iid"), {}, "n_workers"),
        ((BALANCED, 1001, "iid"), {}, "n_workers"),
        ((BALANCED, 2.5, "iid"), {}, "n_workers"),
        ((BALANCED, 10, "shards"), {"shards_per_worker": 0}, "shards_per_worker"),
        ((BALANCED, 600, "shards"), {"shards_per_worker": 2}, "shards_per_worker"),
        ((BALANCED, 10, "dirichlet"), {"alpha": 0.0}, "alpha"),
        ((BALANCED, 10, "natural"), {}, "writers"),
        ((BALANCED, 10, "natural"), {"writers": WRITERS[:5]}, "writers"),
        ((BALANCED, 26, "natural"), {"writers": WRITERS}, "n_workers"),
        ((BALANCED.reshape(10, 100), 10, "iid"), {}, "labels"),
        ((BALANCED * 0.5, 10, "iid"), {}, "labels"),
    ],
)
def test_bad_arguments_name_the_argument(args, kw, word):
    with pytest.raises(ValueError, match=word):
        partition(*args, np.random.default_rng(0), **kw)


def test_rng_must_be_a_generator():
    with pytest.raises(ValueError, match="rng"):
        partition(BALANCED, 10, "iid", 0)
