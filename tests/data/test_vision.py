"""MNIST and CIFAR-10 in torchvision's layouts (fake files written here), npz, and the offline error."""

import gzip
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision

from testbed.data import CHANNEL_STATS, DatasetUnavailable, load_dataset
from testbed.data.vision import MNIST_FILES

# ----------------------------------------------------------------------------- fakes


def _idx_bytes(arr: np.ndarray) -> bytes:
    # idx header: 0, 0, type 0x08 (ubyte), ndim, then big-endian uint32 dims
    return (
        bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    )


def write_fake_mnist(root: Path, n_train=20, n_test=8, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for name, arr in zip(MNIST_FILES[split], (images, labels), strict=True):
            payload = _idx_bytes(arr)
            if gz:
                with gzip.open(raw / (name + ".gz"), "wb") as f:
                    f.write(payload)
            else:
                (raw / name).write_bytes(payload)
        data[split] = (images, labels)
    return data


def write_fake_cifar(root: Path, n_per_batch=4, seed=0):
    """CIFAR-10's python pickles: data [n, 3072] uint8 in CHW row order, labels a list."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    chw = {}
    for name in (
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ):
        images = rng.integers(0, 256, (n_per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, n_per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.reshape(n_per_batch, -1), "labels": labels}, f)
        chw[name] = (images, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return chw


@pytest.fixture
def genuine_cifar(monkeypatch):
    # Our fake batches cannot have the official md5s; pretend they passed, as a real copy would.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)


# ----------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_torchvision_layout(tmp_path, gz):
    data = write_fake_mnist(tmp_path, gz=gz)
    ds = load_dataset("mnist", root=tmp_path, download=False)
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (8, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert np.array_equal(ds.y_train.numpy(), data["train"][1])
    mean, std = CHANNEL_STATS["mnist"]
    expected = (data["train"][0][3, 5, 7] / 255.0 - mean[0]) / std[0]
    assert ds.x_train[3, 0, 5, 7].item() == pytest.approx(expected, abs=1e-6)


def test_mnist_fake_files_are_what_torchvision_reads(tmp_path):
    data = write_fake_mnist(tmp_path)
    tv = torchvision.datasets.MNIST(str(tmp_path), train=False, download=False)
    assert np.array_equal(tv.data.numpy(), data["test"][0])


def test_mnist_offline_error_names_directory_and_files(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("mnist", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert name in msg
    assert isinstance(err.value, ValueError)


def test_mnist_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    def offline(self):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DatasetUnavailable, match="download failed"):
        load_dataset("mnist", root=tmp_path)


def test_default_cache_dir_from_env(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "cache")
    monkeypatch.setenv("TESTBED_DATA", str(tmp_path / "cache"))
    assert len(load_dataset("mnist", download=False).y_train) == 20


# ----------------------------------------------------------------------------- CIFAR-10


def test_cifar10_reads_torchvision_layout(tmp_path, genuine_cifar):
    chw = write_fake_cifar(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.y_train.tolist() == sum((chw[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    mean, std = CHANNEL_STATS["cifar10"]
    pixel = chw["data_batch_2"][0][1, 2, 10, 20]  # batch 2, image 1, blue channel
    assert ds.x_train[5, 2, 10, 20].item() == pytest.approx((pixel / 255 - mean[2]) / std[2], abs=1e-6)


def test_cifar10_offline_error(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar10", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "data_batch_1" in msg and "test_batch" in msg
    assert "npz" in msg  # says how to bring a re-encoded copy


def test_cifar10_failed_md5_points_to_npz(tmp_path):
    write_fake_cifar(tmp_path)  # real md5 check: the fake files fail it
    with pytest.raises(DatasetUnavailable, match="md5.*npz"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_cifar10_npz_equals_torchvision_path(tmp_path, genuine_cifar):
    chw = write_fake_cifar(tmp_path)
    tv = load_dataset("cifar10", root=tmp_path, download=False)
    hwc = lambda names: np.concatenate([chw[n][0] for n in names]).transpose(0, 2, 3, 1)  # noqa: E731
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    np.savez_compressed(
        tmp_path / "cifar10.npz",
        x_train=hwc(train_names),
        y_train=np.array(sum((chw[n][1] for n in train_names), [])),
        x_test=hwc(["test_batch"]),
        y_test=np.array(chw["test_batch"][1]),
    )
    npz = load_dataset("npz", path=tmp_path / "cifar10.npz")
    assert npz.name == "cifar10" and npz.num_classes == 10
    for a, b in (
        (npz.x_train, tv.x_train),
        (npz.x_test, tv.x_test),
        (npz.y_train, tv.y_train),
        (npz.y_test, tv.y_test),
    ):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


# ----------------------------------------------------------------------------- npz


def test_npz_nchw_floats_features_and_writers(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((10, 3, 8, 8)).astype(np.float32)  # floats already in [0, 1], channels first
    np.savez(tmp_path / "own.npz", x_train=x, y_train=np.arange(10) % 4, writers=np.arange(10) // 5)
    ds = load_dataset("npz", root=tmp_path, path="own.npz", normalize="none")
    assert ds.x_train.shape == (10, 3, 8, 8) and torch.allclose(ds.x_train, torch.from_numpy(x))
    assert ds.x_test is None and ds.num_classes == 4 and ds.writers.tolist() == [0] * 5 + [1] * 5

    auto = load_dataset(
        "npz", path=tmp_path / "own.npz"
    )  # 3x8x8 is no known shape: the train split's own stats
    assert auto.x_train.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert torch.allclose(auto.x_train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)

    explicit = load_dataset("npz", path=tmp_path / "own.npz", normalize=[[0.5] * 3, [0.25] * 3])
    assert torch.allclose(explicit.x_train, (torch.from_numpy(x) - 0.5) / 0.25, atol=1e-6)

    np.savez(tmp_path / "feat.npz", x_train=rng.normal(size=(6, 5)), y_train=[0, 1, 2, 0, 1, 2])
    feat = load_dataset("npz", path=tmp_path / "feat.npz", num_classes=5)
    assert feat.x_train.shape == (6, 5) and feat.x_train.dtype == torch.float32 and feat.num_classes == 5


def test_npz_grey_images_get_mnist_stats(tmp_path):
    imgs = np.full((4, 28, 28), 255, dtype=np.uint8)
    np.savez(tmp_path / "g.npz", x_train=imgs, y_train=[0, 1, 2, 3], x_test=imgs[:2], y_test=[1, 1])
    ds = load_dataset("npz", path=tmp_path / "g.npz")
    mean, std = CHANNEL_STATS["mnist"]
    assert ds.x_train.shape == (4, 1, 28, 28)
    assert ds.x_test[0, 0, 0, 0].item() == pytest.approx((1 - mean[0]) / std[0], rel=1e-6)


@pytest.mark.parametrize(
    "arrays, options, word",
    [
        ({"x_train": np.zeros((2, 4))}, {}, "y_train"),
        ({"x_train": np.zeros((2, 4)), "y_train": [0, 1], "x_test": np.zeros((1, 4))}, {}, "y_test"),
        ({"x_train": np.zeros((2, 4, 4, 3)), "y_train": [0, 1]}, {"normalize": "zscore"}, "normalize"),
        ({"x_train": np.zeros((2, 4)), "y_train": [0.5, 1]}, {}, "whole numbers"),
    ],
)
def test_npz_bad_contents(tmp_path, arrays, options, word):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=word):
        load_dataset("npz", path=tmp_path / "bad.npz", **options)


def test_npz_missing_file_and_path(tmp_path):
    with pytest.raises(DatasetUnavailable, match="nothere.npz"):
        load_dataset("npz", path=tmp_path / "nothere.npz")
    with pytest.raises(ValueError, match="path"):
        load_dataset("npz")
