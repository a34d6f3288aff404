"""The fused forward (grouped conv / bmm) path of the batched engine, against the loop and vmap."""

import functools

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

import testbed
from testbed.engine import ENGINES, BatchedEngine, LoopEngine, MinibatchSampler, WorkerData
from testbed.engine.fused import FusedForward, Unsupported
from testbed.models import BasicBlock, build_model
from testbed.simulate import per_sample_cross_entropy

TREE_3_LEVELS = [[[0, 1], [2]], [[3, 4, 5, 6]], [[7], [8, 9]]]
PERIODS_3_LEVELS = [12, [6, 4, 12], [2, 3, 1, 2, 4]]
CPU = torch.device("cpu")


def image_workers(n, seed=0, shape=(2, 8, 8), classes=3):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(6 + 3 * j, *shape, generator=g) + 0.2 * j, torch.randint(0, classes, (6 + 3 * j,), generator=g))
        for j in range(n)
    ]


def small_cnn(batch_norm: bool, residual: bool = False, classes=3):
    """cifar_cnn-like: conv, [BN], ReLU, max-pool, [residual blocks], conv, avg-pool, dense,
    [BN1d], dense. (BatchNorm1d over 8 samples of a ReLU-sparse layer is ill-conditioned in
    fp32, so the residual variant, which tests the blocks, leaves it out.)"""
    torch.manual_seed(1)
    bn2 = [nn.BatchNorm2d(4)] if batch_norm else []
    bn1 = [nn.BatchNorm1d(12)] if batch_norm and not residual else []
    block = [BasicBlock(4, 4, 1, batch_norm), BasicBlock(4, 6, 1, batch_norm)] if residual else []
    c = 6 if residual else 4
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), *bn2, nn.ReLU(), nn.MaxPool2d(2), *block,
        nn.Conv2d(c, 5, 3, padding=1, bias=not batch_norm), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(5 * 2 * 2, 12), *bn1, nn.ReLU(), nn.Linear(12, classes),
    )  # fmt: skip


@pytest.fixture(params=["fused", "vmap"])
def batched_path(request, monkeypatch):
    """Run testbed.simulate's batched engine on one forced path."""
    monkeypatch.setitem(ENGINES, "batched", functools.partial(BatchedEngine, path=request.param))
    return request.param


def run_both(**kwargs):
    return [testbed.simulate(engine=e, device="cpu", **kwargs) for e in ("batched", "loop")]


