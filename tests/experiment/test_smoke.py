"""TESTBED_SMOKE shrinks an experiment's budget, and only when set."""

import pytest
import torch

from testbed.data.dataset import Dataset
from testbed.experiment.api import load_config
from testbed.experiment.config import ExperimentConfig, preset
from testbed.experiment.smoke import ENV, shrink_config, shrink_dataset


def test_smoke_shrinks_the_budget_only_when_set(monkeypatch):
    paper = preset("paper")
    monkeypatch.delenv(ENV, raising=False)
    assert shrink_config(paper) is paper
    monkeypatch.setenv(ENV, "1")
    small = shrink_config(ExperimentConfig(seeds=(3, 4), batch_size=0, divergence_every=5))
    assert (small.iterations, small.eval_every, small.seeds, small.batch_size, small.divergence_every) == (10, 5, (3,), 4, 0)
    assert shrink_config(paper).model == "vgg11"  # what trains is unchanged, only how long
    monkeypatch.setenv(ENV, "0")
    assert shrink_config(paper) is paper


def test_smoke_cuts_the_test_split(monkeypatch):
    data = Dataset("d", torch.zeros(10, 2), torch.zeros(10, dtype=torch.long), torch.zeros(1000, 2),
                   torch.zeros(1000, dtype=torch.long), num_classes=2)
    monkeypatch.setenv(ENV, "1")
    assert len(shrink_dataset(data).y_test) == 256 and len(shrink_dataset(data).y_train) == 10


def test_load_config_takes_a_dict_a_file_or_a_config(tmp_path):
    (tmp_path / "c.toml").write_text('topology = "star"\niterations = 30\n')
    from_file = load_config(tmp_path / "c.toml")
    assert from_file == load_config({"topology": "star", "iterations": 30}) == ExperimentConfig(topology="star", iterations=30)
    assert load_config(from_file) is from_file
    with pytest.raises(ValueError, match="config: unknown key"):
        load_config({"iteration": 3})
