"""The production engine: every worker's state stacked on the device, stepped together.

Parameters, buffers and momentum are dicts of tensors with a leading worker dimension
[n, ...]. One step is one vmapped ``grad`` of ``functional_call`` over all workers (so a
conv layer becomes a grouped conv, a linear layer a bmm), then fused foreach updates.
An aggregation is one weighted segment mean per tensor.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from testbed.engine.aggregation import AggregationPlan
from testbed.engine.batches import Batch, WorkerData

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class BatchedEngine:
    """n workers' copies of ``model`` as stacked tensors; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        data: WorkerData,
        loss: PerSampleLoss,
        momentum: float,
        weight_decay: float,
        device: torch.device,
    ):
        n = data.n_workers
        self.data = data
        self.loss = loss
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.model = copy.deepcopy(model).to(device).train()
        stack = lambda t: t.detach().to(device).unsqueeze(0).repeat(n, *([1] * t.dim())).contiguous()
        self.params = {k: stack(v) for k, v in self.model.named_parameters()}
        self.buffers = {k: stack(v) for k, v in self.model.named_buffers()}
        self.momenta = {k: torch.zeros_like(v) for k, v in self.params.items()} if momentum else {}
        # Full local batches of unequal size are padded with zero-weight rows; batch norm
        # would still see the padding, so such models step each size group on its own.
        self._bucket_full_batches = has_batch_norm(self.model)
        self._grad = vmap(grad(self._worker_loss, has_aux=True))

    def _worker_loss(self, params, buffers, x, y, w):
        out = functional_call(self.model, (params, buffers), (x,))
        loss = (self.loss(out, y) * w).sum()
        return loss, loss.detach()

    # --- local SGD step -------------------------------------------------------------
    def step(self, batch: Batch, lr: float, active: np.ndarray | None = None) -> torch.Tensor:
        """One local SGD step for the active workers (all when None). Returns each worker's
        minibatch loss [n] (NaN for workers that sat out)."""
        n = self.data.n_workers
        losses = torch.full((n,), float("nan"), device=self.data.x.device)
        counts = self.data.counts
        full_unequal = batch.index.shape[1] == int(counts.max()) and bool((batch.weight == 0).any())
        if full_unequal and self._bucket_full_batches:
            for c in torch.unique(counts).tolist():
                mask = (counts == c).cpu().numpy() & (np.ones(n, bool) if active is None else active)
                if mask.any():
                    rows = torch.as_tensor(np.flatnonzero(mask), device=self.data.x.device)
                    sub = Batch(batch.index[rows, :c], batch.weight[rows, :c])
                    losses[rows] = self._step_workers(rows, sub, lr)
            return losses
        if active is None or active.all():
            losses[:] = self._step_workers(None, batch, lr)
        else:
            rows = torch.as_tensor(np.flatnonzero(active), device=self.data.x.device)
            losses[rows] = self._step_workers(rows, Batch(batch.index[rows], batch.weight[rows]), lr)
        return losses

    def _step_workers(self, rows: torch.Tensor | None, batch: Batch, lr: float) -> torch.Tensor:
        x, y = self.data.x[batch.index], self.data.y[batch.index]
        if rows is None:
            params, buffers, momenta = self.params, self.buffers, self.momenta
        else:  # a subset: gather, step, scatter back
            params = {k: v[rows] for k, v in self.params.items()}
            buffers = {k: v[rows] for k, v in self.buffers.items()}
            momenta = {k: v[rows] for k, v in self.momenta.items()}
        grads, losses = self._grad(params, buffers, x, y, batch.weight)  # BN buffers update in place
        p, g = list(params.values()), [grads[k] for k in params]
        with torch.no_grad():
            if self.weight_decay:
                torch._foreach_add_(g, p, alpha=self.weight_decay)
            if self.momentum:  # torch.optim.SGD semantics, dampening 0: m <- mu m + g; w <- w - lr m
                m = list(momenta.values())
                torch._foreach_mul_(m, self.momentum)
                torch._foreach_add_(m, g)
                g = m
            torch._foreach_add_(p, g, alpha=-lr)
        if rows is not None:
            for src, dst in ((params, self.params), (buffers, self.buffers), (momenta, self.momenta)):
                for k, v in src.items():
                    dst[k][rows] = v
        return losses

    # --- aggregation ----------------------------------------------------------------
    def average(self, plan: AggregationPlan) -> None:
        """Replace each segment's members by the segment's weighted average. Momentum stays
        local (as with one optimizer per worker); buffers are averaged with the parameters."""
        device = self.data.x.device
        seg = torch.as_tensor(plan.segment, device=device)
        members = None if plan.covers_all else torch.as_tensor(np.flatnonzero(plan.segment >= 0), device=device)
        for tensors in (self.params, self.buffers):
            for t in tensors.values():
                src = t if members is None else t[members]
                s = seg if members is None else seg[members]
                avg = _segment_average(src, s, plan.n_segments, plan.weight[plan.segment >= 0])
                if members is None:
                    t.copy_(avg[s])
                else:
                    t[members] = avg[s]

    def global_state(self, weights: np.ndarray) -> dict[str, torch.Tensor]:
        """The weighted average of all workers' models as a state_dict."""
        seg = torch.zeros(self.data.n_workers, dtype=torch.int64, device=self.data.x.device)
        state = {}
        for tensors in (self.params, self.buffers):
            for k, t in tensors.items():
                state[k] = _segment_average(t, seg, 1, weights)[0].clone()
        return state


def _segment_average(t: torch.Tensor, seg: torch.Tensor, n_segments: int, weight: np.ndarray) -> torch.Tensor:
    """Weighted sum per segment for floating tensors; max for integer counters
    (e.g. BatchNorm's num_batches_tracked), which averaging would not keep integral."""
    with torch.no_grad():
        if not t.is_floating_point():
            out = torch.zeros((n_segments, *t.shape[1:]), dtype=t.dtype, device=t.device)
            return out.scatter_reduce_(0, seg.view(-1, *[1] * (t.dim() - 1)).expand_as(t), t, "amax", include_self=False)
        w = torch.as_tensor(weight, dtype=t.dtype, device=t.device).view(-1, *[1] * (t.dim() - 1))
        out = torch.zeros((n_segments, *t.shape[1:]), dtype=t.dtype, device=t.device)
        return out.index_add_(0, seg, t * w)
