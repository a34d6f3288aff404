"""FEMNIST and CelebA in the LEAF JSON format, with each writer (celebrity) as a natural client.

LEAF (Caldas et al. 2018) stores each split as JSON files under ``train/`` and ``test/``:
``{"users": [...], "num_samples": [...], "user_data": {user: {"x": [...], "y": [...]}}}``,
plain (``.json``) or gzipped (``.json.gz``). Files are read in name order and users in file
order, so ``writers`` (the user index of every sample) is the same on every machine.

- FEMNIST: x is 784 floats per sample (LEAF keeps background ~1.0, ink ~0.0; the values
  are returned as they are, as LEAF's model sees them), y in 0..61; images [N, 1, 28, 28].
- CelebA: x is an image file name under ``raw/img_align_celeba/``, y in {0, 1} (smiling);
  images are resized to 84x84 and converted to RGB as LEAF does, scaled to [0, 1],
  [N, 3, 84, 84].
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from testbed.data.dataset import Dataset, DatasetUnavailable, images_to_tensor, resolve_root

logger = logging.getLogger(__name__)

FEMNIST_CLASSES = 62
CELEBA_CLASSES = 2
CELEBA_IMAGE_DIR = Path("raw") / "img_align_celeba"


@dataclass(frozen=True)
class LeafSplit:
    """One split read from a LEAF directory: per-sample x, y and user name, in file order."""

    x: list  # raw LEAF x values (784 floats, or an image file name)
    y: np.ndarray  # int64
    users: list[str]  # the user of each sample


def load_femnist(root: str | os.PathLike | None = None) -> Dataset:
    """FEMNIST from LEAF JSON; ``root`` is the directory holding ``train/`` and ``test/`` (or a parent)."""
    base = _find_leaf_dir(root, "femnist")
    train, test = read_leaf_dir(base / "train"), _read_optional(base / "test")

    def images(split: LeafSplit, where: Path) -> torch.Tensor:
        try:
            with np.errstate(over="ignore"):  # a number past float32 becomes inf, refused below by name
                flat = np.asarray(split.x, dtype=np.float32)
        except (ValueError, TypeError, OverflowError) as err:  # ragged rows, text, numbers past float32
            raise ValueError(f"{where}: every FEMNIST x must be a list of 784 numbers ({err})") from None
        if flat.ndim != 2 or flat.shape[1] != 28 * 28:
            raise ValueError(f"{where}: FEMNIST x must be lists of 784 numbers, got array shape {flat.shape}")
        return images_to_tensor(flat.reshape(-1, 1, 28, 28), None, layout="NCHW", source=str(where))

    return _dataset("femnist", FEMNIST_CLASSES, train, test, images, base)


def load_celeba(root: str | os.PathLike | None = None, *, image_size: int = 84) -> Dataset:
    """CelebA from LEAF JSON, with images read from ``raw/img_align_celeba/`` under the LEAF directory."""
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    from PIL import Image  # Pillow comes with torchvision; imported only when CelebA is used

    base = _find_leaf_dir(root, "celeba")
    image_dir = base / CELEBA_IMAGE_DIR
    train, test = read_leaf_dir(base / "train"), _read_optional(base / "test")

    def images(split: LeafSplit, where: Path) -> torch.Tensor:
        arrays = np.empty((len(split.x), image_size, image_size, 3), dtype=np.uint8)
        for i, file_name in enumerate(split.x):
            path = image_dir / str(file_name)
            if not path.is_file():
                raise DatasetUnavailable(
                    f"{where}: sample {i} names image {file_name!r}, which is not in {image_dir}; "
                    f"place CelebA's img_align_celeba/ images there"
                )
            with Image.open(path) as img:
                # LEAF's order: resize first, then convert to RGB.
                arrays[i] = np.asarray(img.resize((image_size, image_size)).convert("RGB"))
        return images_to_tensor(arrays, None, layout="NHWC", source=str(where))

    return _dataset("celeba", CELEBA_CLASSES, train, test, images, base)


def _dataset(
    name: str, num_classes: int, train: LeafSplit, test: LeafSplit | None, images, base: Path
) -> Dataset:
    # Writer ids: train users in order of appearance, then users seen only in the test split.
    index: dict[str, int] = {}
    for u in train.users + ([] if test is None else test.users):
        index.setdefault(u, len(index))
    try:
        ds = _build(name, num_classes, train, test, images, base, index)
    except DatasetUnavailable:
        raise
    except ValueError as err:  # e.g. a label outside the dataset's classes: say which folder
        raise ValueError(err if str(base) in str(err) else f"{base}: {err}") from None
    logger.debug("loaded %r from %s", ds, base)
    return ds


def _build(name: str, num_classes: int, train: LeafSplit, test: LeafSplit | None, images, base: Path,
           index: dict[str, int]) -> Dataset:
    return Dataset(
        name=name,
        x_train=images(train, base / "train"),
        y_train=torch.from_numpy(train.y),
        x_test=None if test is None else images(test, base / "test"),
        y_test=None if test is None else torch.from_numpy(test.y),
        num_classes=num_classes,
        writers=np.array([index[u] for u in train.users], dtype=np.int64),
        test_writers=None if test is None else np.array([index[u] for u in test.users], dtype=np.int64),
    )


def _find_leaf_dir(root: str | os.PathLike | None, name: str) -> Path:
    base = resolve_root(root)
    # Accept the dataset directory itself, a parent holding <name>/, or LEAF's own tree (<name>/data/).
    candidates = (base, base / name, base / name / "data", base / "data")
    for d in candidates:
        if (d / "train").is_dir() and _leaf_files(d / "train"):
            return d
    raise DatasetUnavailable(
        f"dataset {name!r}: no LEAF files found in {base} (looked for train/*.json or train/*.json.gz "
        f"in {', '.join(str(d) for d in candidates)}); run LEAF's data/{name}/preprocess.sh and copy its "
        f"data/train/ and data/test/ directories"
        + (" and data/raw/img_align_celeba/" if name == "celeba" else "")
        + f" into {base / name}, or pass root= pointing at them"
    )


def _leaf_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith((".json", ".json.gz")))


def _read_optional(directory: Path) -> LeafSplit | None:
    if directory.is_dir() and _leaf_files(directory):
        return read_leaf_dir(directory)
    logger.warning("no LEAF test files in %s; the dataset has no test split", directory)
    return None


def _read_leaf_json(path: Path) -> dict:
    """One LEAF file, checked for its shape: {"users": [...], "num_samples": [...], "user_data": {...}}."""
    from testbed.files import decode_input, read_input_bytes

    raw = read_input_bytes(path, "a LEAF file is JSON (.json or .json.gz)")
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except Exception as err:  # a damaged stream fails in any of gzip's or zlib's ways
            raise ValueError(f"{path}: not a readable gzip file ({err})") from None
    text = decode_input(path, raw, "LEAF files are UTF-8 JSON")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply for a LEAF file") from None
    shape = "a LEAF file has users, num_samples, user_data"
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the top level is a JSON {type(doc).__name__}, not an object; {shape}")
    for key, kind in (("users", list), ("user_data", dict), ("num_samples", list)):
        if key not in doc:
            if key == "num_samples":
                continue
            raise ValueError(f"{path}: key {key!r} is missing; {shape}")
        if not isinstance(doc[key], kind):
            raise ValueError(f"{path}: {key!r} is a JSON {type(doc[key]).__name__}, not "
                             f"{'a list' if kind is list else 'an object'}; {shape}")
    if not all(isinstance(u, str) for u in doc["users"]):
        raise ValueError(f"{path}: 'users' must be a list of names (strings)")
    if "num_samples" in doc and not all(isinstance(c, int) and not isinstance(c, bool) for c in doc["num_samples"]):
        raise ValueError(f"{path}: 'num_samples' must be a list of whole numbers")
    return doc


def _is_label(value: object) -> bool:
    """A whole number: a bool is an int to Python, and int() would cut 3.7 to 3."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def read_leaf_dir(directory: Path) -> LeafSplit:
    """Read every ``*.json`` / ``*.json.gz`` file in ``directory``, in name order."""
    xs: list = []
    ys: list[int] = []
    users_out: list[str] = []
    files = _leaf_files(directory) if directory.is_dir() else []
    if not files:
        raise DatasetUnavailable(f"{directory}: no LEAF .json or .json.gz files")
    for path in files:
        doc = _read_leaf_json(path)
        users, counts, user_data = doc["users"], doc.get("num_samples"), doc["user_data"]
        if counts is not None and len(counts) != len(users):
            raise ValueError(f"{path}: {len(users)} users but {len(counts)} num_samples entries")
        for i, user in enumerate(users):
            data = user_data.get(user)
            if not isinstance(data, dict) or not isinstance(data.get("x"), list) or not isinstance(data.get("y"), list):
                raise ValueError(f"{path}: user_data[{user!r}] is missing or lacks 'x'/'y' (lists of equal length)")
            n = len(data["y"])
            if len(data["x"]) != n or (counts is not None and counts[i] != n):
                raise ValueError(
                    f"{path}: user {user!r} has {len(data['x'])} x, {n} y"
                    + ("" if counts is None else f" and num_samples {counts[i]}")
                    + "; they must be equal"
                )
            for k, label in enumerate(data["y"]):
                if not _is_label(label):
                    raise ValueError(f"{path}: user {user!r}, y[{k}] = {label!r} is not a class label (a whole number)")
            xs.extend(data["x"])
            ys.extend(int(v) for v in data["y"])
            users_out.extend([str(user)] * n)
    return LeafSplit(x=xs, y=np.asarray(ys, dtype=np.int64), users=users_out)
