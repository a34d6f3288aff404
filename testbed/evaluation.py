"""Measuring the global model: test loss and accuracy, and the fixed training sample that
``global_train_loss`` is taken on (drawn once, so every evaluation sees the same rows)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from testbed.engine import WorkerData


def train_sample(data: WorkerData, budget: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Rows of the training data for ``global_train_loss``: up to ``budget // n`` per worker
    (at least one), without replacement, drawn once; (row indices, owning worker)."""
    if budget == 0:
        return None
    counts = data.counts.cpu().numpy()
    offsets = data.offsets.cpu().numpy()
    per_worker = max(1, budget // len(counts))
    picks = [offsets[j] + rng.choice(c, size=min(per_worker, c), replace=False) for j, c in enumerate(counts)]
    owner = np.repeat(np.arange(len(counts)), [len(p) for p in picks])
    device = data.x.device
    return torch.as_tensor(np.concatenate(picks), device=device), torch.as_tensor(owner, device=device)


@torch.no_grad()
def global_train_loss(model: nn.Module, data: WorkerData, sample: tuple[torch.Tensor, torch.Tensor], loss,
                      weights: torch.Tensor, batch_size: int = 2048) -> float:
    """The model's loss on the fixed training sample: each worker's mean loss, combined
    with ``weights`` (one per worker)."""
    rows, owner = sample
    losses = torch.cat([loss(model(data.x[rows[i:i + batch_size]]), data.y[rows[i:i + batch_size]])
                        for i in range(0, len(rows), batch_size)])
    n = data.n_workers
    per_worker = torch.zeros(n, dtype=losses.dtype, device=losses.device).index_add_(0, owner, losses)
    per_worker /= torch.bincount(owner, minlength=n).clamp(min=1).to(losses.dtype)
    return float((per_worker * weights.to(losses.device, losses.dtype)).sum())


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> dict[str, float]:
    """Test loss (cross-entropy) and accuracy of ``model`` on (x, y)."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        target = y[i : i + batch_size]
        total_loss += float(F.cross_entropy(out, target, reduction="sum"))
        correct += int((out.argmax(1) == target).sum())
    return {"test_loss": total_loss / len(x), "test_acc": correct / len(x)}
