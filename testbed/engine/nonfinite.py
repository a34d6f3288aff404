"""Watching for non-finite training losses without a host-device synchronisation per step.

A NaN or infinite loss on one worker spreads through every average it takes part in, so
the run must stop before the next aggregation. Reading the losses on the host after every
step would make the GPU wait for each step's kernels; instead the first non-finite
iteration (and its loss) of every worker is kept on the device, and read back only where
the loop synchronises anyway: at aggregation and evaluation points.
"""

from __future__ import annotations

import numpy as np
import torch

from testbed.engine.batches import to_device


class NonFiniteWatch:
    """Per worker, the first iteration whose loss was not finite (0: none yet)."""

    def __init__(self, n_workers: int, device: torch.device, participants: np.ndarray | None = None):
        self.device = device
        self.first_t = torch.zeros(n_workers, dtype=torch.int64, device=device)
        self.first_loss = torch.zeros(n_workers, device=device)
        self.set_participants(participants)

    def set_participants(self, participants: np.ndarray | None) -> None:
        """Workers that sit out return NaN losses on purpose: only participants count."""
        self.active: torch.Tensor | None = None if participants is None else to_device(torch.from_numpy(participants), self.device)

    def record(self, losses: torch.Tensor, t: int) -> None:
        """Note iteration t's losses; device operations only."""
        with torch.no_grad():
            bad = ~torch.isfinite(losses)
            if self.active is not None:
                bad &= self.active
            new = bad & (self.first_t == 0)
            self.first_t.masked_fill_(new, t)
            self.first_loss = torch.where(new, losses.to(self.first_loss.dtype), self.first_loss)

    def check(self) -> str | None:
        """A message naming the first non-finite iteration, its loss and its workers, or
        None while every loss so far was finite. Reads the device: call it only at
        aggregation and evaluation points."""
        first = self.first_t.cpu().numpy()
        if not first.any():
            return None
        t = int(first[first > 0].min())
        workers = np.flatnonzero(first == t)
        value = float(self.first_loss[int(workers[0])])
        more = f" and {len(workers) - 1} more" if len(workers) > 1 else ""
        return f"diverged: training loss is {value} at iteration {t} (worker {int(workers[0])}{more}); try a smaller lr"
