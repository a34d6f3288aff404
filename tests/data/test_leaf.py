"""LEAF JSON readers (FEMNIST, CelebA) on files written here, plain and gzipped."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from testbed.data import DatasetUnavailable, load_dataset


def write_leaf(path: Path, users: dict, gz: bool = False, num_samples=None) -> None:
    """One LEAF file: users, num_samples, user_data[u] = {x, y}."""
    doc = {
        "users": list(users),
        "num_samples": num_samples or [len(d["y"]) for d in users.values()],
        "user_data": users,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wt", encoding="utf-8") as f:
            json.dump(doc, f)
    else:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f)


def femnist_user(rng, n):
    return {"x": rng.random((n, 784)).round(3).tolist(), "y": rng.integers(0, 62, n).tolist()}


@pytest.fixture
def femnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "femnist"
    train = {
        "f0": {"w_a": femnist_user(rng, 3), "w_b": femnist_user(rng, 2)},
        "f1": {"w_c": femnist_user(rng, 4)},
    }
    write_leaf(root / "train" / "all_data_0_train.json", train["f0"])  # plain
    write_leaf(root / "train" / "all_data_1_train.json", train["f1"], gz=True)  # gzipped
    write_leaf(
        root / "test" / "all_data_0_test.json",
        {"w_b": femnist_user(rng, 1), "w_new": femnist_user(rng, 2)},
        gz=True,
    )
    write_leaf(root / "test" / "all_data_1_test.json", {"w_c": femnist_user(rng, 1)})
    return root, train


def test_femnist_plain_and_gzipped(femnist_dir):
    root, train = femnist_dir
    ds = load_dataset("femnist", root=root)
    assert ds.name == "femnist" and ds.num_classes == 62
    assert ds.x_train.shape == (9, 1, 28, 28) and ds.x_train.dtype == torch.float32
    assert ds.x_test.shape == (4, 1, 28, 28)
    # files in name order, users in file order; values kept as LEAF stores them
    assert ds.writers.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    x_c0 = np.asarray(train["f1"]["w_c"]["x"][0], dtype=np.float32).reshape(1, 28, 28)
    assert torch.equal(ds.x_train[5], torch.from_numpy(x_c0))
    assert ds.y_train[5:].tolist() == train["f1"]["w_c"]["y"]
    # test users map to their train ids; a test-only user gets the next id
    assert ds.test_writers.tolist() == [1, 3, 3, 2]


@pytest.mark.parametrize("where", ["parent", "leaf_tree"])
def test_femnist_root_may_be_a_parent(tmp_path, where):
    rng = np.random.default_rng(1)
    sub = tmp_path / "femnist" / ("data" if where == "leaf_tree" else "")
    write_leaf(sub / "train" / "a.json", {"u": femnist_user(rng, 2)})
    ds = load_dataset("femnist", root=tmp_path)
    assert len(ds.y_train) == 2 and ds.x_test is None  # no test dir: no test split


def test_femnist_missing_files_error(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("femnist", root=tmp_path)
    assert str(tmp_path) in str(err.value) and "train/*.json" in str(err.value)


@pytest.mark.parametrize(
    "users, num_samples, word",
    [
        ({"u": {"x": [[0.0] * 784] * 2, "y": [1]}}, None, "user 'u' has 2 x, 1 y"),
        ({"u": {"x": [[0.0] * 784], "y": [1]}}, [5], "num_samples 5"),
        ({"u": {"x": [[0.0] * 10], "y": [1]}}, None, "784"),
        ({"u": {"x": [[0.0] * 784], "y": [70]}}, None, "labels"),
        ({"u": {"y": [1]}}, None, "lacks 'x'"),
    ],
)
def test_femnist_malformed_files_name_the_problem(tmp_path, users, num_samples, word):
    write_leaf(tmp_path / "train" / "bad.json", users, num_samples=num_samples)
    with pytest.raises(ValueError, match=word):
        load_dataset("femnist", root=tmp_path)


def test_femnist_bad_json_names_file(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_dataset("femnist", root=tmp_path)


def _celeba(tmp_path: Path, gz: bool):
    rng = np.random.default_rng(2)
    root = tmp_path / "celeba"
    img_dir = root / "raw" / "img_align_celeba"
    img_dir.mkdir(parents=True)
    names = []
    for i in range(5):
        name = f"{i:06d}.jpg"
        # tiny solid-colour JPEGs of CelebA's aspect ratio (178x218 scaled down)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        Image.new("RGB", (18, 22), colour).save(img_dir / name, quality=95)
        names.append((name, colour))
    users = {
        "celeb_1": {"x": [n for n, _ in names[:3]], "y": [0, 1, 1]},
        "celeb_2": {"x": [names[3][0]], "y": [0]},
    }
    write_leaf(root / "train" / "t.json", users, gz=gz)
    write_leaf(root / "test" / "t.json", {"celeb_2": {"x": [names[4][0]], "y": [1]}}, gz=gz)
    return root, names


@pytest.mark.parametrize("gz", [False, True])
def test_celeba_loads_images(tmp_path, gz):
    root, names = _celeba(tmp_path, gz)
    ds = load_dataset("celeba", root=tmp_path)  # a parent of celeba/ works too
    assert ds.num_classes == 2 and ds.x_train.shape == (4, 3, 84, 84) and ds.x_test.shape == (1, 3, 84, 84)
    assert (
        ds.y_train.tolist() == [0, 1, 1, 0]
        and ds.writers.tolist() == [0, 0, 0, 1]
        and ds.test_writers.tolist() == [1]
    )
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    # a solid-colour JPEG stays about that colour after decoding and resizing
    centre = ds.x_train[1, :, 42, 42] * 255
    assert torch.allclose(centre, torch.tensor(names[1][1], dtype=torch.float32), atol=8)
    small = load_dataset("celeba", root=root, image_size=16)
    assert small.x_train.shape == (4, 3, 16, 16)


def test_celeba_missing_image_names_it(tmp_path):
    root, names = _celeba(tmp_path, gz=False)
    (root / "raw" / "img_align_celeba" / names[2][0]).unlink()
    with pytest.raises(DatasetUnavailable, match=names[2][0]):
        load_dataset("celeba", root=root)
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("celeba", root=root, image_size=0)
