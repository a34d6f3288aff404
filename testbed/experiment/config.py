"""Experiment configuration: one typed, frozen dataclass, presets, and ``key=value`` overrides.

Unknown keys and values of the wrong type fail before any training starts, naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from testbed.data import DATASET_NAMES, SCHEMES, STRATEGIES
from testbed.device import resolve_device
from testbed.experiment.algorithms import parse_spec
from testbed.experiment.values import check_type, is_tuple, parse_value, show
from testbed.models import MODEL_NAMES
from testbed.simulate import TrainConfig

MAX_COUNT = 10**9
"""Largest iterations (and other counts) a config may hold: far beyond any run."""
MAX_SEED = 2**32 - 1
"""Largest seed: every generator (numpy, torch, CUDA) takes it."""
EVENT_RECORDS = ("all", "aggregations", "none")
# TcpModel field -> the key that sets it here
_TCP_KEYS = {"kind": "tcp_model", "idle": "tcp_idle", "initial_window": "tcp_initial_window",
             "mss_bytes": "tcp_mss_bytes", "header_bytes": "tcp_header_bytes", "rto_min_ms": "tcp_rto_min_ms",
             "hystart_low_window": "tcp_hystart_low_window", "hystart_ack_delta_ms": "tcp_hystart_ack_delta_ms",
             "ca_growth": "tcp_ca_growth", "loss": "tcp_loss", "buffer_floor_pkts": "tcp_buffer_floor_pkts",
             "relost_share": "tcp_relost_share"}
TCP_CONFIG_KEYS = tuple(_TCP_KEYS.values())  # the config keys of the TCP model, in TcpModel's field order
# keys a run folder saved before they existed held implicitly: the clock was fluid then,
# had no HyStart exit before that was modelled, and no loss before the overshoot model
_SAVED_BEFORE_TCP = {"tcp_model": "fluid", "tcp_hystart_ack_delta_ms": 0.0, "tcp_loss": "none"}
# datasets whose loader never provides writers, so the 'natural' partition cannot split them
_NO_WRITERS = ("mnist", "cifar10")


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
    """Label shards each worker gets with partition=shards (1: one class per worker)."""
    dirichlet_alpha: float = 0.5
    """Concentration of partition=dirichlet: small = each worker sees few labels."""
    synthetic_alpha: float = 1.0
    """FedProx Synthetic(alpha, beta): model heterogeneity."""
    synthetic_beta: float = 1.0
    """FedProx Synthetic(alpha, beta): data heterogeneity."""
    grouping: str = "as-given"
    """How workers are put under servers: as-given (the topology), random, group-iid, group-noniid."""
    model: str = "mlp"
    """vgg11 | vgg11_imagenet (torchvision's, 132.9M parameters, as the paper's code) | resnet18 | cifar_cnn | femnist_cnn | celeba_cnn | mlp | logreg."""
    iterations: int = 600
    """Local iterations T every worker runs."""
    lr: float = 0.05
    """Learning rate of every worker's SGD step."""
    batch_size: int = 16
    """Minibatch per worker and step; 0 = the full local set (gradient descent)."""
    momentum: float = 0.0
    """SGD momentum; each worker keeps its own buffer through aggregations."""
    weight_decay: float = 0.0
    """L2 penalty added to every gradient."""
    augment: str = "none"
    """Training image augmentation: none, or crop_flip (the paper code's random horizontal
    flip and random 32x32 crop of the image padded by 4 black pixels), drawn per sample
    from its own seeded generator."""
    weighting: str = "uniform"
    """How a server averages its children: uniform (Algorithm 1) or samples (by sample count)."""
    participation: float = 1.0
    """Fraction of each bottom group taking part in a round (drawn per global round)."""
    deadline_s: tuple[float, ...] = ()
    """Round deadlines in simulated seconds, one per topology server level, top first (0: none
    there; empty: none at all), counted from when the server's last average reached its
    workers: a worker whose model would reach the server later is left out of that round's
    average and receives the result; the server averages at the deadline or when all have
    arrived. Training then depends on the network: such a run cannot be re-timed."""
    eval_every: int = 20
    """Evaluate the global average model every this many iterations (a metrics row)."""
    target_acc: float = 0.8
    """Test accuracy whose first crossing the time-to-target table reports."""
    budget_s: float = 0.0
    """Simulated wall-clock budget in seconds (0 = off): every algorithm stops at the first
    iteration whose sim_time_s reaches it, evaluated there (column stop = budget), so all
    curves end within one iteration of the budget and the report gives accuracy at equal
    time; iterations stays an upper bound (set it high enough for the fastest algorithm)."""
    stop_at_target: bool = False
    """Stop each algorithm at its first evaluation with test_acc >= target_acc (column stop = target)."""
    compute_ms: float = -1.0
    """Per-iteration compute time per worker: -1 = the topology's node values, 0 = measure
    once on the device, > 0 = this many ms for every worker."""
    model_bytes_per_param: int = 4
    """Bytes per parameter on the wire (4: float32)."""
    priced_params: int = 0
    """Parameters one model transfer is priced at: 0 = the trained model's own (parameters
    and floating buffers); > 0 = this many, so a big model's transfers (the paper's
    ImageNet VGG-11: 132,863,336) are priced while a smaller model trains."""
    window_kib: int = 4096
    """TCP window cap W for min(B, W/RTT) in KiB; 0 disables the cap."""
    tcp_model: str = "tcp"
    """How a transfer's rate builds up: tcp (slow start from the initial window, doubling
    every round trip, payload net of headers; validated against ns-3, bench/netval) or
    fluid (max-min share from the first byte, no headers: the model before TCP)."""
    tcp_idle: str = "restart"
    """Between rounds: restart (Linux's default: a connection idle for more than an RTO
    halves its window per RTO, down to the initial window) or keep (windows stay open)."""
    tcp_initial_window: int = 10
    """Initial congestion window, in segments."""
    tcp_mss_bytes: int = 1448
    """Payload bytes per segment (1500-byte MTU with TCP timestamps)."""
    tcp_header_bytes: int = 52
    """TCP/IP header bytes per segment; capacity counts payload: MSS / (MSS + headers)."""
    tcp_rto_min_ms: float = 200.0
    """Minimum retransmission timeout; RTO = tcp_rto_min_ms + RTT decides when a connection is idle."""
    tcp_hystart_low_window: int = 16
    """HyStart (CUBIC's slow-start exit) checks windows of at least this many segments (Linux, ns-3)."""
    tcp_hystart_ack_delta_ms: float = 2.0
    """ACKs this close form one train; slow start ends once a round's ACKs run into the
    next round's (on a LAN with RTT under 2 ms: at 16-20 segments). 0 = no HyStart exit."""
    tcp_ca_growth: float = 0.05
    """Window growth per round trip after HyStart's exit (CUBIC before any loss: 1/20)."""
    tcp_loss: str = "overshoot"
    """overshoot: flows in slow start together on a full link overflow its drop-tail buffer
    when their windows exceed pipe + buffer, and each waits for one retransmission timeout
    (ns-3 has no RACK/TLP), then slow-starts from one segment (validated against ns-3,
    bench/netval); none: no loss (the model before)."""
    tcp_buffer_floor_pkts: int = 100
    """Drop-tail buffer of every link direction: max(this, one BDP of the path) packets."""
    tcp_relost_share: float = 0.25
    """Share of a flow's part of pipe + buffer whose retransmissions are lost again and
    resent after the timeout (from an ns-3 trace: 34 and 25 of 133 segments)."""
    events: str = "all"
    """What events.csv records: all (every transfer and barrier: about two rows per worker
    in each subtree round), aggregations (one row per subtree round) or none (an empty log).
    At 1000 workers 'all' writes ~2,200 rows and ~150 kB per aggregation round."""
    traces: tuple[str, ...] = ()
    """Trace overrides 'NAME=path.csv': swap a link's measurements without editing the topology."""
    device: str = "auto"
    """auto (cuda when available), cpu, cuda, cuda:K or mps."""
    engine: str = "batched"
    """batched (all workers stepped as stacked tensors) or loop (the per-worker reference)."""
    precision: str = "fp32"
    """Forward/backward dtype: fp32, bf16 or fp16 (GPUs); weights, momentum, averages stay fp32."""
    threads: int = 0
    """Torch CPU threads; 0 = torch's default (one per core; fewer often wins on a shared machine)."""
    deterministic: bool = False
    """Force deterministic kernels (torch.use_deterministic_algorithms): on GPUs, identical
    metrics from run to run at some speed cost. CPU runs are deterministic already."""
    checkpoint_every: int = 200
    """Save a checkpoint at the first round boundary after this many iterations (0 = never)."""
    divergence_every: int = 5
    """Measure gradient divergences every k evaluations for the theory panel (0 = off)."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check_type(f.name, getattr(self, f.name), _hints()[f.name])
        if self.batch_size < 0:
            raise ValueError(f"batch_size: must be >= 0 (0 = full local batch), got {self.batch_size}")
        self.train_config()  # iterations, lr, batch_size, momentum, weight_decay, weighting, participation, eval_every, precision, augment
        if not self.shards_per_worker > 0:
            raise ValueError(f"shards_per_worker: must be > 0, got {self.shards_per_worker!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _hints()[f.name] is int and value > MAX_COUNT:
                raise ValueError(f"{f.name}: must be at most {MAX_COUNT:_}, got {show(value)}")
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"dataset: unknown dataset {self.dataset!r}; allowed: {', '.join(DATASET_NAMES)}")
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model: unknown model {self.model!r}; allowed: {', '.join(MODEL_NAMES)}")
        if self.partition not in SCHEMES:
            raise ValueError(f"partition: unknown scheme {self.partition!r}; allowed: {', '.join(SCHEMES)}")
        if self.partition == "natural" and self.dataset in _NO_WRITERS:
            raise ValueError(
                f"partition: 'natural' splits by writer and dataset {self.dataset!r} has none; "
                f"use iid, shards or dirichlet"
            )
        if self.grouping not in STRATEGIES:
            raise ValueError(f"grouping: unknown strategy {self.grouping!r}; allowed: {', '.join(STRATEGIES)}")
        if not self.dirichlet_alpha > 0:
            raise ValueError(f"dirichlet_alpha: must be > 0, got {self.dirichlet_alpha!r}")
        for key in ("synthetic_alpha", "synthetic_beta", "threads"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)!r}")
        if self.priced_params < 0:
            raise ValueError(f"priced_params: must be >= 0 (0 = the trained model's size), got {self.priced_params}")
        if self.model_bytes_per_param < 1:
            raise ValueError(f"model_bytes_per_param: must be >= 1, got {self.model_bytes_per_param}")
        if not all(math.isfinite(d) and d >= 0 for d in self.deadline_s):
            raise ValueError(f"deadline_s: every deadline must be a finite number of seconds >= 0 (0: none), "
                             f"got {show(self.deadline_s)}")
        if self.window_kib < 0:
            raise ValueError(f"window_kib: must be >= 0 (0 = no window cap), got {self.window_kib}")
        try:
            self.tcp()
        except ValueError as err:
            field, _, rule = str(err).partition(": ")
            raise ValueError(f"{_TCP_KEYS[field]}: {rule}") from None
        if self.device != "auto":  # no CUDA call while validating
            resolve_device(self.device)
        for spec in self.algorithms:
            parse_spec(spec)
        if not 0 < self.target_acc <= 1:
            raise ValueError(f"target_acc: must be in (0, 1], got {self.target_acc!r}")
        if not 0 <= self.budget_s < math.inf:
            raise ValueError(f"budget_s: must be a finite number of simulated seconds >= 0 (0 = off), got {self.budget_s!r}")
        choices = {"events": EVENT_RECORDS, "engine": ("batched", "loop")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}: must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if any(not 0 <= s <= MAX_SEED for s in self.seeds):
            bad = next(s for s in self.seeds if not 0 <= s <= MAX_SEED)
            raise ValueError(f"seeds: each seed must be from 0 to 2**32 - 1, got {show(bad)}")
        repeated = next((s for k, s in enumerate(self.seeds) if s in self.seeds[:k]), None)
        if repeated is not None:  # every row of metrics.csv would appear twice
            raise ValueError(f"seeds: seed {repeated} is given twice; give each seed once")
        if not self.algorithms:
            raise ValueError("algorithms: give at least one algorithm spec")
        for spec in self.traces:
            name, _, path = spec.partition("=")
            if not name.strip() or not path.strip():
                raise ValueError(f"traces: expected NAME=path.csv, got {spec!r}")
        if self.compute_ms < 0 and self.compute_ms != -1:
            raise ValueError(f"compute_ms: must be -1 (topology), 0 (measure) or > 0 ms, got {self.compute_ms}")
        for key in ("checkpoint_every", "divergence_every"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0 (0 = off), got {getattr(self, key)}")

    def train_config(self, seed: int = 0) -> TrainConfig:
        """The training settings these keys describe, for one seed."""
        return TrainConfig(iterations=self.iterations, lr=self.lr, batch_size=self.batch_size or None,
                           momentum=self.momentum, weight_decay=self.weight_decay, weighting=self.weighting,
                           participation=self.participation, eval_every=self.eval_every, seed=seed,
                           precision=self.precision, augment=self.augment)

    def tcp(self):
        """The TCP model these keys describe (:class:`testbed.net.TcpModel`)."""
        from testbed.net.tcp import TcpModel

        return TcpModel(**{field: getattr(self, key) for field, key in _TCP_KEYS.items()})

    @property
    def window_bytes(self) -> int | None:
        """The socket window W in bytes (None: no cap)."""
        return self.window_kib * 1024 or None

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
        coerced = {k: tuple(v) if is_tuple(hints[k]) and isinstance(v, list) else v for k, v in values.items()}
        try:
            return cls(**coerced)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    @classmethod
    def from_saved(cls, values: dict[str, Any], where: str) -> ExperimentConfig:
        """A run folder's config.json. Runs saved before the TCP model existed were priced
        by the fluid model, and before HyStart was modelled without its exit, so they keep
        that (resume and retime stay consistent)."""
        return cls.from_dict({**_SAVED_BEFORE_TCP, **values}, where=where)

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
        try:
            return dataclasses.replace(self, **values)
        except ValueError as err:
            raise ValueError(f"--set {err}") from None


PRESETS: dict[str, dict[str, Any]] = {
    # The defaults above: FedProx Synthetic(1, 1) split by device over the topology's
    # workers, an MLP, 600 iterations, two seeds; runs offline on a CPU in a few minutes.
    "quick": {},
    # The setting of Wang et al. (2022) Table 2 as their code runs it: CIFAR-10 sorted by
    # label, one class per worker (one shard each), n=10 workers in N=2 consecutive groups
    # (5 disjoint classes per group), flipped and cropped as there (augment=crop_flip);
    # local SGD P=5,10,50 vs H-SGD G=50 with I=5 and I=10;
    # transfers priced as torchvision's ImageNet VGG-11 (132,863,336 parameters, 531 MB)
    # on paper_table2 with a 12 MiB TCP window, where rounds cost what Table 2 implies:
    # a global round ~1 s, a local round ~3% of it (topologies/README.md, paper_costs.py).
    "paper": dict(
        topology="paper_table2", dataset="cifar10", partition="shards", shards_per_worker=1, grouping="as-given",
        model="vgg11", priced_params=132_863_336, window_kib=12288, augment="crop_flip",
        algorithms=("local:5", "local:10", "local:50", "hsgd:50,5", "hsgd:50,10"),
        iterations=20000, lr=0.05, batch_size=32, momentum=0.0, eval_every=250, target_acc=0.5, compute_ms=4.0,
        seeds=(0,), divergence_every=0, checkpoint_every=1000,
    ),
    # LEAF FEMNIST CNN, natural partition by writer.
    "femnist": dict(dataset="femnist", partition="natural", model="femnist_cnn", iterations=2000, lr=0.05, batch_size=20, eval_every=100, target_acc=0.6,
                    seeds=(0,), divergence_every=0),
}


def saved_tcp_model(values: dict[str, Any]):
    """The TCP model of a run folder's saved config keys (defaults for absent keys, and
    the fluid model for runs saved before TCP was modelled)."""
    from testbed.net.tcp import TcpModel

    values = {**_SAVED_BEFORE_TCP, **values}
    return TcpModel(**{field: values[key] for field, key in _TCP_KEYS.items() if key in values})


def preset(name: str) -> ExperimentConfig:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r}: unknown preset; allowed: {', '.join(PRESETS)}")
    return ExperimentConfig.from_dict(PRESETS[name], where=f"preset {name}")


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(ExperimentConfig)
