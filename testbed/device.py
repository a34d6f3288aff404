"""Which torch device a run uses: one rule for the config, the library and the data layer."""

from __future__ import annotations

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device) -> torch.device:
    """``'auto'``: CUDA when this machine has it, else the CPU; otherwise the device named
    (a ``torch.device`` is taken as it is). Raises ValueError on a name that is no device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in DEVICE_TYPES:
        raise ValueError(f"device: {device!r} is not a device; use auto, cpu, cuda or cuda:K")
    return resolved


def device_count(device: torch.device) -> int:
    """How many devices of ``device``'s type this machine has (the CPU counts as one)."""
    if device.type == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "mps":
        return int(torch.backends.mps.is_available())
    return 1
