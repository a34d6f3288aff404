"""What one worker's model costs the clock: bytes on the wire per transfer, and the
compute time of one iteration measured on the device."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch


def model_bytes(model: torch.nn.Module, bytes_per_param: int) -> int:
    """Bytes on the wire per model: every parameter and floating buffer (BN statistics)."""
    floats = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    return int(sum(t.numel() for t in floats) * bytes_per_param)


def measure_compute_ms(model: torch.nn.Module, dataset, device: torch.device, batch_size: int, repeats: int = 10) -> float:
    """Median wall time of one forward+backward+update of one worker's model on the device."""
    x = dataset.x_train[:batch_size].to(device)
    y = dataset.y_train[:batch_size].to(device)
    probe = copy.deepcopy(model).to(device).train()
    opt = torch.optim.SGD(probe.parameters(), lr=1e-3)
    times = []
    for k in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(probe(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k >= 2:  # the first calls pay for allocation and kernel selection
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def model_shape(dataset) -> dict[str, int]:
    x = dataset.x_train
    shape = {"num_classes": int(dataset.num_classes)}
    if x.dim() == 4:
        shape.update(in_channels=int(x.shape[1]), input_size=int(x.shape[2]))
    else:
        shape.update(in_features=int(np.prod(x.shape[1:])))
    return shape
