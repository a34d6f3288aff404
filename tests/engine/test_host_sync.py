"""The hot loop does not synchronise with the device between aggregation and evaluation
points, steps are chunked to fit the device's memory, and non-finite losses are still caught."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import testbed
from testbed.engine import ENGINES, BatchedEngine, MinibatchSampler, WorkerData
from testbed.engine.memory import MemoryNeed, activation_bytes_per_sample, plan_chunk_workers
from testbed.engine.nonfinite import NonFiniteWatch
from testbed.simulate import Callback, HSGDRun, per_sample_cross_entropy

CPU = torch.device("cpu")
TREE, PERIODS = [[[0, 1], [2]], [[3, 4, 5]]], [6, [3, 6], [1, 3, 2]]


def image_workers(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(5 + 2 * j, 2, 8, 8, generator=g), torch.randint(0, 3, (5 + 2 * j,), generator=g)) for j in range(n)]


def small_cnn(batch_norm: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    bn = [torch.nn.BatchNorm2d(4)] if batch_norm else []
    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), *bn, torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(64, 3))  # fmt: skip

# Python-level reads of a tensor's value: on a GPU each one waits for the device
HOST_READS = {"__bool__", "item", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}


class Gate:
    """Open outside the loop and inside the aggregation and evaluation points (which nest:
    an evaluation takes the global state); ``changed`` hears every opening and closing."""

    def __init__(self, changed=lambda is_open: None):
        self.depth, self.changed = 1, changed  # open: construction may read; on_start closes it

    @property
    def open(self) -> bool:
        return self.depth > 0

    def enter(self) -> None:
        self.depth += 1
        self.changed(self.open)

    def leave(self) -> None:
        self.depth -= 1
        self.changed(self.open)


class HostReads(TorchFunctionMode):
    """Counts host reads of tensors, inside and outside the gate."""

    def __init__(self, gate: Gate):
        super().__init__()
        self.gate = gate
        self.in_steps: list[str] = []
        self.at_sync_points: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            (self.at_sync_points if self.gate.open else self.in_steps).append(name)
        return func(*args, **(kwargs or {}))


class LoopStarts(Callback):
    def __init__(self, gate: Gate):
        self.gate = gate

    def on_start(self, run) -> None:
        self.gate.leave()


def gate_sync_points(monkeypatch, gate: Gate) -> None:
    """Open the gate in the aggregation and evaluation points and at the end of the run."""
    for owner, name in [(HSGDRun, "_evaluate"), (BatchedEngine, "average"), (BatchedEngine, "global_state"),
                        (NonFiniteWatch, "check")]:  # fmt: skip
        real = getattr(owner, name)

        def wrapped(*args, _real=real, **kwargs):
            gate.enter()
            try:
                return _real(*args, **kwargs)
            finally:
                gate.leave()

        monkeypatch.setattr(owner, name, wrapped)


RUNS = {
    "fused-minibatch-partial": dict(batch_size=4, participation=0.5, path="fused"),
    "fused-batchnorm-full-unequal": dict(batch_size=None, participation=1.0, path="fused"),
    "vmap-minibatch": dict(batch_size=4, participation=1.0, path="vmap"),
}


def run_guarded(monkeypatch, device: str, case: dict, callbacks=()):
    monkeypatch.setitem(ENGINES, "batched", functools.partial(BatchedEngine, path=case["path"]))
    return testbed.simulate(
        small_cnn(), image_workers(6), TREE, PERIODS, iterations=18, lr=0.02,
        batch_size=case["batch_size"], momentum=0.9, participation=case["participation"], eval_every=9,
        eval_data=image_workers(1)[0], device=device, callbacks=callbacks,
    )  # fmt: skip


@pytest.mark.parametrize("case", RUNS, ids=list(RUNS))
def test_steps_read_no_tensor_on_the_host_between_sync_points(monkeypatch, case):
    """The CPU stand-in for the GPU test below: Python-level reads (.item(), bool(), ...)
    are counted; reads inside torch's C++ (e.g. a boolean-mask index) only the GPU test sees."""
    gate = Gate()
    reads = HostReads(gate)
    gate_sync_points(monkeypatch, gate)
    with reads:
        result = run_guarded(monkeypatch, "cpu", RUNS[case], [LoopStarts(gate)])
    assert result.extras["status"] == "ok"
    assert reads.in_steps == []
    assert reads.at_sync_points  # the counter sees reads (evaluation does them)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", RUNS, ids=list(RUNS))
