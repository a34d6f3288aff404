"""hsgd-testbed: network-emulated simulation testbed for hierarchical SGD.

    import testbed
    result = testbed.simulate("mlp", worker_data, tree=[[0, 1], [2, 3]], periods=[10, 2],
                              iterations=200, lr=0.05, seed=0)
    result = testbed.simulate("mlp", worker_data, tree="hsgd", network="edge3level")  # + sim_time_s
    run = testbed.run_experiment({"topology": "star", "iterations": 200})  # a whole run folder

The names below load on first use, so ``testbed topo``/``trace``/``bound`` start without torch.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_EXPORTS = {  # public name -> the module defining it
    "simulate": "testbed.simulate",
    "Callback": "testbed.simulate",
    "SimulationResult": "testbed.simulate",
    "TrainConfig": "testbed.simulate",
    "AggregationTree": "testbed.tree",
    "ExperimentConfig": "testbed.experiment.config",
    "RunResult": "testbed.experiment.api",
    "run_experiment": "testbed.experiment.api",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'testbed' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """Importing the submodule ``testbed.simulate`` would bind it over the function
    ``testbed.simulate``; keep the function (as an eager ``from ... import`` would)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
