"""Smoke tests on the real files in ../shared/data (skipped when absent): counts, shapes, labels."""

import numpy as np
import torch

from testbed.data import load_dataset, make_federated


def _check_normalised(x: torch.Tensor) -> None:
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    assert mean.abs().max() < 0.02 and (std - 1).abs().max() < 0.02


def test_mnist(shared_data):
    ds = load_dataset("mnist", root=shared_data, download=False)  # reads the .gz files in place
    assert ds.x_train.shape == (60_000, 1, 28, 28) and ds.x_test.shape == (10_000, 1, 28, 28)
    assert np.bincount(ds.y_train.numpy()).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    _check_normalised(ds.x_train)


def test_cifar10_npz(shared_data):
    ds = load_dataset("npz", path=shared_data / "cifar10" / "cifar10.npz")
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.shape == (50_000, 3, 32, 32) and ds.x_test.shape == (10_000, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert np.bincount(ds.y_train.numpy()).tolist() == [5000] * 10
    assert ds.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # the official order
    assert ds.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    _check_normalised(ds.x_train)  # published CIFAR-10 stats on the JPEG copy: close to 0 / 1


def test_femnist(shared_data):
    ds = load_dataset("femnist", root=shared_data)
    assert ds.x_train.shape == (14_708, 1, 28, 28) and len(ds.y_test) == 1_685
    assert ds.num_classes == 62 and len(np.unique(ds.y_train.numpy())) == 62
    assert len(np.unique(ds.writers)) == 105 and set(np.unique(ds.test_writers)) <= set(range(105))
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert ds.x_train.mean() > 0.5  # LEAF's convention: white background ~1.0
    fed = make_federated(ds, 105, scheme="natural")
    sizes = fed.sizes()
    assert sum(sizes) == 14_708 and min(sizes) == 4 and max(sizes) == 165
