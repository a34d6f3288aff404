"""The reference engine: one model and one torch.optim.SGD per worker, stepped in turn.

Slow on purpose and written plainly; it is what the batched engine is checked against.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from testbed.engine.aggregation import AggregationPlan
from testbed.engine.batched import PerSampleLoss
from testbed.engine.batches import Batch, WorkerData, gather
from testbed.engine.precision import Precision, autocast, check_precision


class LoopEngine:
    def __init__(
        self,
        model: nn.Module,
        data: WorkerData,
        loss: PerSampleLoss,
        momentum: float,
        weight_decay: float,
        device: torch.device,
        precision: Precision = "fp32",
    ):
        check_precision(precision)
        self.precision = precision
        self.data = data
        self.loss = loss
        template = copy.deepcopy(model).to(device).train()
        self.models = [copy.deepcopy(template) for _ in range(data.n_workers)]
        self.optimizers = [
            torch.optim.SGD(m.parameters(), lr=1.0, momentum=momentum, weight_decay=weight_decay)
            for m in self.models
        ]

    def step(self, batch: Batch, lr: float, active: np.ndarray | None = None) -> torch.Tensor:
        losses = torch.full((self.data.n_workers,), float("nan"), device=self.data.x.device)
        for j, (model, opt) in enumerate(zip(self.models, self.optimizers)):
            if active is not None and not active[j]:
                continue
            keep = batch.weight[j] > 0  # drop the padding of a full batch
            mine = batch[j][keep]
            rows, w = mine.index, mine.weight
            with autocast(self.data.x.device, self.precision):
                out = model(gather(self.data.x, rows, mine.augment))
            loss = (self.loss(out.float(), self.data.y[rows]) * w).sum()
            opt.zero_grad()
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
            losses[j] = loss.detach()
        return losses

    def average(self, plan: AggregationPlan) -> None:
        for k in range(plan.n_segments):
            members = np.flatnonzero(plan.segment == k)
            avg = self._weighted_state(members, plan.weight[members])
            for j in members:
                self.models[j].load_state_dict(avg)

    def state_dict(self) -> dict[str, list]:
        """Every worker's model and optimizer state, for checkpoints."""
        return {"models": [m.state_dict() for m in self.models], "optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict[str, list]) -> None:
        for model, saved in zip(self.models, state["models"]):
            model.load_state_dict(saved)
        for opt, saved in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(saved)

    def global_state(self, weights: np.ndarray) -> dict[str, torch.Tensor]:
        return self._weighted_state(np.arange(self.data.n_workers), weights)

    def _weighted_state(self, members: np.ndarray, weights: np.ndarray) -> dict[str, torch.Tensor]:
        states = [self.models[j].state_dict() for j in members]
        out = {}
        for key, first in states[0].items():
            if first.is_floating_point():
                out[key] = sum(float(w) * s[key] for w, s in zip(weights, states))
            else:  # integer counters: keep the largest
                out[key] = torch.stack([s[key] for s in states]).amax(0)
        return {k: v.detach().clone() for k, v in out.items()}
