"""Measure the papers' divergences during a run (opt-in, every k evaluations).

At the current global model w, each worker's full local gradient grad F_j(w) (over at
most ``max_samples`` of its samples, the first ones, stated in the row) gives the global
divergence (9), the upward (7) and downward (8) divergences of every level of the tree,
and the residual of the partition identity (10); minibatch gradients give sigma^2 (6).
The model is probed in eval mode, so batch norm uses its running statistics and the
gradient is that of a fixed function.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from testbed.simulate import Callback, HSGDRun
from testbed.theory.divergence import estimate_sigma2, measure_divergences
from testbed.tree import AggregationTree


class DivergenceProbe(Callback):
    """Adds ``div_*``, ``partition_residual_*``, ``grad_norm2`` and ``sigma2`` columns."""

    def __init__(self, every: int = 1, tree: AggregationTree | None = None, max_samples: int = 512,
                 minibatches: int = 4, batch_size: int = 16, seed: int = 0):
        if every < 1:
            raise ValueError(f"divergence_every: must be >= 1, got {every}")
        self.every, self.tree, self.max_samples = every, tree, max_samples
        self.minibatches, self.batch_size = minibatches, batch_size
        self.generator = torch.Generator().manual_seed(seed)  # its own: training draws stay untouched
        self.run: HSGDRun | None = None
        self.evaluations = 0

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "evaluations": self.evaluations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.evaluations = int(state["evaluations"])

    def on_start(self, run: HSGDRun) -> None:
        self.run = run
        if self.tree is None:
            self.tree = run.tree
        elif self.tree.n_workers != run.tree.n_workers:
            raise ValueError(f"divergence tree has {self.tree.n_workers} workers, the run {run.tree.n_workers}")

    def on_eval(self, row: dict[str, Any]) -> None:
        self.evaluations += 1
        if (self.evaluations - 1) % self.every or self.run is None or row.get("status"):
            return  # not this evaluation, or the row that says training diverged: nothing finite to measure
        model = self.run.global_model()
        params = [p for p in model.parameters() if p.requires_grad]
        data = self.run.data
        full, minibatch = [], []
        for j in range(data.n_workers):
            start, count = int(data.offsets[j]), int(data.counts[j])
            x, y = data.x[start : start + count], data.y[start : start + count]
            full.append(_flat_grad(model, params, x[: self.max_samples], y[: self.max_samples]))
            draws = torch.randint(0, count, (self.minibatches, self.batch_size), generator=self.generator)
            minibatch.append(torch.stack([_flat_grad(model, params, x[d.to(x.device)], y[d.to(x.device)]) for d in draws]))
        grads = torch.stack(full)
        if not bool(torch.isfinite(grads).all()):  # weights blown up before the loss did: no measurement
            return
        divergences = measure_divergences(grads, self.tree)
        row.update(divergences.as_dict())
        row["grad_norm2"] = float(grads.double().mean(0).square().sum())
        row.update(estimate_sigma2(torch.stack(minibatch), grads).as_dict())
        row["probe_samples"] = min(self.max_samples, int(data.counts.max()))


def _flat_grad(model: torch.nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(model(x), y)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).detach()
