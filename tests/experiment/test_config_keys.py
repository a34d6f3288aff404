"""`testbed config` lists every key from the dataclass itself; config files in TOML;
errors about data answered in config keys."""

import dataclasses
import json

import pytest

from testbed.cli import main
from testbed.experiment.config import ExperimentConfig, preset
from testbed.experiment.configfile import read_config_file
from testbed.experiment.keys import config_keys


def test_every_key_has_a_type_a_default_and_a_meaning():
    keys = {k.name: k for k in config_keys()}
    assert list(keys) == [f.name for f in dataclasses.fields(ExperimentConfig)]
    undocumented = [name for name, k in keys.items() if len(k.meaning) < 10]
    assert not undocumented, f"write a docstring under these ExperimentConfig fields: {undocumented}"
    assert (keys["seeds"].type, keys["seeds"].default) == ("list of int", "0,1")
    assert (keys["lr"].type, keys["lr"].default) == ("float", "0.05")
    assert keys["deterministic"].default == "false"
    assert keys["iterations"].meaning == "Local iterations T every worker runs."


def test_testbed_config_prints_them_with_a_presets_values(capsys):
    assert main(["config", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(ExperimentConfig):
        assert f"\n{f.name}  (" in out
    assert "iterations  (int, default 20000)" in out and "SET=" in out


def test_a_toml_config_reads_as_the_same_json_one(tmp_path):
    values = {"topology": "star", "iterations": 30, "lr": 0.1, "seeds": [0, 3], "algorithms": ["local:5", "hsgd"],
              "deterministic": True}
    (tmp_path / "c.json").write_text(json.dumps(values))
    (tmp_path / "c.toml").write_text('topology = "star"\niterations = 30\nlr = 0.1\nseeds = [0, 3]\n'
                                     'algorithms = ["local:5", "hsgd"]\ndeterministic = true\n')
    assert read_config_file(tmp_path / "c.toml") == read_config_file(tmp_path / "c.json") == values
    config = ExperimentConfig.from_dict(read_config_file(tmp_path / "c.toml"))
    assert config.seeds == (0, 3) and config.algorithms == ("local:5", "hsgd")


@pytest.mark.parametrize("text, message", [
    ("lr = nan\n", "c.toml: lr = nan is not a number a config may hold"),
    ("iterations = [20\n", "c.toml: invalid TOML"),
    ("[training]\nlr = 0.1\n", "unknown key"),
])
def test_bad_toml_is_refused_naming_the_file(tmp_path, capsys, text, message):
    (tmp_path / "c.toml").write_text(text)
    assert main(["experiment", "--config", str(tmp_path / "c.toml"), "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_data_errors_give_the_command_line_form(tmp_path, capsys):
    argv = ["experiment", "--topo", "star", "--reports", str(tmp_path), "--set", "partition=iid"]
    assert main([*argv, "--set", "dataset=npz"]) == 2
    assert 'needs data_root, the .npz file; on the command line: SET="dataset=npz data_root=FILE.npz"' in capsys.readouterr().err
    assert main([*argv, "--set", "dataset=femnist", "--set", f"data_root={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert "point data_root at them" in err and "root=" not in err.replace("data_root", "")
    assert not any(tmp_path.iterdir())
    assert preset("quick") == ExperimentConfig()
