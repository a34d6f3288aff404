import pytest

from testbed.experiment.config import ExperimentConfig

TINY = dict(iterations=40, eval_every=10, seeds=(0,), divergence_every=0, target_acc=0.3)


@pytest.fixture
def tiny_config():
    """A seconds-long experiment on edge3level: the topology's H-SGD and local SGD."""
    return ExperimentConfig(algorithms=("hsgd", "local:2", "hsgd:40,2@0,2"), **TINY)
