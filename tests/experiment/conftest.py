import pytest

from testbed.experiment.config import ExperimentConfig

TINY = dict(iterations=40, eval_every=10, seeds=(0,), divergence_every=0, target_acc=0.3)


@pytest.fixture
def tiny_config():
    """A seconds-long experiment on edge3level: the topology's H-SGD and local SGD."""
    return ExperimentConfig(algorithms=("hsgd", "local:2", "hsgd:40,2@0,2"), **TINY)


@pytest.fixture
def crash_after_first_checkpoint(monkeypatch, tmp_path):
    """Run a config under tmp_path/crash and kill it (KeyboardInterrupt) right after the
    first checkpoint written by a pair whose checkpoint name contains ``part``; returns
    the interrupted run folder."""
    from testbed.experiment import runner

    def crash(config: ExperimentConfig, part: str = ""):
        real = runner.Checkpointer.after_iteration

        def crash_after_save(self, t):
            real(self, t)
            if self.last_t == t and t > 0 and part in self.path.name:
                raise KeyboardInterrupt

        monkeypatch.setattr(runner.Checkpointer, "after_iteration", crash_after_save)
        with pytest.raises(KeyboardInterrupt):
            runner.run_experiment(config, reports_root=tmp_path / "crash", progress=False)
        monkeypatch.undo()
        return next((tmp_path / "crash" / config.topology).glob("2*"))

    return crash
