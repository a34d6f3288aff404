"""The production engine: every worker's state stacked on the device, stepped together.

Parameters, buffers and momentum are dicts of tensors with a leading worker dimension
[n, ...]. A step computes every worker's gradient at once along one of two paths:

* ``fused`` (models built from the layers :mod:`testbed.engine.fused` knows): a
  hand-fused forward (grouped convs, bmm) differentiated by plain autograd, with linear
  weight gradients written straight into the momentum buffers;
* ``vmap`` (any other model): ``vmap(grad(functional_call))``.

then updates them with fused SGD kernels (:mod:`testbed.engine.sgd`). An aggregation is
one weighted segment mean per tensor (:mod:`testbed.engine.segments`). The worker
dimension is processed in chunks of at most ``chunk_workers`` (contiguous slices are
views, so chunking copies nothing); a distributed backend would hand each rank one slice.
Unless set, the chunk is the most workers whose step fits in the device's free memory
(:mod:`testbed.engine.memory`; all of them on the CPU).

Device-agnostic: nothing here assumes the CPU, and a step does not synchronise with the
device (whether a batch is padded is known on the host; index copies are queued from
pinned memory).
"""

from __future__ import annotations

import copy
import logging
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from testbed.engine.aggregation import AggregationPlan
from testbed.engine.batches import Batch, WorkerData, gather, to_device
from testbed.engine.fused import FusedForward, MemoryFormat, Unsupported
from testbed.engine.linear import GradSink
from testbed.engine.memory import MemoryNeed, activation_bytes_per_sample, check_state_fits, device_free_bytes, plan_chunk_workers
from testbed.engine.precision import Precision, autocast, check_precision
from testbed.engine.segments import Segments
from testbed.engine.sgd import sgd_update, sgd_update_sunk

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Path = Literal["auto", "fused", "vmap"]
Rows = slice | torch.Tensor  # a contiguous range of workers (views) or an index (copies)

