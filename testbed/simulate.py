"""``testbed.simulate``: multi-level H-SGD (Algorithm 1 generalised to M levels) as a library call.

    result = testbed.simulate("mlp", worker_data, tree=[[0, 1], [2, 3]], periods=[10, 2],
                              iterations=200, lr=0.05, batch_size=32, eval_data=(x, y), seed=0)
    result.metrics        # DataFrame: iteration, worker_loss, global_train_loss, test_loss, test_acc
    result.global_state   # state_dict of the global average model

    result = testbed.simulate("mlp", worker_data, tree="hsgd", network="edge3level", compute_ms=5)
    result.metrics        # ... plus sim_time_s and its breakdown (compute_s, comm_<tier>_s, wait_s)
    result.events         # the clock's event log

The model is a name of ``testbed.models`` or a function returning a module (both built
with ``seed``, so the same seed gives the same run), or a module whose weights are used
as they are.

Every evaluation is of the global average model: between global rounds that is the
*virtual* average of all workers (no server holds it), taken with the global weights.
``worker_loss`` is the weighted mean of the workers' own minibatch losses at that step
(local models on local data: near zero with one class per worker); ``global_train_loss``
is the global model's loss on a fixed, seeded sample of every worker's training data.

Semantics: after local iteration t, every server whose period divides t averages its
subtree and the average replaces its members' models; averages are hierarchical (each
server averages its children), so a global aggregation reproduces Algorithm 1's
``1/N sum_i w_i`` with ``weighting="uniform"``. BatchNorm running statistics are averaged
with the parameters; momentum buffers stay with their worker (as with one optimizer per
worker). With ``participation < 1`` each round of the top-level period draws a fraction of
every bottom group; the others sit the round out and receive the averages. Both come from
one :class:`~testbed.schedule.Schedule` (``result.schedule``); a callback's ``admit`` may
leave late workers out of an average (deadlines).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from testbed.device import resolve_device
from testbed.engine import ENGINES, MinibatchSampler, WorkerData, plan_aggregation, subtree_weights
from testbed.engine.aggregation import WEIGHTINGS
from testbed.engine.nonfinite import NonFiniteWatch
from testbed.engine.augment import check_augment
from testbed.engine.precision import check_precision
from testbed.evaluation import evaluate, global_train_loss, train_sample
from testbed.schedule import Schedule, Step
from testbed.tree import AggregationTree, NestedTree, PeriodSpec

log = logging.getLogger("testbed")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation settings shared by every worker."""

    iterations: int  # local iterations T
    lr: float  # learning rate gamma
    batch_size: int | None = None  # None: full local batch every step (gradient descent)
    momentum: float = 0.0
    weight_decay: float = 0.0
    weighting: str = "uniform"  # "uniform" (Algorithm 1) or "samples" (FedAvg-style)
    participation: float = 1.0  # fraction of each bottom group taking part per round
    eval_every: int | None = None  # None: about 20 evaluation points
    seed: int = 0
    train_eval_samples: int = 2048  # training samples (the same number per worker, drawn once) for global_train_loss; 0: off
    precision: str = "fp32"  # forward/backward dtype: fp32, bf16 or fp16 (state stays fp32)
    augment: str = "none"  # training images: none, or crop_flip (the paper code's random flip and crop)

    def __post_init__(self):
        # the one check of these keys: ExperimentConfig.train_config() builds this too
        _check_int("iterations", self.iterations, minimum=1)
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr!r}")
        if not math.isfinite(self.lr):
            raise ValueError(f"lr: must be finite, got {self.lr!r}")
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, minimum=1)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum: must be in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay: must be >= 0, got {self.weight_decay!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting: must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not 0.0 < self.participation <= 1.0:
            raise ValueError(f"participation: must be in (0, 1], got {self.participation!r}")
        if self.eval_every is not None:
            _check_int("eval_every", self.eval_every, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_int("train_eval_samples", self.train_eval_samples, minimum=0)
        check_precision(self.precision)
        check_augment(self.augment)

    @property
    def eval_interval(self) -> int:
        return self.eval_every or max(1, self.iterations // 20)


class Callback:
    """Hooks into the main loop; runners hang I/O and the network clock off these."""

    def on_start(self, run: "HSGDRun") -> None:
        """Before the first iteration; ``run`` gives access to the tree, data and models."""

    def admit(self, step: Step) -> Step:
        """Before ``step``'s averages: the step to average (a clock with deadlines drops the late)."""
        return step

    def on_step(self, step: Step) -> None:
        """After local iteration ``step.t`` and the averages the step names."""

    def on_eval(self, row: dict[str, Any]) -> None:
        """An evaluation row; a callback may add columns to it before it is stored."""

    def after_iteration(self, t: int) -> None:
        """Iteration t is complete, its evaluation row stored: the place for checkpoints."""


@dataclass
class SimulationResult:
    global_state: dict[str, torch.Tensor]
    metrics: pd.DataFrame
    tree: AggregationTree
    config: TrainConfig
    extras: dict[str, Any] = field(default_factory=dict)
    events: pd.DataFrame | None = None  # the clock's event log when priced on a network
    schedule: Schedule | None = None  # what was averaged at every iteration (participants, drops)


ModelSource = nn.Module | str | Callable[[], nn.Module]


def simulate(
    model: ModelSource,
    worker_data: Any,
    tree: NestedTree | AggregationTree | str | None = None,
    periods: PeriodSpec | None = None,
    iterations: int = 100,
    lr: float = 0.1,
    batch_size: int | None = None,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    weighting: str = "uniform",
    participation: float = 1.0,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    engine: str | Callable[..., Any] = "batched",
    callbacks: Sequence[Callback] = (),
    resume: dict[str, Any] | None = None,
    network: Any = None,
    compute_ms: float | None = None,
    train_eval_samples: int = 2048,
    precision: str = "fp32",
    augment: str = "none",
) -> SimulationResult:
    """Train ``model`` on every worker under the aggregation ``tree`` (see module docstring).

    ``model``: a model name (``testbed.models.MODEL_NAMES``, shaped from the data) or a
    function returning a module, built with ``seed``; or a module, trained from its weights.
    ``worker_data``: a list of (x, y) pairs, one per worker, or an object with a
    ``worker_data`` list (and optionally ``test_data`` used when ``eval_data`` is None).
    ``loss(output, target)`` must return per-sample losses (default cross-entropy).
    ``resume``: a ``HSGDRun.state_dict()`` (from a checkpoint) to continue from.
    ``network``: a topology (shipped name, file, networkx graph) to price the run on, as
    ``testbed experiment`` does; ``tree`` is then an algorithm spec on it ('hsgd' by
    default, 'local:P', 'hsgd:G,I@0,2') and ``compute_ms`` the compute time per iteration
    (None: the topology's). Adds sim_time_s and its breakdown to ``metrics``, and ``events``.
    ``train_eval_samples``: training samples for ``global_train_loss`` (0: not measured).
    ``precision``: bf16 or fp16 forward and backward; weights, momentum, averages stay fp32.
    ``engine``: 'batched', 'loop' or an engine class (torchrun: ``engine.distributed.sharded``).
    """
    config = TrainConfig(iterations, lr, batch_size, momentum, weight_decay, weighting, participation, eval_every, seed,
                         train_eval_samples, precision, augment)
    pairs = list(getattr(worker_data, "worker_data", worker_data))
    model = initial_model(model, worker_data, pairs, seed)
    pricing = None
    if network is not None:
        from testbed.experiment.api import price_on_network

        if periods is not None:
            raise ValueError("periods: with network=, the periods come from the algorithm spec given as tree")
        pricing = price_on_network(network, "hsgd" if tree is None else tree, model, compute_ms, seed)
        tree, callbacks = pricing.tree, [*callbacks, pricing.timer]
    elif tree is None or isinstance(tree, str):
        raise ValueError(f"tree: an algorithm spec ({tree!r}) needs network=; without one, give the tree "
                         f"as nested worker lists with periods, or an AggregationTree")
    elif compute_ms is not None:
        raise ValueError("compute_ms: prices iterations on a network; give network= too")
    if not isinstance(tree, AggregationTree):
        if periods is None:
            raise ValueError("periods: required unless tree is an AggregationTree")
        tree = AggregationTree(tree, periods)
    if eval_data is None:
        eval_data = getattr(worker_data, "test_data", None)
    if len(pairs) != tree.n_workers:
        raise ValueError(f"worker_data has {len(pairs)} workers but the tree has {tree.n_workers}")
    if isinstance(engine, str) and engine not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}")
    dev = resolve_device(device)
    data = WorkerData.stack(pairs, dev)
    run = HSGDRun(model, data, tree, config, loss or per_sample_cross_entropy, ENGINES.get(engine, engine), dev, eval_data)
    result = run.run(callbacks, resume)
    if pricing is not None:
        result.events = pricing.events()
    return result


def initial_model(model: ModelSource, worker_data: Any, pairs: list, seed: int) -> nn.Module:
    """The model training starts from: a module as given, else built with ``seed`` (the
    caller's torch RNG is left as it was), so the same seed gives the same initial weights."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, str):
        from testbed.models import build_model

        x = pairs[0][0] if pairs else torch.empty(0, 1)
        shape = getattr(worker_data, "input_shape", tuple(x.shape[1:]))
        classes = getattr(worker_data, "num_classes", None) or 1 + max((int(y.max()) for _, y in pairs if len(y)), default=0)
        return build_model(model, num_classes=int(classes), input_shape=shape, seed=seed)
    if not callable(model):
        raise ValueError(f"model: expected a torch module, a model name or a function returning a module, got {model!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        built = model()
    if not isinstance(built, nn.Module):
        raise ValueError(f"model: the function returned {type(built).__name__}, not a torch module")
    return built


class HSGDRun:
    """One training run; ``run()`` is the main loop."""

    def __init__(self, model, data: WorkerData, tree: AggregationTree, config: TrainConfig, loss, engine_cls, device, eval_data):
        self.tree, self.config, self.device = tree, config, device
        self.template = model
        self.engine = engine_cls(model, data, loss, config.momentum, config.weight_decay, device, precision=config.precision)
        self.sample_counts = data.counts.cpu().numpy()
        self.loss = loss
        # ---- seeding: every random component gets its own generator from one seed ----
        batch_seq, participation_seq, train_sample_seq, augment_seq = np.random.SeedSequence(config.seed).spawn(4)
        self.sampler = MinibatchSampler(data, config.batch_size, int(batch_seq.generate_state(1)[0]),
                                        config.augment, int(augment_seq.generate_state(1)[0]))
        self.schedule = Schedule(tree, config.participation, participation_seq)
        self.train_sample = train_sample(data, config.train_eval_samples, np.random.default_rng(train_sample_seq))
        self.data = data
        self.eval_data = None if eval_data is None else tuple(torch.as_tensor(t).to(device) for t in eval_data)
        self._eval_model = None

    def run(self, callbacks: Sequence[Callback] = (), resume: dict[str, Any] | None = None) -> SimulationResult:
        """The main loop; ``resume`` is a ``state_dict()`` taken at the end of an iteration."""
        tree, cfg = self.tree, self.config
        self.rows: list[dict[str, Any]] = []
        self.t = 0
        self.stop_reason: str | None = None
        if resume is not None:
            self.load_state_dict(resume)
        else:  # a second run() of this object starts over (the generators go on)
            self.schedule.restart()
        participants = self.participants
        watch = NonFiniteWatch(tree.n_workers, self.device, participants)
        for cb in callbacks:
            cb.on_start(self)
        for t in range(self.t + 1, cfg.iterations + 1):
            self.t = t
            # ---- the schedule: who takes part (drawn at a round start), who aggregates ----
            step = self.schedule.next(t)
            participants = step.participants
            if step.round_start:
                watch.set_participants(participants)
            # ---- local step on every worker: w_j <- w_j - lr * g(w_j, zeta_j) ----
            losses = self.engine.step(self.sampler.next(), cfg.lr, participants)
            watch.record(losses, t)
            # ---- a non-finite loss would spread through the averages: stop before them (read on
            # the host only here: no device sync per step; the status names the first one) ----
            aggregated = [tree.servers[s] for s in step.aggregating_servers]
            evaluating = t % cfg.eval_interval == 0 or t == cfg.iterations
            status = watch.check() if aggregated or evaluating else None
            if status:
                self._diverged(t, status, callbacks)
                break
            # ---- every server whose period divides t averages its subtree (the late left out) ----
            if aggregated:
                for cb in callbacks:
                    step = cb.admit(step)
                plan = plan_aggregation(tree, aggregated, cfg.weighting, self.sample_counts, step.contributors)
                self.engine.average(plan)
            self.schedule.record(step)
            for cb in callbacks:
                cb.on_step(step)
            # ---- a callback asked to stop after this iteration (time budget spent): evaluate it ----
            if self.stop_reason is not None and not evaluating:
                evaluating = True
                if status := watch.check():
                    self._diverged(t, status, callbacks)
                    break
            # ---- evaluate the global average model ----
            if evaluating:
                row = self._evaluate(t, losses, participants)
                for cb in callbacks:
                    cb.on_eval(row)
                if self.stop_reason is not None:  # asked in on_step or, at this row, in on_eval
                    row["stop"] = self.stop_reason
                self.rows.append(row)
            for cb in callbacks:  # a checkpoint taken here holds iteration t complete
                cb.after_iteration(t)
            if self.stop_reason is not None:
                break
        state = self.engine.global_state(self._global_weights(participants))
        extras = {"status": self.rows[-1].get("status", "ok") if self.rows else "ok", "stop": self.stop_reason}
        return SimulationResult(state, pd.DataFrame(self.rows), tree, cfg, extras, schedule=self.schedule)

    def stop(self, reason: str) -> None:
        """For callbacks (``on_step``, ``on_eval``): end the run after this iteration, evaluated,
        its row saying ``reason`` (the first given) in column ``stop``."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def _diverged(self, t: int, status: str, callbacks: Sequence[Callback]) -> None:
        """The last row of a run stopped on a non-finite loss: its status, no evaluation."""
        log.warning("%s", status)
        row = {"iteration": t, "worker_loss": float("nan"), "status": status}
        for cb in callbacks:
            cb.on_eval(row)
        self.rows.append(row)

    # ---- checkpoints: everything needed to continue after iteration t ----
    def state_dict(self) -> dict[str, Any]:  # the sampler's: sampler, augment; the schedule's: participation_rng, participants
        return {"t": self.t, "engine": self.engine.state_dict(), **self.sampler.get_state(),
                **self.schedule.state_dict(), "rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.engine.load_state_dict(state["engine"])
        self.sampler.set_state(state)
        self.schedule.load_state_dict(state, self.t)
        self.rows = [dict(r) for r in state["rows"]]

    def _global_weights(self, participants: np.ndarray | None) -> np.ndarray:
        return subtree_weights(self.tree, self.tree.servers[0], self.config.weighting, self.sample_counts, participants)

    def _evaluate(self, t: int, losses: torch.Tensor, participants: np.ndarray | None) -> dict[str, Any]:
        weights = self._global_weights(participants)
        active = torch.as_tensor(weights > 0, device=losses.device)
        w = torch.as_tensor(weights, dtype=losses.dtype, device=losses.device)
        row: dict[str, Any] = {"iteration": t, "worker_loss": float((torch.where(active, losses, 0) * w).sum())}
        model = self._model_with(self.engine.global_state(weights))
        if not getattr(self.engine, "primary", True):  # a torchrun rank other than 0: rank 0 evaluates
            return row
        if self.train_sample is not None:
            full = torch.as_tensor(self._global_weights(None))  # the objective f: full participation's weights
            row["global_train_loss"] = global_train_loss(model, self.data, self.train_sample, self.loss, full)
        if self.eval_data is not None:
            row.update(evaluate(model, *self.eval_data))
        return row

    def global_model(self) -> nn.Module:
        """The current global average model, in eval mode (a shared copy: do not keep it)."""
        return self._model_with(self.engine.global_state(self._global_weights(self.participants)))

    participants = property(lambda self: self.schedule.participants, doc="This round's participants (None: everyone).")

    def _model_with(self, state: dict[str, torch.Tensor]) -> nn.Module:
        if self._eval_model is None:
            import copy

            self._eval_model = copy.deepcopy(self.template).to(self.device)
        self._eval_model.load_state_dict(state)
        return self._eval_model.eval()


def per_sample_cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target, reduction="none")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be {'> 0' if minimum == 1 else f'>= {minimum}'}, got {value!r}")
