"""Experiment configuration: one typed, frozen dataclass, presets, and ``key=value`` overrides.

Unknown keys and values of the wrong type fail before any training starts, naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.engine.aggregation import WEIGHTINGS


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything an experiment needs; saved as ``config.json`` in the run folder."""

    topology: str = "edge3level"
    """Topology name (a file under topologies/) or a path to a topology file."""
    algorithms: tuple[str, ...] = ("auto",)
    """Algorithm specs: 'auto' (the topology's H-SGD, local SGD at its finest and coarsest
    period, and its two-level variants), 'local:P', 'hsgd:P1,P2,...' (one period per
    topology server level, top first) or 'hsgd:G,I@0,2' (periods for chosen levels)."""
    seeds: tuple[int, ...] = (0, 1)
    """One training run per algorithm and seed; the report shows mean and band."""
    dataset: str = "synthetic"
    """synthetic | mnist | cifar10 | femnist | celeba | npz."""
    data_root: str = ""
    """Dataset directory ('' = $TESTBED_DATA or ~/.cache/testbed/data); the npz file for 'npz'."""
    partition: str = "natural"
    """iid | shards | dirichlet | natural."""
    shards_per_worker: int = 2
    dirichlet_alpha: float = 0.5
    synthetic_alpha: float = 1.0
    """FedProx Synthetic(alpha, beta): model heterogeneity."""
    synthetic_beta: float = 1.0
    """FedProx Synthetic(alpha, beta): data heterogeneity."""
    grouping: str = "as-given"
    """How workers are put under servers: as-given (the topology), random, group-iid, group-noniid."""
    model: str = "mlp"
    iterations: int = 600
    lr: float = 0.05
    batch_size: int = 16
    """Minibatch per worker and step; 0 = the full local set (gradient descent)."""
    momentum: float = 0.0
    weight_decay: float = 0.0
    weighting: str = "uniform"
    participation: float = 1.0
    eval_every: int = 20
    target_acc: float = 0.8
    """Test accuracy whose first crossing the time-to-target table reports."""
    compute_ms: float = -1.0
    """Per-iteration compute time per worker: -1 = the topology's node values, 0 = measure
    once on the device, > 0 = this many ms for every worker."""
    model_bytes_per_param: int = 4
    window_kib: int = 4096
    """TCP window cap W for min(B, W/RTT) in KiB; 0 disables the cap."""
    traces: tuple[str, ...] = ()
    """Trace overrides 'NAME=path.csv': swap a link's measurements without editing the topology."""
    device: str = "auto"
    engine: str = "batched"
    deterministic: bool = False
    """Force deterministic kernels (torch.use_deterministic_algorithms): on GPUs, identical
    metrics from run to run at some speed cost. CPU runs are deterministic already."""
    checkpoint_every: int = 200
    """Save a checkpoint at the first round boundary after this many iterations (0 = never)."""
    divergence_every: int = 5
    """Measure gradient divergences every k evaluations for the theory panel (0 = off)."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _hints()[f.name])
        positive = {"iterations": self.iterations, "eval_every": self.eval_every, "lr": self.lr, "shards_per_worker": self.shards_per_worker}
        for key, value in positive.items():
            if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"{key}: must be > 0, got {value!r}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size: must be >= 0 (0 = full local batch), got {self.batch_size}")
        if not 0 < self.participation <= 1:
            raise ValueError(f"participation: must be in (0, 1], got {self.participation!r}")
        if not 0 < self.target_acc <= 1:
            raise ValueError(f"target_acc: must be in (0, 1], got {self.target_acc!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting: must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds: must be >= 0, got {list(self.seeds)}")
        if not self.algorithms:
            raise ValueError("algorithms: give at least one algorithm spec")
        for spec in self.traces:
            if "=" not in spec:
                raise ValueError(f"traces: expected NAME=path.csv, got {spec!r}")
        if self.engine not in ("batched", "loop"):
            raise ValueError(f"engine: must be batched or loop, got {self.engine!r}")
        if self.compute_ms < 0 and self.compute_ms != -1:
            raise ValueError(f"compute_ms: must be -1 (topology), 0 (measure) or > 0 ms, got {self.compute_ms}")
        for key in ("checkpoint_every", "divergence_every"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0 (0 = off), got {getattr(self, key)}")
        if self.momentum < 0 or self.momentum >= 1:
            raise ValueError(f"momentum: must be in [0, 1), got {self.momentum}")

    @property
    def trace_overrides(self) -> dict[str, str]:
        return dict(spec.split("=", 1) for spec in self.traces)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> ExperimentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        hints = _hints()
        coerced = {k: tuple(v) if _is_tuple(hints[k]) and isinstance(v, list) else v for k, v in values.items()}
        return cls(**coerced)

    def with_overrides(self, assignments: list[str]) -> ExperimentConfig:
        """Apply ``key=value`` strings (values parsed to the field's type; tuples comma-separated)."""
        hints = _hints()
        values: dict[str, Any] = {}
        for item in assignments:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep:
                raise ValueError(f"--set {item!r}: expected key=value")
            if key not in hints:
                raise ValueError(f"--set {key}: unknown key; allowed: {', '.join(sorted(hints))}")
            values[key] = parse_value(key, text.strip(), hints[key])
        return dataclasses.replace(self, **values)


PRESETS: dict[str, dict[str, Any]] = {
    # The defaults above: FedProx Synthetic(1, 1) split by device over the topology's
    # workers, an MLP, 600 iterations, two seeds; runs offline on a CPU in a few minutes.
    "quick": {},
    # The setting of Wang et al. (2022) Table 2: VGG-11 on CIFAR-10, sorted-label split,
    # n=10 workers in N=2 groups, local SGD P=5,10,50 vs H-SGD G=50 with I=5 and I=10.
    "paper": dict(
        topology="paper2level", dataset="cifar10", partition="shards", shards_per_worker=2, model="vgg11",
        algorithms=("local:5", "local:10", "local:50", "hsgd:50,5", "hsgd:50,10"),
        iterations=20000, lr=0.05, batch_size=32, momentum=0.0, eval_every=250, target_acc=0.5, compute_ms=4.0,
        seeds=(0,), divergence_every=0, checkpoint_every=1000,
    ),
    # LEAF FEMNIST CNN, natural partition by writer.
    "femnist": dict(dataset="femnist", partition="natural", model="femnist_cnn", iterations=2000, lr=0.05, batch_size=20, eval_every=100, target_acc=0.6,
                    seeds=(0,), divergence_every=0),
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The keys of a JSON config file (an object of ExperimentConfig keys), strictly read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); config files are UTF-8 JSON") from None
    try:
        values = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}, column {err.colno}: invalid JSON ({err.msg})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of config keys, got {type(values).__name__}")
    return values


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a config may hold")


def preset(name: str) -> ExperimentConfig:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r}: unknown preset; allowed: {', '.join(PRESETS)}")
    return ExperimentConfig.from_dict(PRESETS[name], where=f"preset {name}")


def parse_value(key: str, text: str, hint: Any) -> Any:
    if _is_tuple(hint):
        item_type = typing.get_args(hint)[0]
        return tuple(parse_value(key, part.strip(), item_type) for part in text.split(",") if part.strip())
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if hint is int:
            return int(text)
        if hint is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        raise ValueError(f"--set {key}={text}: expected a finite {hint.__name__}") from None
    return text


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(ExperimentConfig)


def _is_tuple(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple


def _check_type(key: str, value: Any, hint: Any) -> None:
    if _is_tuple(hint):
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, tuple):
            raise ValueError(f"{key}: expected a list of {item_type.__name__}, got {value!r}")
        for v in value:
            _check_type(key, v, item_type)
        return
    ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ValueError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
