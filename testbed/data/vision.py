"""Image datasets from files: MNIST and CIFAR-10 in torchvision's layout, and ``npz`` arrays.

MNIST and CIFAR-10 are downloaded by torchvision into the cache directory
(``$TESTBED_DATA`` or ``~/.cache/testbed/data``, or ``root=``). When the files are absent
and cannot be downloaded, :class:`DatasetUnavailable` names the directory and the files
to place there.

MNIST's idx files are read here, gzipped or not, rather than by torchvision, because
torchvision only reads them decompressed and would decompress next to the ``.gz`` files,
which fails on a read-only data directory. CIFAR-10 is read by torchvision, with its md5
check: a re-encoded copy is refused, and should be given as an ``npz`` instead.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from testbed.data.dataset import (
    CHANNEL_STATS,
    Dataset,
    DatasetUnavailable,
    channel_stats,
    check_finite,
    images_to_tensor,
    labels_to_tensor,
    normalise_,
    resolve_root,
)

logger = logging.getLogger(__name__)

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)
NORMALIZE_CHOICES = ("auto", "train", "none", *CHANNEL_STATS)


# --------------------------------------------------------------------------- MNIST


def load_mnist(root: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """MNIST, 60,000 train / 10,000 test, as [N, 1, 28, 28] normalised with (0.1307, 0.3081)."""
    base = resolve_root(root)
    raw = _find_mnist_dir(base)
    if raw is None and download:
        import torchvision  # imported lazily: only a download needs it

        _try_download("mnist", lambda: torchvision.datasets.MNIST(str(base), train=True, download=True))
        raw = _find_mnist_dir(base)
    if raw is None:
        names = [f for pair in MNIST_FILES.values() for f in pair]
        raise DatasetUnavailable(
            f"dataset 'mnist': files not found in {base / 'MNIST' / 'raw'} "
            f"(expected {', '.join(n + '[.gz]' for n in names)}); "
            + ("the download failed (see the log); " if download else "download=False; ")
            + "copy the four official idx files (gzipped or not) into that directory, or pass "
            "root= pointing at a directory holding MNIST/raw/"
        )
    arrays = {}
    for split, (img_name, lbl_name) in MNIST_FILES.items():
        images = read_idx(_require(raw / img_name))
        labels = read_idx(_require(raw / lbl_name))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{raw}: {img_name} has shape {images.shape} and {lbl_name} {labels.shape}; "
                f"expected [N, 28, 28] images and N labels"
            )
        arrays[split] = (images, labels)
    ds = Dataset(
        name="mnist",
        x_train=images_to_tensor(arrays["train"][0], CHANNEL_STATS["mnist"], source=str(raw)),
        y_train=labels_to_tensor(arrays["train"][1], str(raw)),
        x_test=images_to_tensor(arrays["test"][0], CHANNEL_STATS["mnist"], source=str(raw)),
        y_test=labels_to_tensor(arrays["test"][1], str(raw)),
        num_classes=10,
    )
    logger.debug("loaded %r from %s", ds, raw)
    return ds


def _find_mnist_dir(base: Path) -> Path | None:
    # torchvision's layout first (root/MNIST/raw); also accept root pointing into it.
    for d in (base / "MNIST" / "raw", base / "raw", base):
        if all(_with_gz(d / f) is not None for pair in MNIST_FILES.values() for f in pair):
            return d
    return None


def _with_gz(path: Path) -> Path | None:
    """``path`` if it exists, else ``path.gz`` if that exists, else None."""
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
    return gz if gz.is_file() else None


def _require(path: Path) -> Path:
    found = _with_gz(path)
    if found is None:  # removed since _find_mnist_dir looked
        raise DatasetUnavailable(f"dataset 'mnist': {path} (or {path.name}.gz) not found")
    return found


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file of unsigned bytes (the MNIST format), plain or gzipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions,
    # then each dimension as a big-endian uint32.
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an idx file (the first two bytes must be zero)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: idx type code {data[2]:#04x} is not supported; only 0x08 (unsigned byte)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    # bytearray: a writable buffer, so torch can wrap the array without copying or warning
    values = np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(dims)):
        raise ValueError(
            f"{path}: header gives shape {dims} ({int(np.prod(dims))} values) "
            f"but the file holds {values.size}"
        )
    return values.reshape(dims)


# --------------------------------------------------------------------------- CIFAR-10


def load_cifar10(root: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """CIFAR-10, 50,000 train / 10,000 test, as [N, 3, 32, 32] normalised per channel."""
    import torchvision  # imported lazily so the other loaders do not pay for it

    base = resolve_root(root)
    folder = base / CIFAR10_DIR
    missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing and download:
        _try_download("cifar10", lambda: torchvision.datasets.CIFAR10(str(base), train=True, download=True))
        missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        raise DatasetUnavailable(
            f"dataset 'cifar10': files not found in {folder} (missing {', '.join(missing)}); "
            + ("the download failed (see the log); " if download else "download=False; ")
            + f"download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it in {base} "
            f"(it unpacks into {CIFAR10_DIR}/), or give the images as an npz: "
            f"load_dataset('npz', path=...) with arrays x_train, y_train, x_test, y_test"
        )
    try:
        # download=False: present files are never replaced, even when they fail the md5 check
        train = torchvision.datasets.CIFAR10(str(base), train=True, download=False)
        test = torchvision.datasets.CIFAR10(str(base), train=False, download=False)
    except RuntimeError as err:
        raise DatasetUnavailable(
            f"dataset 'cifar10': the files in {folder} fail torchvision's md5 check ({err}); "
            "replace them with the official ones, or load a re-encoded copy with "
            "load_dataset('npz', path=...)"
        ) from err
    stats = CHANNEL_STATS["cifar10"]
    ds = Dataset(
        name="cifar10",
        x_train=images_to_tensor(train.data, stats, layout="NHWC", source=str(folder)),
        y_train=labels_to_tensor(np.asarray(train.targets), str(folder)),
        x_test=images_to_tensor(test.data, stats, layout="NHWC", source=str(folder)),
        y_test=labels_to_tensor(np.asarray(test.targets), str(folder)),
        num_classes=10,
    )
    logger.debug("loaded %r from %s", ds, folder)
    return ds


def _try_download(name: str, fetch: Callable[[], object]) -> None:
    """Run a torchvision download; a failure is logged, and the caller reports what is missing."""
    try:
        fetch()
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError ... when offline
        logger.warning("dataset %r: download failed: %s", name, err)


# --------------------------------------------------------------------------- npz


def load_npz(
    root: str | os.PathLike | None = None,
    *,
    path: str | os.PathLike | None = None,
    name: str | None = None,
    num_classes: int | None = None,
    normalize: str | tuple[tuple[float, ...], tuple[float, ...]] = "auto",
    layout: str = "auto",
) -> Dataset:
    """Arrays from an ``.npz``: ``x_train, y_train`` and optionally ``x_test, y_test, writers, test_writers``.

    ``path`` is relative to ``root`` when both are given; ``root`` alone may name the file.
    Images (3-D or 4-D arrays, NHWC or NCHW, see ``layout``) become float32 NCHW: integer
    pixels are divided by 255, float arrays are taken to be in [0, 1]. ``normalize``:
    ``"auto"`` uses the published stats of a known dataset with the same image shape
    (3x32x32 -> cifar10, 1x28x28 -> mnist; so a CIFAR-10 npz trains exactly like the
    torchvision copy) and otherwise the train split's own per-channel stats; ``"train"``,
    ``"cifar10"``, ``"mnist"``, ``"none"`` or an explicit ``(mean, std)`` pair force a
    choice. 2-D arrays are feature vectors and are kept as they are (float32).
    """
    file = _npz_path(root, path)
    arrays = _read_npz(file)
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise ValueError(f"{file}: key {key!r} is missing; the file holds {sorted(arrays)}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{file}: give both x_test and y_test or neither; the file holds {sorted(arrays)}")

    x_train = _features(arrays["x_train"], file, "x_train", normalize, layout, stats=None)
    stats = _npz_stats(arrays["x_train"], x_train, normalize, file)
    if stats is not None:
        normalise_(x_train, stats, f"{file}:x_train")
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _features(arrays["x_test"], file, "x_test", normalize, layout, stats=stats)
        y_test = labels_to_tensor(arrays["y_test"], f"{file}:y_test")
    y_train = labels_to_tensor(arrays["y_train"], f"{file}:y_train")
    if num_classes is None:
        num_classes = int(max(int(y_train.max()), -1 if y_test is None else int(y_test.max()))) + 1
    ds = Dataset(
        name=name or file.stem,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        writers=arrays.get("writers"),
        test_writers=arrays.get("test_writers"),
    )
    logger.debug("loaded %r from %s (normalisation %s)", ds, file, stats)
    return ds


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    """Every array of an npz; a truncated, empty or pickled file is refused naming it."""
    key = None
    try:
        with open(file, "rb") as f:  # ours to close, whatever numpy makes of it
            loaded = np.load(f, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy array
                raise ValueError(f"{file}: a single .npy array, not an .npz archive of named arrays")
            with loaded as npz:
                arrays = {}
                for key in npz.files:
                    arrays[key] = npz[key]
                return arrays
    except ValueError as err:
        if "allow_pickle" in str(err) and key is not None:
            raise ValueError(f"{file}: array {key!r} holds Python objects (a pickle); "
                             f"an npz here holds numeric arrays only") from None
        if str(err).startswith(str(file)):
            raise
        raise ValueError(f"{file}: not a readable .npz (not a zip archive of .npy arrays); write it with "
                         f"numpy.savez_compressed") from None
    except Exception as err:  # a damaged archive fails in any of zipfile's, zlib's or numpy's ways
        raise ValueError(f"{file}: not a readable .npz ({type(err).__name__}: {err}); write it with "
                         f"numpy.savez_compressed") from None


def _npz_path(root: str | os.PathLike | None, path: str | os.PathLike | None) -> Path:
    if path is None:
        if root is None:
            raise ValueError("dataset 'npz' needs path= (the .npz file), or root= naming the file")
        file = Path(root).expanduser()
    else:
        file = Path(path).expanduser()
        if root is not None and not file.is_absolute():
            file = Path(root).expanduser() / file
    if not file.is_file():
        raise DatasetUnavailable(
            f"dataset 'npz': file {file} not found; it must be an .npz with arrays x_train, y_train "
            f"(and optionally x_test, y_test), e.g. written by numpy.savez_compressed"
        )
    return file


def _features(
    arr: np.ndarray, file: Path, key: str, normalize: object, layout: str, stats: tuple | None
) -> torch.Tensor:
    if arr.ndim == 2:  # feature vectors: no image scaling
        return check_finite(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), f"{file}:{key}")
    return images_to_tensor(arr, stats, layout=layout, source=f"{file}:{key}")


def _npz_stats(raw: np.ndarray, x: torch.Tensor, normalize: object, file: Path) -> tuple | None:
    if isinstance(normalize, (tuple, list)):  # (mean, std); a list when it comes from a config file
        if len(normalize) != 2:
            raise ValueError(f"normalize as a pair must be (mean, std) per channel, got {normalize!r}")
        return tuple(float(v) for v in normalize[0]), tuple(float(v) for v in normalize[1])
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(
            f"normalize must be one of {NORMALIZE_CHOICES} or a (mean, std) pair, got {normalize!r}"
        )
    if normalize == "none" or raw.ndim == 2:
        return None
    if normalize in CHANNEL_STATS:
        return CHANNEL_STATS[normalize]
    if normalize == "auto":
        shapes: dict[tuple[int, ...], str] = {(3, 32, 32): "cifar10", (1, 28, 28): "mnist"}
        known = shapes.get(tuple(x.shape[1:]))
        if known is not None:
            logger.info(
                "%s: images are %s, normalising with the published %s stats", file, tuple(x.shape[1:]), known
            )
            return CHANNEL_STATS[known]
    return channel_stats(x)
