"""Opt-in mixed precision: the forward and backward run in bf16 or fp16, the state does not.

``precision = "fp32" | "bf16" | "fp16"``. The master weights, the momentum buffers and
every aggregation stay fp32; the forward (and so its backward) runs under
``torch.autocast`` with the low dtype, and the logits are cast back to fp32 before the
loss. bf16 pays on CPUs with AVX512-BF16/AMX and on GPUs from Ampere on; fp16 is meant
for GPUs (on a CPU it is emulated, slowly) and is used without loss scaling, so
gradients below fp16's smallest subnormal (6e-8) flush to zero: prefer bf16.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def autocast(device: torch.device, precision: str) -> ContextManager:
    """The context a forward runs in: autocast to the low dtype, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype a matmul on ``t`` runs in here: autocast's when it is on, else t's own."""
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else t.dtype
