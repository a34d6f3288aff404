"""Segment means on stacked tensors: every kernel choice gives the plain weighted average."""

import numpy as np
import pytest
import torch

from testbed.engine.segments import Segments

CPU = torch.device("cpu")


def reference(t, segment, weight, n_segments):
    out = t.clone()
    for k in range(n_segments):
        members = np.flatnonzero(segment == k)
        if t.is_floating_point():
            avg = sum(float(weight[j]) * t[j] for j in members)
        else:
            avg = t[members].amax(0)
        out[members] = avg
    return out


@pytest.mark.parametrize("n_segments", [1, 3, 20], ids=["one", "gemm", "index_add"])
@pytest.mark.parametrize("per_worker", [(5,), (3, 1 << 15)], ids=["small", "run-copy"])
@pytest.mark.parametrize("layout", ["runs", "interleaved", "partial"])
def test_average_matches_the_weighted_mean(n_segments, per_worker, layout):
    rng = np.random.default_rng(0)
    n = 40
    if layout == "runs":  # subtrees as consecutive workers, as in tree order
        segment = np.sort(rng.integers(0, n_segments, n))
    else:
        segment = rng.integers(0, n_segments, n)
    if layout == "partial":
        segment[rng.random(n) < 0.3] = -1  # untouched workers
    weight = np.where(segment >= 0, rng.random(n), 0.0)
    t = torch.randn(n, *per_worker, generator=torch.Generator().manual_seed(1))
    expected = reference(t, segment, weight, n_segments)
    Segments(segment, weight, n_segments, CPU).average_(t)
    torch.testing.assert_close(t, expected, rtol=1e-5, atol=1e-5)


def test_integer_counters_take_the_max():
    segment = np.array([0, 0, 1, -1, 1])
    t = torch.tensor([3, 5, 2, 9, 4])
    Segments(segment, np.ones(5), 2, CPU).average_(t)
    assert t.tolist() == [5, 5, 4, 9, 4]


def test_reduce_gives_one_row_per_segment():
    t = torch.arange(12.0).view(4, 3)
    avg = Segments(np.zeros(4, np.int64), np.full(4, 0.25), 1, CPU).reduce(t)
    torch.testing.assert_close(avg, t.mean(0, keepdim=True))
