"""How many workers to step at once so a step fits in the device's memory.

The stacked state (parameters, buffers, momentum) stays resident for the whole run; a
step adds, per worker in the chunk, the activations autograd keeps for the backward pass
(and about as much again for their gradients) and the parameter gradients it
materialises. The activation bytes are measured once, on a two-sample forward of the
model (``saved_tensors_hooks``), and scale with the batch; the budget is the device's
free memory (a GPU's ``mem_get_info``) or a limit the caller sets. On the CPU without a
limit nothing is chunked: the operating system pages, it does not fail.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

HEADROOM = 0.8  # share of the free memory a step may plan on (allocator slack, workspaces)


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes per worker: resident for the run, and added by a step."""

    state_bytes: int  # parameters, buffers, momentum and gradient buffers of one worker
    grad_bytes: int  # parameter gradients one worker's step materialises
    activation_bytes_per_sample: int  # kept for the backward pass, per sample

    def step_bytes(self, batch: int) -> int:
        """One worker's step at ``batch`` samples: activations and their gradients, plus grads."""
        return 2 * batch * self.activation_bytes_per_sample + self.grad_bytes


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory of a GPU; None for the CPU (no automatic limit)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return None


def activation_bytes_per_sample(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd saves for backward per sample, on a forward of ``x`` (two samples or
    more: batch norm needs them); the model's own parameters are not counted."""
    model = copy.deepcopy(model).train()  # its batch-norm statistics would move
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[tuple[int, int], int] = {}  # a tensor saved by two layers counts once

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in weights:
            saved[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return -(-(sum(saved.values()) + out.numel() * out.element_size()) // len(x))


def check_state_fits(n_workers: int, need: MemoryNeed, free_bytes: int | None, device: torch.device) -> None:
    """Raise ValueError naming the limit when the stacked state alone would not fit."""
    if free_bytes is None:
        return
    total = n_workers * need.state_bytes
    if total > HEADROOM * free_bytes:
        raise ValueError(
            f"memory: the stacked state of {n_workers} workers needs {_mib(total)} but {device} has "
            f"{_mib(free_bytes)} free ({HEADROOM:.0%} usable); use fewer workers or a smaller model"
        )


def plan_chunk_workers(n_workers: int, batch: int, need: MemoryNeed, free_bytes: int | None, device: torch.device) -> int:
    """The most workers whose step fits in ``free_bytes`` (all of them when None); raises
    ValueError naming the limit when not even one worker's step fits."""
    if free_bytes is None:
        return n_workers
    per_worker = need.step_bytes(batch)
    fit = int(HEADROOM * free_bytes // max(per_worker, 1))
    if fit < 1:
        raise ValueError(
            f"memory: one worker's step at batch {batch} needs about {_mib(per_worker)} but {device} has "
            f"{_mib(free_bytes)} free beyond the stacked state ({HEADROOM:.0%} usable); use a smaller "
            f"batch_size or model"
        )
    return min(n_workers, fit)


def _mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"