log = logging.getLogger(__name__)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class BatchedEngine:
    """n workers' copies of ``model`` as stacked tensors; see the module docstring.

    ``path``: ``auto`` takes the fused forward when the model is supported, else vmap;
    ``fused`` raises ValueError naming the unsupported part. ``memory_format`` of conv
    activations: channels_last is the faster one for grouped convs on both oneDNN (CPU)
    and cuDNN. ``sink_grads``: write linear weight gradients into the optimizer buffers.
    ``chunk_workers``: workers stepped at once (None: as many as fit in memory).
    ``memory_bytes``: the memory the state and a step may use (None: the device's free
    memory on a GPU, no limit on the CPU). ``precision``: the forward's and backward's
    dtype (:mod:`testbed.engine.precision`); state and aggregation stay fp32.
    """

    def __init__(
        self,
        model: nn.Module,
        data: WorkerData,
        loss: PerSampleLoss,
        momentum: float,
        weight_decay: float,
        device: torch.device,
        *,
        path: Path = "auto",
        memory_format: MemoryFormat = "channels_last",
        chunk_workers: int | None = None,
        sink_grads: bool = True,
        memory_bytes: int | None = None,
        precision: Precision = "fp32",
    ):
        n = data.n_workers
        if chunk_workers is not None and chunk_workers < 1:
            raise ValueError(f"chunk_workers must be >= 1 or None, got {chunk_workers!r}")
        self.data = data
        self.loss = loss
        self.momentum = momentum
        self.weight_decay = weight_decay
        check_precision(precision)
        self.precision = precision
        self.chunk_workers = chunk_workers
        self.model = copy.deepcopy(model).to(device).train()
        self._memory = self._memory_plan(data, momentum, memory_bytes, device)
        self._chunks: dict[int, int] = {}  # minibatch size -> workers stepped at once
        stack = lambda t: t.detach().to(device).unsqueeze(0).repeat(n, *([1] * t.dim())).contiguous()
        self.params = {k: stack(v) for k, v in self.model.named_parameters()}
        self.buffers = {k: stack(v) for k, v in self.model.named_buffers()}
        self.momenta = {k: torch.zeros_like(v) for k, v in self.params.items()} if momentum else {}
        # Full local batches of unequal size are padded with zero-weight rows; batch norm
        # would still see the padding, so such models step each size group on its own.
        self._bucket_full_batches = has_batch_norm(self.model)
        self._counts = data.counts.cpu().numpy()  # on the host once: no device sync per step
        self.fused: FusedForward | None = None
        self.fallback_reason: str | None = None
        if path not in ("auto", "fused", "vmap"):
            raise ValueError(f"path must be 'auto', 'fused' or 'vmap', got {path!r}")
        if path != "vmap":
            try:
                fused = FusedForward(self.model, memory_format)
                # one worker, two samples (batch norm needs more than one value per channel)
                fused.probe({k: v[:1] for k, v in self.params.items()}, {k: v[:1] for k, v in self.buffers.items()},
                            data.x[:2].unsqueeze(0))  # fmt: skip
                self.fused = fused
            except Unsupported as err:
                if path == "fused":
                    raise ValueError(f"path='fused': {err}") from None
                self.fallback_reason = str(err)
                log.info("batched engine: vmap path (%s)", err)
        self.path = "fused" if self.fused else "vmap"
        if self.path == "vmap" and precision != "fp32":
            # under vmap, batch norm refuses a low-precision input with fp32 statistics
            # (the fused path's F.batch_norm takes it): it runs in fp32, as autocast does on GPUs
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.register_forward_pre_hook(lambda m, args: (args[0].float(), *args[1:]))
        # weights whose gradient the backward GEMM writes into the optimizer buffer
        sunk = set(self.fused.sinkable_weights) if self.fused and sink_grads else set()
        self._sunk = [k for k in self.params if k in sunk]
        self._grad_buffers = {k: torch.empty_like(self.params[k]) for k in self._sunk} if not momentum else {}
        self._grad = vmap(grad(self._worker_loss, has_aux=True))

    def _memory_plan(self, data: WorkerData, momentum: float, memory_bytes: int | None, device: torch.device):
        """(what one worker needs, memory left for a step), or None when nothing limits it;
        refuses a stacked state that would not fit before allocating it."""
        budget = memory_bytes if memory_bytes is not None else device_free_bytes(device)
        if budget is None or self.chunk_workers is not None:
            return None
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in self.model.buffers())
        need = MemoryNeed(params * (2 if momentum else 1) + buffers, params,
                          activation_bytes_per_sample(self.model, data.x[:2]))  # fmt: skip
        check_state_fits(data.n_workers, need, budget, device)
        return need, budget - data.n_workers * need.state_bytes if memory_bytes is not None else None

    def _chunk(self, batch: int) -> int:
        """Workers stepped at once for minibatches of ``batch`` samples."""
        if self.chunk_workers is not None:
            return self.chunk_workers
        if self._memory is None:
            return self.data.n_workers
        if batch not in self._chunks:
            need, left = self._memory
            if left is None:  # the device's free memory now, the stacked state allocated
                left = device_free_bytes(self.data.x.device)
            self._chunks[batch] = plan_chunk_workers(self.data.n_workers, batch, need, left, self.data.x.device)
        return self._chunks[batch]

    def _worker_loss(self, params, buffers, x, y, w):
        with autocast(x.device, self.precision):
            out = functional_call(self.model, (params, buffers), (x,))
        loss = (self.loss(out.float(), y) * w).sum()
        return loss, loss.detach()

    # --- local SGD step -------------------------------------------------------------
    def step(self, batch: Batch, lr: float, active: np.ndarray | None = None) -> torch.Tensor:
        """One local SGD step for the active workers (all when None). Returns each worker's
        minibatch loss [n] (NaN for workers that sat out)."""
        n = self.data.n_workers
        device = self.data.x.device
        losses = torch.full((n,), float("nan"), device=device)
        if batch.padded and self._bucket_full_batches:
            for c in np.unique(self._counts).tolist():
                mask = (self._counts == c) & (np.ones(n, bool) if active is None else active)
                if mask.any():
                    rows = to_device(torch.from_numpy(np.flatnonzero(mask)), device)
                    self._step_chunks(rows, batch[rows, :c], lr, losses)
            return losses
        if active is None or active.all():
            self._step_chunks(None, batch, lr, losses)
        else:
            rows = to_device(torch.from_numpy(np.flatnonzero(active)), device)
            self._step_chunks(rows, batch[rows], lr, losses)
        return losses

    def _step_chunks(self, rows: torch.Tensor | None, batch: Batch, lr: float, losses: torch.Tensor) -> None:
        """Step ``rows`` (None: all workers) in chunks of at most ``chunk_workers``."""
        k, chunk = len(batch.index), self._chunk(batch.index.shape[1])
        for a in range(0, k, chunk):
            b = min(a + chunk, k)
            sel: Rows = slice(a, b) if rows is None else rows[a:b]
            sub = batch if (a, b) == (0, k) else batch[a:b]
            losses[sel] = self._step_workers(sel, sub, lr).to(losses.dtype)

    def _step_workers(self, rows: Rows, batch: Batch, lr: float) -> torch.Tensor:
        # a slice of the stacked tensors is a view: the update lands in place; an index
        # gathers copies, which are scattered back after the step
        params = {k: v[rows] for k, v in self.params.items()}
        buffers = {k: v[rows] for k, v in self.buffers.items()}
        momenta = {k: v[rows] for k, v in self.momenta.items()}
        if self.fused is not None:
            losses = self._fused_step(params, buffers, momenta, batch, lr)
        else:
            losses = self._vmap_step(params, buffers, momenta, batch, lr)
        if isinstance(rows, torch.Tensor):
            for src, dst in ((params, self.params), (buffers, self.buffers), (momenta, self.momenta)):
                for k, v in src.items():
                    dst[k][rows] = v
        return losses

    def _vmap_step(self, params, buffers, momenta, batch: Batch, lr: float) -> torch.Tensor:
        x, y = gather(self.data.x, batch.index, batch.augment), self.data.y[batch.index]
        grads, losses = self._grad(params, buffers, x, y, batch.weight)  # BN buffers update in place
        keys = list(params)
        sgd_update([params[k] for k in keys], [grads[k] for k in keys], [momenta[k] for k in keys if momenta],
                   lr, self.momentum, self.weight_decay)  # fmt: skip
        return losses

    def _fused_step(self, params, buffers, momenta, batch: Batch, lr: float) -> torch.Tensor:
        assert self.fused is not None
        # gathered batch-major, so the conv layout [b, n*C, H, W] is a view of it
        index_t = batch.index.t()
        augment = None if batch.augment is None else batch.augment.t()
        x, y = gather(self.data.x, index_t, augment).transpose(0, 1), self.data.y[index_t].t()
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        targets = {k: momenta[k] if momenta else self._grad_buffers[k][: len(batch.index)] for k in self._sunk}
        sinks = {k: GradSink(t, self.momentum) for k, t in targets.items()}
        with autocast(x.device, self.precision):
            out = self.fused(leaves, buffers, x, sinks).float()  # [n, b, classes]
        per_sample = self.loss(out.flatten(0, 1), y.flatten(0, 1)).view(y.shape[:2])
        losses = (per_sample * batch.weight).sum(1)
        # sunk weights are differentiated too (so their layers' backward runs) but get None
        grads = dict(zip(leaves, torch.autograd.grad(losses.sum(), list(leaves.values()), allow_unused=True)))
        rest = [k for k in params if k not in sinks]
        sgd_update([params[k] for k in rest], [_grad_or_zero(grads[k], params[k]) for k in rest],
                   [momenta[k] for k in rest if momenta], lr, self.momentum, self.weight_decay)  # fmt: skip
        sgd_update_sunk([params[k] for k in sinks], [targets[k] for k in sinks], lr, self.weight_decay)
        return losses.detach()

    # --- aggregation ----------------------------------------------------------------
    def average(self, plan: AggregationPlan) -> None:
        """Replace each segment's members by the segment's weighted average. Momentum stays
        local (as with one optimizer per worker); buffers are averaged with the parameters."""
        segments = Segments(plan.segment, plan.weight, plan.n_segments, self.data.x.device)
        for tensors in (self.params, self.buffers):
            for t in tensors.values():
                segments.average_(t)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The stacked worker state and momentum, for checkpoints."""
        return {"params": self.params, "buffers": self.buffers, "momenta": self.momenta}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            for name in ("params", "buffers", "momenta"):
                mine, saved = getattr(self, name), state[name]
                if mine.keys() != saved.keys():
                    raise ValueError(f"checkpoint: {name} hold {sorted(saved)} but the model has {sorted(mine)}")
                for k, t in mine.items():
                    t.copy_(saved[k])

    def global_state(self, weights: np.ndarray) -> dict[str, torch.Tensor]:
        """The weighted average of all workers' models as a state_dict."""
        everyone = Segments(np.zeros(self.data.n_workers, np.int64), weights, 1, self.data.x.device)
        return {k: everyone.reduce(t)[0].clone() for tensors in (self.params, self.buffers) for k, t in tensors.items()}


def _grad_or_zero(g: torch.Tensor | None, p: torch.Tensor) -> torch.Tensor:
    """A parameter the loss does not reach gets gradient zero, as on the vmap path."""
    return torch.zeros_like(p) if g is None else g


