"""The synchronous H-SGD schedule priced on the network: one clock per worker.

Compute between aggregations is independent per worker, so it is added in numpy; only
aggregation rounds are simulated (see :mod:`testbed.net.schedule`). Call
:meth:`NetworkClock.advance` once per local iteration, as training runs, or use
:func:`price_schedule` to re-time a finished run without training.

Breakdown, per worker w (exact identity, up to float rounding):

    clock_w = compute_w + sum_l comm_l_w + wait_w

Per-level figures are named by the topology's tiers (``comm_<tier>_s``, e.g.
``comm_cloud_s``, ``comm_edge_s``; ``level_k`` where the topology names none), so a
column means the same servers whichever levels an algorithm aggregates at.

* compute_w: the sum of w's iteration times (iterations it took part in);
* comm_l_w: for each aggregation whose top server is at level l, the durations of the
  transfers on w's own path: its hop up and each server hop above it to the top server,
  then each hop back down to w (latency, then the bytes as a TCP flow: slow start from
  its connection's window, at most its max-min share; :mod:`testbed.net.tcp`);
* wait_w: the rest of the time w was blocked in those aggregations: barrier time spent
  waiting for slower peers (stragglers, slower links) at every server on its path, plus
  any wait for the previous broadcast to finish (partial participation only).

A worker that does not take part in a round neither computes nor sends; it still
receives the average. Its blocked time (if the average arrives after its own clock) is
comm up to its own down-path duration, the rest wait. A round's broadcast starts only
once the previous broadcast in that subtree has arrived everywhere, so rounds never
overlap on a link (this can only bind under partial participation).

Deadlines (``deadline_s``, per server): a round's deadline counts from when the server's
previous average reached all its workers. :meth:`NetworkClock.admit` prices the step
tentatively and leaves out every participant whose model, sent up its own path, would
reach the top server after the deadline; :meth:`NetworkClock.advance` then prices the step
with those workers as non-participants, and a server that left someone out averages at
its deadline (not earlier: it cannot know the late model will not come).

The subtrees whose rounds complete the averaging at one iteration are disjoint, so
they are priced together, one :class:`~testbed.net.forest.Forest` per level of their
top servers: in closed form when that is exact for all of them (no shared link can
saturate), else by the SimPy flow simulation. ``rounds_by_engine`` counts the subtree
rounds each backend priced.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import networkx as nx
import numpy as np

from testbed.schedule import Drop, Step

from .deadlines import Deadlines
from .events import Event, EventLog
from .links import LinkModel, seed_roots
from .probe import DEFAULT_WINDOW_BYTES
from .sampling import SamplerBank, make_sampler
from .forest import Forest, TreeIndex
from .schedule import plan_round, simpy_round, solo_rates, solo_rates_fit, vector_round
from .tcp import Connections, TcpModel
from .topology import Topology, load_topology


@dataclass(frozen=True)
class ClockConfig:
    """How a :class:`NetworkClock` prices a run."""

    model_bytes: float  # bytes of one model (parameters x bytes per element)
    seed: int  # spawns every sampler's generator
    window_bytes: int | None = DEFAULT_WINDOW_BYTES  # TCP window W for the min(B, W/RTT) cap; None: no cap
    compute_ms: float | tuple[float, ...] | None = None  # overrides the nodes' compute (one value or one per worker)
    sampling: str = "replay"  # traces: 'replay' (in order from a random offset) or 'bootstrap'
    engine: str = "auto"  # 'auto': vector when exact, else simpy, round by round; 'vector'; 'simpy'
    record: str = "all"  # event log: 'all', 'aggregations' (one record per round) or 'none'
    tcp: TcpModel = TcpModel()  # slow start, headers, idle restart; TcpModel(kind='fluid') for plain max-min
    deadline_s: float | tuple[float, ...] | None = None  # round deadline of every server, or one per server id (inf: none)

    def __post_init__(self) -> None:
        if not isinstance(self.tcp, TcpModel):
            raise ValueError(f"tcp must be a TcpModel, got {type(self.tcp).__name__}")
        if isinstance(self.model_bytes, bool) or not isinstance(self.model_bytes, (int, float, np.number)) \
                or not math.isfinite(self.model_bytes) or self.model_bytes < 0:
            raise ValueError(f"model_bytes must be a number >= 0, got {self.model_bytes!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.window_bytes is not None and (isinstance(self.window_bytes, bool) or not self.window_bytes > 0):
            raise ValueError(f"window_bytes must be > 0 or None, got {self.window_bytes!r}")
        if self.deadline_s is not None:
            arr = np.atleast_1d(np.asarray(self.deadline_s, dtype=float))
            if np.any(np.isnan(arr)) or np.any(arr <= 0):
                raise ValueError(f"deadline_s must be > 0 seconds (inf: no deadline), got {self.deadline_s!r}")
        if self.compute_ms is not None:
            arr = np.atleast_1d(np.asarray(self.compute_ms, dtype=float))
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"compute_ms must be finite and >= 0, got {self.compute_ms!r}")
        for key, allowed in (("sampling", ("replay", "bootstrap")), ("engine", ("auto", "vector", "simpy")),
                             ("record", ("all", "aggregations", "none"))):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {list(allowed)}, got {getattr(self, key)!r}")


class NetworkClock:
    """Per-worker simulated clocks of a synchronous H-SGD run on a topology."""

    def __init__(
        self,
        topology: Topology | nx.Graph | str | os.PathLike,
        *,
        model_bytes: float,
        seed: int,
        trace_overrides: Mapping[str, str | os.PathLike] | None = None,
        window_bytes: int | None = DEFAULT_WINDOW_BYTES,
        compute_ms: float | Sequence[float] | None = None,
        sampling: str = "replay",
        engine: str = "auto",
        record: str = "all",
        tcp: TcpModel | None = None,
        deadline_s: float | Sequence[float] | None = None,
    ):
        if compute_ms is not None and not np.isscalar(compute_ms):
            compute_ms = tuple(float(x) for x in compute_ms)
        if deadline_s is not None and not np.isscalar(deadline_s):
            deadline_s = tuple(float(x) for x in deadline_s)
        tcp = TcpModel() if tcp is None else tcp
        self.config = ClockConfig(model_bytes, seed, window_bytes, compute_ms, sampling, engine, record, tcp, deadline_s)
        self.topology = topo = load_topology(topology, trace_overrides=trace_overrides)
        self._idx = TreeIndex(topo)
        if engine == "vector" and self._idx.links_shared:
            raise ValueError(
                f"{topo.source}: engine='vector' is exact only when no link is crossed by two hops, but some "
                f"links here are shared (behind a router); use engine='auto' (vector whenever exact) or 'simpy'"
            )
        self.engine = engine
        self.rounds_by_engine = {"vector": 0, "simpy": 0}  # which backend priced each round
        self._links = LinkModel(topo, seed=seed, sampling=sampling, payload_share=tcp.payload_share)
        n, M = topo.n_workers, self._idx.M
        # each node's connections to its parent (one per direction) keep their windows between rounds
        self._conn = None if tcp.fluid else Connections(tcp, [len(v) for v in self._idx.level_nodes], window_bytes)
        self._setup_compute(seed_roots(seed)[2], compute_ms, sampling)
        self._clock = np.zeros(n)
        self._compute = np.zeros(n)
        self._comm = np.zeros((n, M))
        self._wait = np.zeros(n)
        self._delivered = np.zeros(n)  # last time each worker received an average
        self._all = np.ones(n, dtype=bool)
        self.t = 0
        # the forests of each set of top servers, built the first time a step names it
        self._tops: dict[tuple[int, ...], list[Forest]] = {}
        self._log = EventLog(topo, self._idx, float(model_bytes), full=record == "all")
        deadlines = Deadlines(topo, deadline_s)
        self._deadlines = deadlines if deadlines.any else None

    # ---- the main loop ------------------------------------------------------------------
    def advance(self, step: Step | int, participants: np.ndarray | None = None) -> float:
        """Price one local iteration: each participant computes, then every aggregation
        the step names runs (its dropped workers send nothing and receive the average).
        ``step``: a :class:`~testbed.schedule.Step`, or an iteration number (1, 2, ...) with
        ``participants`` (None: all; a bool array [n_workers]) for the step of the clock's
        own tree. Returns :attr:`now_s`."""
        if not isinstance(step, Step):
            step = Step.at(self.tree, int(step), participants)
        if step.t != self.t + 1:
            raise ValueError(
                f"advance({step.t}) after iteration {self.t}: call once per local iteration, next is {self.t + 1}"
            )
        self._price(step)
        return self.now_s

    def admit(self, step: Step) -> Step:
        """``step`` with the workers left out whose model would reach the round's top server
        after its deadline (each round keeps at least its first arrival). The step is
        priced tentatively and the clock restored, so :meth:`advance` prices it for real."""
        if self._deadlines is None or not step.aggregating_servers:
            return step
        if step.t != self.t + 1:
            raise ValueError(f"admit({step.t}) after iteration {self.t}: the step to admit is {self.t + 1}")
        keep = {id(self.topology): self.topology, id(self.tree): self.tree}  # shared, never changed by pricing
        saved = copy.deepcopy({k: self.__dict__[k] for k in _PRICING_STATE}, memo=keep)
        arrivals: list[tuple[Forest, np.ndarray, np.ndarray]] = []
        try:
            self._price(step, arrivals)
        finally:
            self.__dict__.update(saved)
        drops: list[Drop] = [d for forest, on, arrival in arrivals for d in self._deadlines.late(forest, on, arrival)]
        return step.without(sorted(drops, key=lambda d: d.worker), self.topology.n_workers)

    def _price(self, step: Step, arrivals: list | None = None) -> None:
        """Compute, then the step's aggregations; ``arrivals``: a tentative pricing that
        collects (forest, senders, own-path arrival at the top) per forest and logs nothing."""
        part = self._all if step.participants is None else self._check_participants(step.participants)
        iteration = self._iteration_s(part)
        self._clock += iteration
        self._compute += iteration
        senders = part if not step.dropped else self._check_participants(step.contributors)
        late_roots = {d.server for d in step.dropped}
        for forest in self._top_forests(step.aggregating_servers):
            self._aggregate(step.t, forest, senders, late_roots, arrivals)
        self.t = step.t

    def _top_forests(self, servers: tuple[int, ...]) -> list[Forest]:
        """The subtrees of the top servers ``servers``, one forest per level."""
        if servers not in self._tops:
            by_level: dict[int, list[int]] = {}
            for s in servers:
                by_level.setdefault(self.tree.servers[s].level, []).append(s)
            self._tops[servers] = [self._idx.forest(by_level[l]) for l in sorted(by_level)]
        return self._tops[servers]

    @property
    def now_s(self) -> float:
        """Simulated time at which every worker has finished iteration t and its aggregations."""
        return float(self._clock.max())

    @property
    def has_deadlines(self) -> bool:
        """Whether a server has a deadline: the clock then decides who is averaged."""
        return self._deadlines is not None

    @property
    def tree(self):
        """The topology's AggregationTree."""
        return self.topology.tree

    @property
    def clocks_s(self) -> np.ndarray:
        """Each worker's own clock (a copy)."""
        return self._clock.copy()

    @property
    def comm_columns(self) -> tuple[str, ...]:
        """``comm_<tier>_s`` of each aggregation level, top first."""
        return tuple(f"comm_{tier}_s" for tier in self.topology.tiers)

    def breakdown(self) -> dict[str, float]:
        """Means over workers: compute_s, comm_<tier>_s per aggregation level, comm_s (their
        sum), wait_s; compute_s + comm_s + wait_s == elapsed_s (the mean worker clock)."""
        out = {"iteration": float(self.t), "now_s": self.now_s, "elapsed_s": float(self._clock.mean()),
               "compute_s": float(self._compute.mean())}
        for l, column in enumerate(self.comm_columns):
            out[column] = float(self._comm[:, l].mean())
        out["comm_s"] = float(self._comm.sum(axis=1).mean())
        out["wait_s"] = float(self._wait.mean())
        return out

    def worker_breakdown(self) -> dict[str, np.ndarray]:
        """The same per worker (arrays of length n_workers): clock_s, compute_s, comm_<tier>_s, wait_s."""
        out = {"worker": np.arange(len(self._clock)), "clock_s": self._clock.copy(), "compute_s": self._compute.copy()}
        for l, column in enumerate(self.comm_columns):
            out[column] = self._comm[:, l].copy()
        out["wait_s"] = self._wait.copy()
        return out

    @property
    def events(self) -> list[Event]:
        """The event log (see :class:`~testbed.net.events.EventLog`); prefer
        :meth:`events_frame` for long runs."""
        return self._log.events

    def events_frame(self):
        """The event log as a pandas DataFrame (one row per :class:`Event`)."""
        return self._log.frame()

    # ---- internals ----------------------------------------------------------------------
    def _setup_compute(self, root: np.random.SeedSequence, override, sampling: str) -> None:
        topo = self.topology
        n = topo.n_workers
        ov = None
        if override is not None:
            if np.ndim(override) and len(override) != n:
                raise ValueError(f"compute_ms has {len(override)} values but the topology has {n} workers")
            ov = np.broadcast_to(np.asarray(override, dtype=float), (n,))
        self._fixed_s = np.zeros(n)
        traced, scale, samplers = [], [], []
        gens = root.spawn(n)
        for w in range(n):
            cm, trace, slow = topo.worker_compute(w)
            if trace is not None:
                tr = topo.traces[trace]
                # with an override the trace only shapes the variation around the measured mean
                mean = float(tr.values.mean())
                if ov is not None and mean <= 0:
                    raise ValueError(
                        f"{topo.source}: node {topo.worker_nodes[w]!r}: compute_trace {trace!r} has mean 0"
                    )
                traced.append(w)
                scale.append(slow / 1e3 * (ov[w] / mean if ov is not None else 1.0))
                samplers.append(make_sampler(sampling, tr, np.random.default_rng(gens[w])))
            elif ov is not None:
                self._fixed_s[w] = ov[w] * slow / 1e3
            elif cm is not None:
                self._fixed_s[w] = cm * slow / 1e3
            else:
                raise ValueError(
                    f"{topo.source}: worker {topo.worker_nodes[w]!r} has neither 'compute_ms' nor 'compute_trace'; "
                    f"give one, or pass compute_ms= to NetworkClock"
                )
        self._traced = np.array(traced, dtype=np.int64)
        self._traced_scale = np.array(scale)
        self._compute_bank = SamplerBank(samplers)

    def _iteration_s(self, part: np.ndarray) -> np.ndarray:
        if part is self._all and not len(self._traced):
            return self._fixed_s
        step = np.where(part, self._fixed_s, 0.0)
        if len(self._traced):
            on = np.flatnonzero(part[self._traced])
            step[self._traced[on]] = self._compute_bank.draw(on, unique=True) * self._traced_scale[on]
        return step

    def _check_participants(self, participants) -> np.ndarray:
        p = np.asarray(participants)
        if p.dtype != bool or p.shape != self._all.shape:
            raise ValueError(
                f"participants must be a bool array of shape ({len(self._all)},), got {p.dtype} {p.shape}"
            )
        return self._all if p.all() else p  # everyone: take the fast path

    def _aggregate(self, t: int, forest: Forest, part: np.ndarray, late_roots: set[int], arrivals: list | None) -> None:
        """Price the rounds of every subtree of ``forest`` at once (they share no link).
        A root in ``late_roots`` left someone out: it waits for its deadline before it averages."""
        M, S = self._idx.M, float(self.config.model_bytes)
        if part is not self._all:
            on = np.logical_or.reduceat(part[forest[M].nodes], forest.worker_seg)
            if not on.all():  # a subtree with nobody taking part sends nothing
                if not on.any():
                    return
                forest = self._idx.forest([s for s, o in zip(forest.roots, on) if o])
        plan = plan_round(self._idx, self._links, forest, None if part is self._all else part)
        l, at = forest.level, forest.workers
        floor = np.maximum.reduceat(self._delivered[at], forest.worker_seg)
        if late_roots:
            due = [self._deadlines.due_s(r) if r in late_roots else 0.0 for r in forest.roots]
            floor = np.maximum(floor, due)
        window = self.config.window_bytes
        rates = solo_rates(plan, window) if self.engine != "simpy" else None
        if rates is not None and solo_rates_fit(self._idx, plan, *rates):
            tm = vector_round(plan, self._clock, floor, S, rates, self._conn)
            self.rounds_by_engine["vector"] += len(forest.roots)
        else:  # a shared link may saturate: simulate the flows
            tm = simpy_round(plan, self._clock, floor, S, window, self._conn)
            self.rounds_by_engine["simpy"] += len(forest.roots)
        up_chain = down_chain = np.zeros(len(forest.roots))
        for d in range(l + 1, M + 1):  # own-path transfer time from the top down to each node
            up_chain = (tm.up_end[d] - tm.up_start[d]) + up_chain[forest[d].parent]
            down_chain = (tm.down_end[d] - tm.down_start[d]) + down_chain[forest[d].parent]
        c = self._clock[at]
        if arrivals is not None:
            arrivals.append((forest, plan.active[M], c + up_chain))
        deliver = tm.down_end[M]
        if plan.everyone:
            comm = up_chain + down_chain
            self._wait[at] += (deliver - c) - comm
            self._clock[at] = deliver
        else:
            on = plan.active[M]
            blocked = np.maximum(deliver - c, 0.0)
            comm = np.where(on, up_chain + down_chain, np.minimum(blocked, down_chain))
            self._wait[at] += np.where(on, deliver - c, blocked) - comm
            self._clock[at] = np.where(on, deliver, np.maximum(c, deliver))
        self._comm[at, l] += comm
        self._delivered[at] = deliver
        if self._deadlines is not None:
            self._deadlines.restart(forest, self._delivered)
        if self.config.record != "none" and arrivals is None:
            self._log.append(t, forest, plan.active, tm)


# what pricing a step changes: saved and restored around a tentative pricing (admit)
_PRICING_STATE = ("_links", "_conn", "_compute_bank", "_clock", "_compute", "_comm", "_wait", "_delivered",
                  "_deadlines", "rounds_by_engine", "t")


def price_schedule(
    topology: Topology | nx.Graph | str | os.PathLike,
    n_iterations: int,
    *,
    participants: Callable[[int], np.ndarray | None] | np.ndarray | None = None,
    **clock_options,
) -> NetworkClock:
    """Re-time a run without training: advance a fresh :class:`NetworkClock` through
    iterations 1..n_iterations. ``participants``: None, a bool array [T, n_workers], or
    a function t -> mask."""
    clock = NetworkClock(topology, **clock_options)
    for t in range(1, n_iterations + 1):
        if participants is None:
            mask = None
        elif callable(participants):
            mask = participants(t)
        else:
            mask = participants[t - 1]
        clock.advance(t, mask)
    return clock
