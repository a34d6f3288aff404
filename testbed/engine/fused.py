"""A hand-fused batched forward: n workers' copies of a model run as one graph.

Under ``vmap(grad(...))`` a conv layer's backward is several times slower than a plain
grouped conv's, so for models built from known layers the engine runs this instead: the
model is traced once with ``torch.fx`` and every layer is replayed on all workers at once,

* image activations in the *grouped* layout ``[b, n*C, H, W]`` (worker j owns channels
  ``j*C : (j+1)*C``), so a conv is one grouped conv (``groups = n * groups``), and
  batch norm, pooling and activations are plain per-channel ops on it;
* flat activations in the *worker* layout ``[n, b, F]``, so a linear layer is one
  ``baddbmm`` with the stacked weights ``[n, O, F]``.

The stacked parameters are ordinary autograd leaves: the caller sums every worker's
weighted loss and differentiates once, and each worker's slice of a parameter's gradient
is that worker's own gradient (the workers share no weights). Unsupported models (a layer
or function not listed in ``_MODULE_RULES`` / ``_FUNCTION_RULES``) raise
:class:`Unsupported` at build time, and the engine falls back to ``vmap``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from testbed.engine.linear import GradSink, batched_linear

Layout = Literal["worker", "grouped"]
MemoryFormat = Literal["channels_last", "contiguous"]
Tensors = dict[str, torch.Tensor]


class Unsupported(Exception):
    """The model uses a layer, function or argument the fused forward does not implement."""


@dataclass(frozen=True)
class Value:
    """An activation of all n workers and how it is laid out (see the module docstring)."""

    tensor: torch.Tensor
    layout: Layout


@dataclass(frozen=True)
class Context:
    """What a layer rule needs besides its input: the stacked state and the options."""

    n: int
    params: Tensors
    buffers: Tensors
    memory_format: torch.memory_format
    grad_sinks: dict[str, GradSink]


# --------------------------------------------------------------------------- layouts


def to_grouped(v: Value, n: int) -> torch.Tensor:
    """[n, b, C, *S] -> [b, n*C, *S]; a view when the data came gathered batch-major."""
    if v.layout == "grouped":
        return v.tensor
    t = v.tensor
    if t.dim() != 5:  # a 2-d layer on a 2-d sample would treat the batch as channels
        raise Unsupported(f"a 2-d image layer got a {t.dim() - 2}-d sample (only (C, H, W))")
    return t.transpose(0, 1).reshape(t.shape[1], n * t.shape[2], *t.shape[3:])


def to_worker(v: Value, n: int) -> torch.Tensor:
    """[b, n*C, *S] -> [n, b, C, *S] (a strided view in either memory format)."""
    if v.layout == "worker":
        return v.tensor
    t = v.tensor
    return t.unflatten(1, (n, t.shape[1] // n)).transpose(0, 1)


def _format(t: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    return t.contiguous(memory_format=memory_format) if t.dim() == 4 else t


# --------------------------------------------------------------------------- layer rules


def _conv2d(m: nn.Conv2d, name: str, v: Value, ctx: Context) -> Value:
    n = ctx.n
    x = _format(to_grouped(v, n), ctx.memory_format)
    w = ctx.params[f"{name}.weight"]
    w = w.reshape(n * w.shape[1], *w.shape[2:])
    b = ctx.params[f"{name}.bias"].reshape(-1) if m.bias is not None else None
    out = F.conv2d(x, w, b, m.stride, m.padding, m.dilation, n * m.groups)
    return Value(out, "grouped")


def _linear(m: nn.Linear, name: str, v: Value, ctx: Context) -> Value:
    x = to_worker(v, ctx.n)
    lead = x.shape[1:-1]
    x3 = x if x.dim() == 3 else x.reshape(ctx.n, -1, x.shape[-1])
    w = ctx.params[f"{name}.weight"]
    b = ctx.params.get(f"{name}.bias") if m.bias is not None else None
    out = batched_linear(x3, w, b, ctx.grad_sinks.get(f"{name}.weight"))
    return Value(out if x.dim() == 3 else out.reshape(ctx.n, *lead, out.shape[-1]), "worker")


def _batch_norm(m: nn.modules.batchnorm._BatchNorm, name: str, v: Value, ctx: Context) -> Value:
    n = ctx.n
    if isinstance(m, nn.BatchNorm2d):
        x = _format(to_grouped(v, n), ctx.memory_format)
    else:  # BatchNorm1d on [n, b, C] or [n, b, C, L]: channels of all workers side by side
        t = to_worker(v, n)
        x = t.transpose(0, 1).reshape(t.shape[1], n * t.shape[2], *t.shape[3:])
    flat = lambda key: ctx.params[key].reshape(-1) if key in ctx.params else None
    running = lambda key: ctx.buffers[key].view(-1) if m.track_running_stats else None
    if m.track_running_stats:  # what nn.BatchNorm's forward does in train mode
        ctx.buffers[f"{name}.num_batches_tracked"].add_(1)
    # F.batch_norm updates the running stats in place; .view(-1) aliases the stacked buffers
    out = F.batch_norm(
        x, running(f"{name}.running_mean"), running(f"{name}.running_var"),
        flat(f"{name}.weight"), flat(f"{name}.bias"), True, m.momentum or 0.0, m.eps,
    )  # fmt: skip
    if isinstance(m, nn.BatchNorm2d):
        return Value(out, "grouped")
    return Value(out.unflatten(1, (n, -1)).transpose(0, 1), "worker")


def _per_channel(m: nn.Module, name: str, v: Value, ctx: Context) -> Value:
    """Pooling: the same op on every channel, so the grouped layout is already right."""
    return Value(m(_format(to_grouped(v, ctx.n), ctx.memory_format)), "grouped")


def _elementwise(m: nn.Module, name: str, v: Value, ctx: Context) -> Value:
    return Value(m(v.tensor), v.layout)


def _flatten(m: nn.Flatten, name: str, v: Value, ctx: Context) -> Value:
    return _flatten_dims(v, ctx.n, m.start_dim, m.end_dim)


def _flatten_dims(v: Value, n: int, start_dim: int, end_dim: int) -> Value:
    if start_dim != 1 or end_dim != -1:
        raise Unsupported(f"flatten(start_dim={start_dim}, end_dim={end_dim}) (only 1, -1)")
    t = v.tensor
    if v.layout == "grouped":  # per worker (C, H, W) in that order, as the model flattens it
        b = t.shape[0]
        return Value(t.reshape(b, n, -1).transpose(0, 1), "worker")
    return Value(t.reshape(n, t.shape[1], -1), "worker")


def _module_problem(m: nn.Module) -> str | None:
    """Arguments of a supported layer type that the rules do not implement."""
    if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
        return f"Conv2d padding_mode={m.padding_mode!r} (only 'zeros')"
    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.momentum is None:
        # cumulative averaging needs each worker's own num_batches_tracked as the factor
        return "BatchNorm with momentum=None (cumulative average)"
    if getattr(m, "return_indices", False):
        return f"{type(m).__name__} with return_indices"
    if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
        return f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) (only 1, -1)"
    return None


ModuleRule = Callable[[nn.Module, str, Value, Context], Value]
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_MODULE_RULES: dict[type, ModuleRule] = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.Flatten: _flatten,
    **{t: _per_channel for t in _POOLS},
    **{t: _elementwise for t in _ELEMENTWISE},
}


def _binary(op: Callable) -> Callable[..., Value]:
    def rule(a: Value | float, b: Value | float, n: int) -> Value:
        if isinstance(a, Value) and isinstance(b, Value) and a.layout != b.layout:
            a, b = Value(to_worker(a, n), "worker"), Value(to_worker(b, n), "worker")
        layout = a.layout if isinstance(a, Value) else b.layout  # type: ignore[union-attr]
        raw = lambda x: x.tensor if isinstance(x, Value) else x
        return Value(op(raw(a), raw(b)), layout)

    return rule


_BINARY = (operator.add, torch.add, operator.mul)
_FUNCTION_RULES: dict[Callable, Callable[..., Value]] = {
    operator.add: _binary(operator.add),
    torch.add: _binary(torch.add),
    operator.mul: _binary(operator.mul),
    F.relu: lambda v, n: Value(F.relu(v.tensor), v.layout),
    torch.relu: lambda v, n: Value(torch.relu(v.tensor), v.layout),
    torch.flatten: lambda v, n, start_dim=0, end_dim=-1: _flatten_dims(v, n, start_dim, end_dim),
}
_METHOD_RULES: dict[str, Callable[..., Value]] = {
    "relu": _FUNCTION_RULES[F.relu],
    "flatten": lambda v, n, start_dim=0, end_dim=-1: _flatten_dims(v, n, start_dim, end_dim),
}


# --------------------------------------------------------------------------- the graph


class FusedForward:
    """``forward(params, buffers, x)``: logits [n, b, K] of every worker's copy of ``model``.

    ``x`` is [n, b, *sample]; gathering it batch-major (``data[index.T].transpose(0, 1)``)
    makes the switch to the grouped layout free. BatchNorm running stats in ``buffers``
    are updated in place, as ``nn.BatchNorm`` does in train mode.
    """

    def __init__(self, model: nn.Module, memory_format: MemoryFormat = "channels_last"):
        try:
            self.graph = fx.symbolic_trace(model).graph
        except Exception as err:  # tracing fails on data-dependent control flow
            raise Unsupported(f"torch.fx cannot trace the model: {err}") from None
        self.modules = dict(model.named_modules())
        self.memory_format = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
        self._check(model)
        calls = [node.target for node in self.graph.nodes if node.op == "call_module"]
        #: linear weights whose gradient may go to a GradSink: a layer called twice would
        #: apply the sink's beta twice
        self.sinkable_weights = tuple(
            f"{t}.weight" for t in dict.fromkeys(calls) if isinstance(self.modules[t], nn.Linear) and calls.count(t) == 1
        )

    def _check(self, model: nn.Module) -> None:
        """Raise Unsupported naming every node the rules do not cover."""
        problems = []
        if len(dict(model.named_parameters())) != len(dict(model.named_parameters(remove_duplicate=False))):
            problems.append("parameters shared between layers")
        inputs = [node for node in self.graph.nodes if node.op == "placeholder"]
        if len(inputs) != 1:
            problems.append(f"the model takes {len(inputs)} inputs (only one)")
        for node in self.graph.nodes:
            if node.op == "call_module":
                m = self.modules[node.target]
                problem = f"layer {type(m).__name__}" if type(m) not in _MODULE_RULES else _module_problem(m)
                if problem:
                    problems.append(f"{node.target}: {problem}")
            elif node.op == "call_function":
                fname = getattr(node.target, "__name__", str(node.target))
                if node.target not in _FUNCTION_RULES:
                    problems.append(f"function {fname}")
                elif node.target in _BINARY and node.kwargs:
                    problems.append(f"function {fname} with keyword arguments {dict(node.kwargs)}")
            elif node.op == "call_method" and node.target not in _METHOD_RULES:
                problems.append(f"method .{node.target}()")
            elif node.op == "get_attr":
                problems.append(f"direct use of attribute {node.target}")
        if problems:
            raise Unsupported("; ".join(dict.fromkeys(problems)))

    def probe(self, params: Tensors, buffers: Tensors, x: torch.Tensor) -> None:
        """Run once without autograd on a small input (buffers copied, so nothing changes):
        shape-dependent gaps, e.g. a pooling layer on flat features, raise Unsupported now
        rather than in the middle of a run."""
        try:
            with torch.no_grad():
                self(params, {k: v.clone() for k, v in buffers.items()}, x)
        except Unsupported:
            raise
        except Exception as err:  # e.g. F.relu(x, inplace=True): an argument no rule takes
            raise Unsupported(f"the fused forward failed on a sample input: {type(err).__name__}: {err}") from None

    def __call__(
        self, params: Tensors, buffers: Tensors, x: torch.Tensor, grad_sinks: dict[str, GradSink] | None = None
    ) -> torch.Tensor:
        n = x.shape[0]
        ctx = Context(n, params, buffers, self.memory_format, grad_sinks or {})
        env: dict[fx.Node, object] = {}
        load = lambda a: fx.node.map_arg(a, lambda node: env[node])
        for node in self.graph.nodes:
            if node.op == "placeholder":
                env[node] = Value(x, "worker")
            elif node.op == "call_module":
                m = self.modules[node.target]
                (v,) = load(node.args)
                env[node] = _MODULE_RULES[type(m)](m, node.target, v, ctx)
            elif node.op == "call_function":
                env[node] = _FUNCTION_RULES[node.target](*load(node.args), n=n, **load(node.kwargs))
            elif node.op == "call_method":
                env[node] = _METHOD_RULES[node.target](*load(node.args), n=n, **load(node.kwargs))
            elif node.op == "output":
                out = load(node.args[0])
                if not isinstance(out, Value):
                    raise Unsupported("the model must return one tensor")
                return to_worker(out, n)
        raise Unsupported("the traced graph has no output")
