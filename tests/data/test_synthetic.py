"""FedProx Synthetic(alpha, beta): shapes, the device split, heterogeneity, determinism."""

import numpy as np
import pytest
import torch

from testbed.data import load_dataset, total_variation
from testbed.data.summary import label_counts


def _device_tv(ds) -> float:
    """Mean label-mix distance of the devices to the global mix."""
    y = ds.y_train.numpy()
    counts = label_counts([y[ds.writers == k] for k in np.unique(ds.writers)], ds.num_classes)
    return float(np.nanmean(total_variation(counts, counts.sum(axis=0))))


def test_shapes_and_natural_split():
    ds = load_dataset("synthetic", n_workers=12, seed=3)
    assert ds.name == "synthetic" and ds.num_classes == 10
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape[1:] == (60,)
    assert ds.y_train.dtype == torch.int64 and int(ds.y_train.max()) < 10
    assert ds.x_test is not None and len(ds.x_test) == len(ds.y_test) == len(ds.test_writers)
    assert set(np.unique(ds.writers)) == set(range(12)) == set(np.unique(ds.test_writers))
    # FedProx's per-device 90/10 split: each device's test share is about 10%
    for k in range(12):
        n_tr, n_te = (ds.writers == k).sum(), (ds.test_writers == k).sum()
        assert n_te == (n_tr + n_te) - int(0.9 * (n_tr + n_te))


def test_default_is_a_few_thousand_samples_and_caps_devices():
    ds = load_dataset("synthetic")
    total = len(ds.y_train) + len(ds.y_test)
    assert 1500 <= total <= 30 * 1000
    per_device = np.bincount(ds.writers) + np.bincount(ds.test_writers)
    assert per_device.min() >= 50 and per_device.max() <= 1000


def test_deterministic_by_seed():
    a, b = load_dataset("synthetic", seed=7), load_dataset("synthetic", seed=7)
    c = load_dataset("synthetic", seed=8)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert np.array_equal(a.writers, b.writers)
    assert a.x_train.shape != c.x_train.shape or not torch.equal(a.x_train, c.x_train)


def test_heterogeneity_grows_with_alpha_beta():
    # Synthetic-IID (one model, one input law) vs Synthetic(1, 1): devices' label mixes
    # are far more skewed when each device has its own model and inputs.
    iid = load_dataset("synthetic", iid=True, n_workers=20, max_samples=300, seed=1)
    het = load_dataset("synthetic", alpha=1.0, beta=1.0, n_workers=20, max_samples=300, seed=1)
    assert _device_tv(het) > _device_tv(iid) + 0.15


@pytest.mark.parametrize(
    "options, word",
    [
        ({"n_workers": 0}, "n_workers"),
        ({"alpha": -1.0}, "alpha"),
        ({"beta": float("nan")}, "beta"),
        ({"min_samples": 1}, "min_samples"),
        ({"max_samples": 10}, "max_samples"),
        ({"test_fraction": 0.7}, "test_fraction"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_options(options, word):
    with pytest.raises(ValueError, match=word):
        load_dataset("synthetic", **options)
