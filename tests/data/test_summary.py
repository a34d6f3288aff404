"""partition_summary: columns, per-worker and per-group rows, the TV distance."""

import numpy as np
import pytest

from testbed.data import partition_summary, total_variation

# Three workers, three labels; the global mix is 4/3/3 out of 10.
WORKERS = [np.array([0, 0, 0, 0]), np.array([1, 1, 1]), np.array([2, 2, 2])]


def test_worker_rows_and_columns():
    df = partition_summary(WORKERS, 3)
    assert list(df.columns) == [
        "kind", "id", "group", "samples", "n_labels", "tv_to_global", "workers",
        "label_0", "label_1", "label_2",
    ]  # fmt: skip
    assert df["kind"].tolist() == ["worker"] * 3 and df["group"].tolist() == [-1] * 3
    assert df["samples"].tolist() == [4, 3, 3] and df["n_labels"].tolist() == [1, 1, 1]
    assert df[["label_0", "label_1", "label_2"]].to_numpy().tolist() == [[4, 0, 0], [0, 3, 0], [0, 0, 3]]
    # worker 0 holds only label 0: TV = 0.5 * (|1 - .4| + .3 + .3) = 0.6
    assert df["tv_to_global"].tolist() == pytest.approx([0.6, 0.7, 0.7])


def test_group_rows():
    df = partition_summary(WORKERS, 3, groups=[[0, 2], [1]])
    assert df["group"].tolist() == [0, 1, 0, 0, 1]
    groups = df[df.kind == "group"]
    assert groups["id"].tolist() == [0, 1] and groups["workers"].tolist() == [2, 1]
    assert groups["samples"].tolist() == [7, 3]
    # group 0 = 4/0/3 of 7: TV = 0.5 * (|4/7 - .4| + .3 + |3/7 - .3|)
    assert groups["tv_to_global"].iloc[0] == pytest.approx(0.5 * (4 / 7 - 0.4 + 0.3 + 3 / 7 - 0.3))


def test_total_variation_bounds():
    assert total_variation(np.array([[5, 5]]), np.array([1, 1]))[0] == 0.0
    assert total_variation(np.array([[3, 0]]), np.array([0, 2]))[0] == 1.0


@pytest.mark.parametrize(
    "groups, word",
    [
        ([[0, 1], [1, 2]], "worker 1 appears"),
        ([[0, 1]], r"workers \[2\] are in no group"),
        ([[0, 1, 2], []], "empty"),
        ([[0, 1, 5]], "not a worker index"),
    ],
)
def test_bad_groups(groups, word):
    with pytest.raises(ValueError, match=word):
        partition_summary(WORKERS, 3, groups)


def test_bad_labels_and_classes():
    with pytest.raises(ValueError, match="num_classes"):
        partition_summary(WORKERS, 0)
    with pytest.raises(ValueError, match=r"worker_labels\[2\]"):
        partition_summary(WORKERS, 2)
