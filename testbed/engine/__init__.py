"""Training engines: the batched production path and the per-worker loop reference."""

from testbed.engine.aggregation import AggregationPlan, plan_aggregation, subtree_weights
from testbed.engine.batched import BatchedEngine
from testbed.engine.batches import Batch, MinibatchSampler, WorkerData
from testbed.engine.loop import LoopEngine

ENGINES = {"batched": BatchedEngine, "loop": LoopEngine}

__all__ = [
    "ENGINES",
    "AggregationPlan",
    "Batch",
    "BatchedEngine",
    "LoopEngine",
    "MinibatchSampler",
    "WorkerData",
    "plan_aggregation",
    "subtree_weights",
]
