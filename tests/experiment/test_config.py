import pytest

from testbed.experiment.config import PRESETS, ExperimentConfig, preset


def test_presets_resolve_and_round_trip_through_dict():
    for name in PRESETS:
        config = preset(name)
        assert ExperimentConfig.from_dict(config.to_dict()) == config
    assert preset("paper").algorithms == ("local:5", "local:10", "local:50", "hsgd:50,5", "hsgd:50,10")
    paper = preset("paper")  # as the paper's code: one class per worker, consecutive groups, 531 MB priced
    assert (paper.topology, paper.partition, paper.shards_per_worker, paper.grouping) == ("paper_table2", "shards", 1, "as-given")
    assert paper.priced_params == 132_863_336 and paper.window_kib == 12288
    assert paper.augment == "crop_flip" and preset("quick").augment == "none"  # flipped and cropped as there


def test_overrides_parse_to_the_field_types():
    config = preset("quick").with_overrides(["iterations=50", "lr=0.1", "seeds=0,1,2", "traces=a=x.csv", "model=logreg"])
    assert config.iterations == 50 and config.lr == 0.1 and config.seeds == (0, 1, 2)
    assert config.trace_overrides == {"a": "x.csv"} and config.model == "logreg"


@pytest.mark.parametrize(
    "assignment, match",
    [
        ("iteration=5", "--set iteration: unknown key"),
        ("iterations=ten", "iterations=ten: expected a finite int"),
        ("iterations=0", "iterations: must be > 0"),
        ("lr=-1", "lr: must be > 0"),
        ("lr=nan", "expected a finite float"),
        ("participation=1.5", "participation"),
        ("augment=flip", "augment: must be one of none, crop_flip, got 'flip'"),
        ("weighting=median", "weighting"),
        ("seeds=", "seeds: give at least one"),
        ("traces=nofile", "traces: expected NAME=path.csv"),
        ("compute_ms=-3", "compute_ms"),
        ("threads=-1", "threads: must be >= 0"),
        ("precision=fp8", "precision: must be one of fp32, bf16, fp16"),
        ("threads=two", "threads=two: expected a finite int"),
        ("noequals", "expected key=value"),
    ],
)
def test_bad_overrides_fail_naming_the_key(assignment, match):
    with pytest.raises(ValueError, match=match):
        preset("quick").with_overrides([assignment])


def test_unknown_preset_and_keys_in_dicts():
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fast")
    with pytest.raises(ValueError, match="unknown key\\(s\\) colour"):
        ExperimentConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="iterations: expected int"):
        ExperimentConfig.from_dict({"iterations": "10"})


def test_algorithm_lists_keep_the_commas_inside_specs():
    config = preset("quick").with_overrides(["algorithms=local:5,hsgd:50,5,hsgd:50,10@0,2"])
    assert config.algorithms == ("local:5", "hsgd:50,5", "hsgd:50,10@0,2")


def test_paper_preset_partition_is_one_class_per_worker_in_consecutive_groups():
    import numpy as np

    from testbed.data import partition

    cfg = preset("paper")
    labels = np.repeat(np.arange(10), 60)  # CIFAR-10's classes are equal in size
    parts = partition(labels, 10, cfg.partition, np.random.default_rng(0), shards_per_worker=cfg.shards_per_worker)
    classes = [set(labels[p].tolist()) for p in parts]
    assert all(len(c) == 1 for c in classes) and set().union(*classes) == set(range(10))
    groups = [set().union(*classes[:5]), set().union(*classes[5:])]  # as-given: workers 0-4 and 5-9
    assert len(groups[0]) == len(groups[1]) == 5 and not groups[0] & groups[1]


def test_paper_preset_implies_its_topology_without_topo():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "testbed", "experiment", "--preset", "paper",
                          "--set", "algorithms=hsgd:50,5,1"], capture_output=True, text=True)
    assert out.returncode == 2 and "paper_table2" in out.stderr and "Traceback" not in out.stderr


def test_train_config_carries_the_training_keys_checked_by_one_rule():
    from testbed.simulate import TrainConfig

    config = preset("quick").with_overrides(["batch_size=0", "lr=0.2", "participation=0.5", "precision=bf16"])
    train = config.train_config(seed=7)
    assert isinstance(train, TrainConfig) and train.seed == 7 and train.batch_size is None  # 0: the full local set
    assert (train.lr, train.participation, train.precision, train.iterations) == (0.2, 0.5, "bf16", config.iterations)
    # the library and the config refuse a bad value with the same words
    with pytest.raises(ValueError, match=r"^momentum: must be in \[0, 1\), got 1.0$"):
        TrainConfig(iterations=5, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"^--set momentum: must be in \[0, 1\), got 1.0$"):
        preset("quick").with_overrides(["momentum=1.0"])