def test_steps_do_not_synchronise_the_gpu(monkeypatch, case):
    gate = Gate(lambda is_open: torch.cuda.set_sync_debug_mode(0 if is_open else "error"))
    gate_sync_points(monkeypatch, gate)
    try:
        result = run_guarded(monkeypatch, "cuda", RUNS[case], [LoopStarts(gate)])
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert result.extras["status"] == "ok"


def test_a_non_finite_loss_is_reported_with_its_first_iteration_and_workers():
    watch = NonFiniteWatch(4, CPU)
    watch.set_participants(np.array([True, True, False, True]))
    watch.record(torch.tensor([0.5, 0.4, float("nan"), 0.3]), 1)  # worker 2 sat out: its NaN is expected
    assert watch.check() is None
    watch.record(torch.tensor([0.5, float("inf"), float("nan"), float("nan")]), 2)
    watch.record(torch.tensor([float("nan"), float("nan"), float("nan"), float("nan")]), 3)
    assert watch.check() == "diverged: training loss is inf at iteration 2 (worker 1 and 1 more); try a smaller lr"


# --------------------------------------------------------------------------- memory


NEED = MemoryNeed(state_bytes=1000, grad_bytes=100, activation_bytes_per_sample=50)


def test_chunks_are_the_most_workers_whose_step_fits():
    # a step of one worker at b=4: 2 * 4 * 50 + 100 = 500 bytes; 80% of 2000 bytes = 3 workers
    assert plan_chunk_workers(10, 4, NEED, 2000, CPU) == 3
    assert plan_chunk_workers(10, 4, NEED, 10**9, CPU) == 10
    assert plan_chunk_workers(10, 4, NEED, None, CPU) == 10  # no limit
    with pytest.raises(ValueError, match=r"one worker's step at batch 4 needs about 0\.0 MiB but cpu has 0\.0 MiB free"):
        plan_chunk_workers(10, 4, NEED, 600, CPU)


def test_activation_bytes_scale_with_the_model_width():
    x = torch.randn(2, 2, 8, 8)
    narrow, wide = small_cnn(), torch.nn.Sequential(torch.nn.Conv2d(2, 64, 3, padding=1), torch.nn.ReLU(),
                                                                 torch.nn.Flatten(), torch.nn.Linear(64 * 64, 3))  # fmt: skip
    # the wide net saves its ReLU's 64x8x8 output (the linear layer's input is a view of it)
    assert activation_bytes_per_sample(wide, x) >= 64 * 64 * 4 > activation_bytes_per_sample(narrow, x) > 0


def test_a_memory_limit_chunks_the_step_with_the_same_result():
    data = WorkerData.stack(image_workers(6), CPU)
    engines = {
        limit: BatchedEngine(small_cnn(), data, per_sample_cross_entropy, 0.9, 0.0, CPU, memory_bytes=limit)
        for limit in (None, 100_000)
    }
    for engine in engines.values():
        sampler = MinibatchSampler(data, 3, seed=1)
        for _ in range(3):
            engine.step(sampler.next(), 0.05)
    assert engines[None]._chunk(3) == 6 and 1 <= engines[100_000]._chunk(3) < 6
    for k, v in engines[None].params.items():
        torch.testing.assert_close(engines[100_000].params[k], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("limit, match", [(15_000, "the stacked state of 6 workers needs"), (60_000, "one worker's step at batch 3000")])
def test_too_little_memory_is_refused_naming_the_limit(limit, match):
    data = WorkerData.stack(image_workers(6), CPU)
    with pytest.raises(ValueError, match=match):  # 6 x ~2 KB of state; ~25 KB per worker per 3 samples
        engine = BatchedEngine(small_cnn(), data, per_sample_cross_entropy, 0.9, 0.0, CPU, memory_bytes=limit)
        engine._chunk(3000)
