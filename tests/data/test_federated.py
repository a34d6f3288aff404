"""make_federated / FederatedData, the dataset registry and Dataset validation."""

import numpy as np
import pytest
import torch

from testbed.data import DATASET_NAMES, Dataset, FederatedData, load_dataset, make_federated


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", n_workers=10, max_samples=200, seed=0)


def test_natural_split_reproduces_the_devices(synthetic):
    fed = make_federated(synthetic, 10, scheme="natural")
    assert isinstance(fed, FederatedData) and fed.n_workers == 10
    assert fed.num_classes == 10 and fed.name == "synthetic" and fed.input_shape == (60,)
    for k, (x, y) in enumerate(fed.worker_data):
        mask = torch.from_numpy(synthetic.writers == k)
        assert torch.equal(x, synthetic.x_train[mask]) and torch.equal(y, synthetic.y_train[mask])
    assert fed.sizes() == np.bincount(synthetic.writers).tolist()
    assert torch.equal(fed.test_data[0], synthetic.x_test)


def test_labels_per_worker_and_summary(synthetic):
    fed = make_federated(synthetic, 4, scheme="shards", shards_per_worker=3, seed=1)
    labels = fed.labels_per_worker()
    assert [len(y) for y in labels] == fed.sizes() and all(isinstance(y, np.ndarray) for y in labels)
    df = fed.summary(groups=[[0, 1], [2, 3]])
    assert len(df) == 6 and df["samples"].iloc[:4].sum() == len(synthetic.y_train)


def test_deterministic_by_seed(synthetic):
    a = make_federated(synthetic, 5, scheme="dirichlet", alpha=0.3, seed=3)
    b = make_federated(synthetic, 5, scheme="dirichlet", alpha=0.3, seed=3)
    c = make_federated(synthetic, 5, scheme="dirichlet", alpha=0.3, seed=4)
    assert all(torch.equal(p[1], q[1]) for p, q in zip(a.worker_data, b.worker_data, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a.indices, c.indices, strict=True))


def test_bad_arguments(synthetic):
    with pytest.raises(ValueError, match="partition_options"):
        make_federated(synthetic, 4, scheme="shards", shard_count=3)
    with pytest.raises(ValueError, match="scheme"):
        make_federated(synthetic, 4, scheme="by-writer")
    with pytest.raises(ValueError, match="device"):
        make_federated(synthetic, 4, device="abacus")
    no_writers = Dataset("toy", torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]), None, None, 2)
    with pytest.raises(ValueError, match="writers"):
        make_federated(no_writers, 2, scheme="natural")


def test_load_dataset_unknown_name_and_option():
    with pytest.raises(ValueError, match="name") as err:
        load_dataset("imagenet")
    assert all(n in str(err.value) for n in DATASET_NAMES)
    with pytest.raises(ValueError, match="options.*'download'"):
        load_dataset("synthetic", download=True)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"x_train": torch.zeros(3, 2, dtype=torch.float64)}, "float32"),
        ({"y_train": torch.tensor([0, 1])}, "3 samples but y_train has 2"),
        ({"y_train": torch.tensor([0, 1, 5])}, "num_classes"),
        ({"x_test": torch.zeros(1, 2)}, "both"),
        ({"x_test": torch.zeros(1, 3), "y_test": torch.tensor([0])}, "must match"),
        ({"writers": np.zeros(2)}, "writers"),
    ],
)
def test_dataset_validation(kwargs, word):
    fields = dict(
        name="toy",
        x_train=torch.zeros(3, 2),
        y_train=torch.tensor([0, 1, 0]),
        x_test=None,
        y_test=None,
        num_classes=2,
    )
    with pytest.raises(ValueError, match=word):
        Dataset(**{**fields, **kwargs})
