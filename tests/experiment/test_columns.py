"""The data dictionary: one source for column order, COLUMNS.md and the README."""

from pathlib import Path

import pandas as pd

from testbed.experiment.columns import EVENTS, METRICS, columns_tables, find, order_columns
from testbed.net.events import FRAME_COLUMNS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_holds_the_generated_tables():
    text = README.read_text(encoding="utf-8")
    begin = text.index("<!-- columns: generated")
    block = text[text.index("\n", begin) + 1 : text.index("<!-- columns: end -->")]
    assert block == columns_tables()


def test_every_column_a_run_writes_is_documented(tiny_config, tmp_path):
    from testbed.experiment.runner import run_experiment

    run_dir = run_experiment(tiny_config.with_overrides(["divergence_every=1"]), reports_root=tmp_path, progress=False)
    metrics = pd.read_csv(run_dir / "metrics.csv", nrows=1)
    events = pd.read_csv(run_dir / "events.csv", nrows=1)
    assert [c for c in metrics.columns if find(METRICS, c) is None] == []
    assert list(events.columns) == [c.name for c in EVENTS] == ["algorithm", "seed", *FRAME_COLUMNS]
    assert (run_dir / "COLUMNS.md").read_text(encoding="utf-8").endswith(columns_tables())
    for column in metrics.columns:
        assert f"`{find(METRICS, column).name}`" in columns_tables()


def test_order_follows_the_dictionary_and_the_tiers():
    names = ["test_acc", "my_callback_column", "comm_edge_s", "div_up_l2", "seed", "comm_cloud_s", "div_up_l1",
             "comm_regional_s", "algorithm", "iteration"]
    assert order_columns(names, METRICS, ("cloud", "regional", "edge")) == [
        "algorithm", "seed", "iteration", "comm_cloud_s", "comm_regional_s", "comm_edge_s", "test_acc",
        "div_up_l1", "div_up_l2", "my_callback_column"]


def test_a_run_folder_of_an_older_version_is_not_resumed(tmp_path):
    import pytest

    from testbed.experiment.tidy import refuse_old_columns

    ok = pd.DataFrame({"algorithm": ["a"], "comm_cloud_s": [1.0], "worker_loss": [0.1]})
    assert refuse_old_columns(ok, tmp_path / "metrics.csv") is ok and refuse_old_columns(None, tmp_path) is None
    old = pd.DataFrame({"algorithm": ["a"], "comm_l0_s": [1.0], "train_loss": [0.1]})
    with pytest.raises(ValueError, match=r"metrics.csv: written by an older version \(columns comm_l0_s, train_loss\)"):
        refuse_old_columns(old, tmp_path / "metrics.csv")
