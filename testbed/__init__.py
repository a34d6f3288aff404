"""hsgd-testbed: network-emulated simulation testbed for hierarchical SGD.

    import testbed
    result = testbed.simulate(model, worker_data, tree=[[0, 1], [2, 3]], periods=[10, 2],
                              iterations=200, lr=0.05)
"""

from testbed.simulate import Callback, SimulationResult, TrainConfig, simulate
from testbed.tree import AggregationTree

__version__ = "0.1.0"
__all__ = ["AggregationTree", "Callback", "SimulationResult", "TrainConfig", "simulate", "__version__"]
