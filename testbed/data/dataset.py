"""The in-memory dataset every loader returns, the cache directory, and image normalisation.

A :class:`Dataset` is a plain bundle of tensors: images are float32 NCHW, already
normalised, labels int64. Keeping whole datasets as tensors (not ``torch.utils.data``
pipelines) is what lets the engine keep every worker's data on the device and gather
minibatches by index.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Published per-channel (mean, std) of the training images in [0, 1], the values the
#: torchvision recipes normalise with. Used by the torchvision loaders and by ``npz`` files
#: of the same shape, so a CIFAR-10 npz trains exactly like the torchvision copy.
CHANNEL_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class DatasetUnavailable(ValueError):
    """The dataset's files are not on disk and could not be downloaded.

    The message names the directory searched, the exact files expected there and how to
    place them by hand.
    """


@dataclass(frozen=True, eq=False)  # eq=False: tensors do not compare to a single bool
class Dataset:
    """A whole dataset in memory, train and test split."""

    name: str
    x_train: torch.Tensor  # float32; images [N, C, H, W] normalised, features [N, D]
    y_train: torch.Tensor  # int64 [N], values in 0 .. num_classes - 1
    x_test: torch.Tensor | None  # like x_train, or None when the source has no test split
    y_test: torch.Tensor | None
    num_classes: int
    writers: np.ndarray | None = None  # natural client id (writer, device, celebrity) per train sample
    test_writers: np.ndarray | None = None  # the same ids for the test samples, where known

    def __post_init__(self) -> None:
        _check_split(self.name, "train", self.x_train, self.y_train, self.num_classes)
        if (self.x_test is None) != (self.y_test is None):
            raise ValueError(f"dataset {self.name!r}: x_test and y_test must both be given or both be None")
        if self.x_test is not None:
            _check_split(self.name, "test", self.x_test, self.y_test, self.num_classes)
            if self.x_test.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(
                    f"dataset {self.name!r}: x_test samples have shape {tuple(self.x_test.shape[1:])}, "
                    f"x_train samples {tuple(self.x_train.shape[1:])}; they must match"
                )
        for field, ids, y in (
            ("writers", self.writers, self.y_train),
            ("test_writers", self.test_writers, self.y_test),
        ):
            if ids is not None and (y is None or ids.shape != (len(y),)):
                raise ValueError(
                    f"dataset {self.name!r}: {field} must be a 1-D array with one id per sample "
                    f"({0 if y is None else len(y)}), got shape {ids.shape}"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(3, 32, 32)`` or ``(60,)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        n_test = 0 if self.y_test is None else len(self.y_test)
        n_writers = "none" if self.writers is None else len(np.unique(self.writers))
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={n_test}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, writers={n_writers})"
        )


def _check_split(name: str, split: str, x: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        raise ValueError(
            f"dataset {name!r}: x_{split} must be a float32 tensor, got {getattr(x, 'dtype', type(x))}"
        )
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.ndim != 1:
        raise ValueError(f"dataset {name!r}: y_{split} must be a 1-D int64 tensor")
    if len(x) != len(y):
        raise ValueError(f"dataset {name!r}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"dataset {name!r}: y_{split} has labels in [{int(y.min())}, {int(y.max())}], "
            f"outside 0 .. num_classes - 1 = {num_classes - 1}"
        )


MAX_CLASSES = 100_000
"""Most classes a dataset may have: one label of 10**7 would build a 10-million-way output layer."""


def default_cache_dir() -> Path:
    """Where downloads go: ``$TESTBED_DATA``, else ``~/.cache/testbed/data``."""
    env = os.environ.get("TESTBED_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "testbed" / "data"


def resolve_root(root: str | os.PathLike | None) -> Path:
    return default_cache_dir() if root is None else Path(root).expanduser()


def images_to_tensor(
    images: np.ndarray,
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None,
    *,
    layout: str = "auto",
    source: str = "images",
) -> torch.Tensor:
    """Turn an image array into a normalised float32 NCHW tensor.

    Integer arrays are pixel values 0..255 and are divided by 255; float arrays are taken
    to be in [0, 1] already. ``layout`` is ``"NHWC"``, ``"NCHW"`` or ``"auto"`` (channels
    last when the last axis has 1 or 3 entries and the second does not); a 3-D array is one
    channel. ``stats`` = (mean, std) per channel, or None to leave values unscaled.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
        layout = "NCHW"
    if arr.ndim != 4:
        raise ValueError(
            f"{source}: expected images of shape [N, H, W], [N, H, W, C] or [N, C, H, W], got {arr.shape}"
        )
    if layout == "auto":
        layout = "NHWC" if arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3) else "NCHW"
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout must be 'NHWC', 'NCHW' or 'auto', got {layout!r}")
    scale = 255.0 if np.issubdtype(arr.dtype, np.integer) else 1.0
    x = torch.from_numpy(np.ascontiguousarray(arr))
    if layout == "NHWC":
        x = x.permute(0, 3, 1, 2)
    # Convert and scale in one pass; contiguous() after the permute gives NCHW memory order.
    x = check_finite(x.to(torch.float32).div_(scale).contiguous(), source)
    return x if stats is None else normalise_(x, stats, source)


def check_finite(x: torch.Tensor, source: str) -> torch.Tensor:
    """``x``, refused if a value is NaN or infinite (it would poison every model it reaches)."""
    bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1) if x.numel() else torch.zeros(0, dtype=torch.bool)
    if bool(bad.any()):
        raise ValueError(f"{source}: sample {int(bad.nonzero()[0])} holds NaN or inf; inputs must be finite")
    return x


def normalise_(
    x: torch.Tensor, stats: tuple[tuple[float, ...], tuple[float, ...]], source: str = "images"
) -> torch.Tensor:
    """Subtract the per-channel mean and divide by the std, in place, on an NCHW tensor."""
    mean, std = stats
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(
            f"{source}: normalisation stats have {len(mean)} channel(s) but the images have {x.shape[1]}"
        )
    if min(std) <= 0:
        raise ValueError(f"{source}: normalisation std must be > 0 per channel, got {tuple(std)}")
    return x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of an NCHW tensor (torch's reductions sum pairwise, so float32 is accurate)."""
    var, mean = torch.var_mean(x, dim=(0, 2, 3))
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def labels_to_tensor(labels: np.ndarray, source: str) -> torch.Tensor:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{source}: labels must be 1-D, got shape {arr.shape}")
    whole = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)
    if not whole and np.issubdtype(arr.dtype, np.floating):
        whole = bool(np.all(np.mod(arr, 1) == 0))
    if arr.size and not whole:
        raise ValueError(f"{source}: labels must be whole numbers, got dtype {arr.dtype} with other values")
    if arr.size and not 0 <= arr.min() <= arr.max() < MAX_CLASSES:
        bad = arr.min() if arr.min() < 0 else arr.max()
        raise ValueError(f"{source}: label {bad} is outside 0 .. {MAX_CLASSES - 1:_}; a model has at most "
                         f"{MAX_CLASSES:_} classes")
    return torch.from_numpy(arr.astype(np.int64))
