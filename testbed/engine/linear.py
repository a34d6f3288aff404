"""n workers' linear layers as one ``baddbmm``, with the weight gradient optionally written
straight into the optimizer's buffer.

A model with a large dense layer (femnist_cnn: 6.4M weights per worker) is bound by
memory traffic, not FLOPs: at b = 20 samples a worker's weight GEMMs do ~40 FLOPs per
weight byte moved. Plain autograd writes a fresh gradient (page-faulting new memory on
the CPU), then the optimizer reads it back to update the momentum. With a
:class:`GradSink` the backward GEMM computes
``momentum <- mu * momentum + x^T dy`` in place instead: two full passes over the
weights fewer per step, and no gradient tensor at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from testbed.engine.precision import compute_dtype


@dataclass(frozen=True)
class GradSink:
    """Where the gradient of a linear weight goes instead of a fresh ``.grad`` tensor:
    ``target <- beta * target + dL/dW`` inside the backward GEMM (e.g. the momentum
    buffer with beta = momentum), which saves the gradient's write and re-read."""

    target: torch.Tensor
    beta: float



def batched_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, sink: GradSink | None = None) -> torch.Tensor:
    """``x @ w^T + b`` per worker: x [n, m, F], w [n, O, F], b [n, O] -> [n, m, O].

    With ``sink``, the weight's gradient is accumulated into ``sink.target`` during the
    backward pass (``target <- beta * target + dL/dw``) and ``w`` gets no gradient;
    ``w`` must still require grad, so that the backward pass visits this layer.
    """
    if sink is None:
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)) if b is not None else torch.bmm(x, w.transpose(1, 2))
    return _SunkLinear.apply(x, w, b, sink.target, sink.beta)


class _SunkLinear(torch.autograd.Function):
    """Under autocast (mixed precision) the GEMMs run in the low dtype and the weight
    gradient is added to the fp32 buffer (``baddbmm_`` cannot mix dtypes)."""

    @staticmethod
    def forward(ctx, x, w, b, target, beta):  # type: ignore[override]
        dtype = compute_dtype(x)
        x, w = x.to(dtype), w.to(dtype)
        ctx.save_for_backward(x, w)
        ctx.target, ctx.beta, ctx.has_bias = target, beta, b is not None
        out = torch.bmm(x, w.transpose(1, 2))
        return out.add_(b.unsqueeze(1)) if b is not None else out

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        x, w = ctx.saved_tensors
        dy = dy.to(x.dtype)
        dx = torch.bmm(dy, w) if ctx.needs_input_grad[0] else None
        with torch.no_grad():  # the optimizer's buffer, not part of any graph
            if x.dtype == ctx.target.dtype:
                ctx.target.baddbmm_(dy.transpose(1, 2), x, beta=ctx.beta)
            elif ctx.beta:
                ctx.target.mul_(ctx.beta).add_(torch.bmm(dy.transpose(1, 2), x))
            else:  # beta 0: the buffer may hold anything, NaN included
                ctx.target.copy_(torch.bmm(dy.transpose(1, 2), x))
        db = dy.sum(1, dtype=ctx.target.dtype) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, None, db, None, None
