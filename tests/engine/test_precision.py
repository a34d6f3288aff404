"""Opt-in mixed precision: close to fp32 (not equal), state and averages kept in fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import testbed
from testbed.engine import BatchedEngine, MinibatchSampler, WorkerData
from testbed.simulate import per_sample_cross_entropy

CPU = torch.device("cpu")
TREE, PERIODS = [[[0, 1], [2]], [[3, 4, 5, 6]], [[7], [8, 9]]], [12, [6, 4, 12], [2, 3, 1, 2, 4]]


def image_workers(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(6 + 3 * j, 2, 8, 8, generator=g) + 0.2 * j, torch.randint(0, 3, (6 + 3 * j,), generator=g))
        for j in range(n)
    ]


def small_cnn(batch_norm: bool) -> nn.Module:
    torch.manual_seed(1)
    bn2, bn1 = ([nn.BatchNorm2d(4)], [nn.BatchNorm1d(12)]) if batch_norm else ([], [])
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), *bn2, nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(20, 12), *bn1, nn.ReLU(), nn.Linear(12, 3),
    )  # fmt: skip


def distance_over_update(state: dict, reference: dict, initial: dict) -> float:
    """||state - reference|| / ||reference - initial||: the error relative to how far training moved."""
    keys = [k for k in reference if reference[k].is_floating_point()]
    err = sum(float(((state[k].double() - reference[k].double()) ** 2).sum()) for k in keys)
    moved = sum(float(((reference[k].double() - initial[k].double()) ** 2).sum()) for k in keys)
    return (err / moved) ** 0.5


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("batch_norm", [True, False], ids=["batchnorm", "plain"])
def test_low_precision_stays_close_to_the_fp32_loop_on_a_three_level_tree(precision, batch_norm):
    data, net = image_workers(10), small_cnn(batch_norm)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    runs = {
        (engine, p): testbed.simulate(
            net, data, TREE, PERIODS, iterations=36, lr=0.02, batch_size=8, momentum=0.5, weight_decay=1e-3,
            eval_data=data[0], eval_every=12, seed=3, engine=engine, device="cpu", precision=p,
        )  # fmt: skip
        for engine, p in [("loop", "fp32"), ("batched", precision)]
    }
    low, reference = runs[("batched", precision)], runs[("loop", "fp32")]
    # measured: 0.002-0.065 of the distance training moved (bf16 keeps 8 bits of mantissa)
    assert distance_over_update(low.global_state, reference.global_state, initial) < 0.15
    for column in ("worker_loss", "global_train_loss"):
        assert (low.metrics[column] - reference.metrics[column]).abs().max() < 0.1
    assert all(v.dtype == initial[k].dtype for k, v in low.global_state.items())


@pytest.mark.parametrize("path", ["fused", "vmap"])
def test_master_weights_momentum_and_averages_stay_fp32(path):
    data = WorkerData.stack(image_workers(4), CPU)
    engine = BatchedEngine(small_cnn(True), data, per_sample_cross_entropy, 0.9, 0.0, CPU, path=path, precision="bf16")
    sampler = MinibatchSampler(data, 4, seed=0)
    losses = engine.step(sampler.next(), 0.05)
    assert losses.dtype == torch.float32 and bool(torch.isfinite(losses).all())
    for store in (engine.params, engine.momenta):
        assert {v.dtype for v in store.values()} == {torch.float32}
    assert any(float(m.abs().sum()) > 0 for m in engine.momenta.values())  # the step reached the buffers


@pytest.mark.parametrize("call", ["simulate", "engine"])
def test_an_unknown_precision_is_refused_naming_the_choices(call):
    data = image_workers(2)
    with pytest.raises(ValueError, match="precision: must be one of fp32, bf16, fp16, got 'fp8'"):
        if call == "simulate":
            testbed.simulate(small_cnn(False), data, [0, 1], [2], iterations=2, lr=0.1, precision="fp8")
        else:
            BatchedEngine(small_cnn(False), WorkerData.stack(data, CPU), per_sample_cross_entropy, 0.0, 0.0, CPU, precision="fp8")


def test_a_short_real_run_in_bf16_reaches_the_fp32_accuracy(shared_data):
    from testbed.data import load_dataset, make_federated
    from testbed.models import build_model

    dataset = load_dataset("mnist", root=shared_data)
    federated = make_federated(dataset, 8, scheme="iid", seed=0)
    accuracy = {}
    for precision in ("fp32", "bf16"):
        model = build_model("mlp", in_features=784, num_classes=10, seed=0)
        result = testbed.simulate(model, federated, [[0, 1, 2, 3], [4, 5, 6, 7]], [20, 5], iterations=200, lr=0.1,
                                  batch_size=16, eval_every=200, device="cpu", precision=precision)  # fmt: skip
        accuracy[precision] = result.metrics.test_acc.iloc[-1]
    assert accuracy["fp32"] > 0.85  # the run learns: a real check, not two failures agreeing
    assert abs(accuracy["bf16"] - accuracy["fp32"]) < 0.02, accuracy