def assert_same_state(a, b, tol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=tol, atol=tol, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("batch_size", [8, None], ids=["minibatch", "full-batch"])
@pytest.mark.parametrize("model", ["plain", "batchnorm", "residual-batchnorm"])
def test_conv_nets_match_loop_on_three_level_tree(batched_path, model, batch_size):
    """In float64: a ReLU fed by BatchNorm sits, now and then, within fp32 rounding of its
    kink (full-batch batchnorm, iteration 18, worker 8: -1.1e-7 exactly, +8.3e-7 in the
    loop's fp32 on one thread), and the flipped gate changes that step's gradient; fp32
    results then depend on the thread count's summation order, not on the engine."""
    data = [(x.double(), y) for x, y in image_workers(10)]
    net = small_cnn(batch_norm="batchnorm" in model, residual="residual" in model).double()
    batched, loop = run_both(
        model=net, worker_data=data, tree=TREE_3_LEVELS, periods=PERIODS_3_LEVELS, iterations=36, lr=0.02,
        batch_size=batch_size, momentum=0.5, weight_decay=1e-3, eval_data=data[0], eval_every=12, seed=3,
    )  # fmt: skip
    assert_same_state(batched.global_state, loop.global_state, tol=1e-9)
    cols = ["iteration", "worker_loss", "global_train_loss", "test_loss", "test_acc"]
    np.testing.assert_allclose(batched.metrics[cols].to_numpy(), loop.metrics[cols].to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_conv_net_with_partial_participation_matches_loop(batched_path, momentum):
    data = image_workers(10, seed=2)
    batched, loop = run_both(
        model=small_cnn(batch_norm=True), worker_data=data, tree=TREE_3_LEVELS, periods=PERIODS_3_LEVELS,
        iterations=24, lr=0.02, batch_size=8, momentum=momentum, weight_decay=1e-3, participation=0.5, seed=7,
    )  # fmt: skip
    assert_same_state(batched.global_state, loop.global_state)


def engines_after_steps(model, steps=3, n=4, b=3, **engine_kwargs):
    data = WorkerData.stack(image_workers(n), CPU)
    engines = [BatchedEngine(model, data, per_sample_cross_entropy, 0.9, 1e-3, CPU, **kw) for kw in engine_kwargs.values()]
    for engine in engines:
        sampler = MinibatchSampler(data, b, seed=1)
        for _ in range(steps):
            engine.step(sampler.next(), 0.05)
    return dict(zip(engine_kwargs, engines))


def test_chunks_memory_formats_and_grad_sinks_agree():
    """Chunking the worker dimension, NCHW vs channels_last and writing linear gradients
    into the momentum buffers are all the same arithmetic."""
    engines = engines_after_steps(
        small_cnn(batch_norm=True, residual=True), reference=dict(path="fused"), chunked=dict(path="fused", chunk_workers=3),
        nchw=dict(path="fused", memory_format="contiguous"), no_sink=dict(path="fused", sink_grads=False),
        vmap_chunked=dict(path="vmap", chunk_workers=3),
    )  # fmt: skip
    ref = engines.pop("reference")
    for name, engine in engines.items():
        for store in ("params", "buffers", "momenta"):
            for k, v in getattr(ref, store).items():
                torch.testing.assert_close(getattr(engine, store)[k], v, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name} {k}: {m}")


def test_batch_norm_running_stats_per_worker_as_torch_updates_them():
    model = small_cnn(batch_norm=True)
    data = WorkerData.stack(image_workers(3), CPU)
    batched = BatchedEngine(model, data, per_sample_cross_entropy, 0.0, 0.0, CPU, path="fused")
    loop = LoopEngine(model, data, per_sample_cross_entropy, 0.0, 0.0, CPU)
    for engine in (batched, loop):
        sampler = MinibatchSampler(data, 5, seed=4)
        for _ in range(4):
            engine.step(sampler.next(), 0.1)
    for j, worker in enumerate(loop.models):
        for k, v in worker.state_dict().items():
            if "running" in k or "num_batches" in k:
                torch.testing.assert_close(batched.buffers[k][j], v, rtol=1e-5, atol=1e-6, msg=lambda m: f"{j} {k}: {m}")


@pytest.mark.parametrize("name, size", [("cifar_cnn", 32), ("femnist_cnn", 28), ("celeba_cnn", 20), ("resnet18", 16), ("vgg11", 32), ("mlp", 28)])
def test_registry_models_forward_like_vmap(name, size):
    model = build_model(name, input_size=size, seed=0).train()
    n, b = 2, 3
    params = {k: torch.stack([v.detach() * (1 + 0.1 * j) for j in range(n)]) for k, v in model.named_parameters()}
    buffers = {k: torch.stack([v.clone() for _ in range(n)]) for k, v in model.named_buffers()}
    shape = (1, size, size) if name in ("femnist_cnn", "mlp") else (3, size, size)
    x = torch.randn(n, b, *shape, generator=torch.Generator().manual_seed(0))
    expected = vmap(lambda p, bu, xx: functional_call(model, (p, bu), (xx,)))(params, {k: v.clone() for k, v in buffers.items()}, x)
    out = FusedForward(model)(params, buffers, x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


class Reshaper(nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], -1)


@pytest.mark.parametrize(
    "model, reason",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 3)), "Dropout"),
        (nn.Sequential(Reshaper(), nn.Linear(4, 3)), "method .view"),
        (nn.Sequential(nn.Conv2d(2, 3, 3, padding_mode="reflect", padding=1), nn.Flatten()), "padding_mode"),
    ],
)
def test_unsupported_models_fall_back_to_vmap(model, reason):
    with pytest.raises(Unsupported, match=reason):
        FusedForward(model)
    data = WorkerData.stack([(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(2)], CPU)
    auto = BatchedEngine(model, data, per_sample_cross_entropy, 0.0, 0.0, CPU)
    assert auto.path == "vmap" and reason in auto.fallback_reason
    with pytest.raises(ValueError, match=f"path='fused'.*{reason}"):
        BatchedEngine(model, data, per_sample_cross_entropy, 0.0, 0.0, CPU, path="fused")


def test_supported_models_take_the_fused_path_by_default():
    data = WorkerData.stack(image_workers(2), CPU)
    assert BatchedEngine(small_cnn(True, True), data, per_sample_cross_entropy, 0.0, 0.0, CPU).path == "fused"


@pytest.mark.parametrize("bad", [dict(path="jit"), dict(chunk_workers=0)])
def test_bad_engine_options_raise(bad):
    data = WorkerData.stack(image_workers(2), CPU)
    with pytest.raises(ValueError, match=next(iter(bad))):
        BatchedEngine(small_cnn(False), data, per_sample_cross_entropy, 0.0, 0.0, CPU, **bad)


def test_shape_dependent_gaps_are_found_at_build_time():
    """A 2-d pooling layer on 2-d samples (torch reads the batch as channels) is only
    found unsupported once the data's shape is known."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 3))
    data = WorkerData.stack([(torch.randn(5, 2, 4), torch.randint(0, 3, (5,))) for _ in range(2)], CPU)
    engine = BatchedEngine(model, data, per_sample_cross_entropy, 0.0, 0.0, CPU)
    assert engine.path == "vmap" and "image layer" in engine.fallback_reason
