"""SGD with momentum and weight decay on stacked worker tensors, as torch.optim.SGD does it.

torch.optim.SGD (dampening 0, no Nesterov) per worker: ``g <- g + wd * w``;
``m <- mu * m + g``; ``w <- w - lr * m``. Here every tensor carries all n workers, so one
call updates everyone. Two entry points:

* :func:`sgd_update`: from explicit gradients, in one fused pass over (w, g, m) where
  torch has a fused kernel for the device, else with foreach ops;
* :func:`sgd_update_sunk`: for weights whose backward already did ``m <- mu * m + g``
  in place (see :mod:`testbed.engine.linear`); only decay and the step remain.
"""

from __future__ import annotations

import torch

# torch.optim.SGD(fused=True)'s kernel: reads w, g, m once and writes w, m once.
_FUSED_DEVICES = ("cpu", "cuda")


def sgd_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momenta: list[torch.Tensor],
    lr: float,
    momentum: float,
    weight_decay: float,
) -> None:
    """Update ``params`` (and ``momenta``, empty when ``momentum == 0``) in place."""
    if not params:
        return
    with torch.no_grad():
        fused = hasattr(torch, "_fused_sgd_") and params[0].device.type in _FUSED_DEVICES
        fused = fused and all(p.dtype == params[0].dtype and p.is_contiguous() for p in params + momenta)
        if fused:
            # the fused kernel walks w, g and m as flat memory, so their layouts must agree
            # (a conv weight's gradient comes back channels_last from a channels_last conv)
            grads = [g.contiguous() for g in grads]
            torch._fused_sgd_(
                params, grads, momenta if momentum else [],
                weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=0.0,
                nesterov=False, maximize=False, is_first_step=False,
            )  # fmt: skip
            return
        if weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum:
            torch._foreach_mul_(momenta, momentum)
            torch._foreach_add_(momenta, grads)
            grads = momenta
        torch._foreach_add_(params, grads, alpha=-lr)


def sgd_update_sunk(
    params: list[torch.Tensor],
    buffers: list[torch.Tensor],
    lr: float,
    weight_decay: float,
) -> None:
    """Finish the step for weights whose ``buffers`` already hold ``mu * m + g`` (or just
    ``g`` without momentum): add the decay term ``wd * w``, then ``w <- w - lr * buffer``."""
    if not params:
        return
    with torch.no_grad():
        if weight_decay:
            torch._foreach_add_(buffers, params, alpha=weight_decay)
        torch._foreach_add_(params, buffers, alpha=-lr)
