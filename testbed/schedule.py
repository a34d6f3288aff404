"""The schedule of a run: for every iteration, which servers aggregate and who takes part.

Training and the network clock both read it, so neither recomputes the other's decisions:

    schedule = Schedule(tree, participation=0.5, seed=seq)
    step = schedule.next(t)          # Step(t, round_start, participants, aggregating_servers)
    step = clock.admit(step)         # with deadlines: the late workers dropped
    schedule.record(step)            # what was averaged (and priced) at t

A round is one period of the top server; at each round start a fraction of every bottom
group is drawn to take part (:func:`sample_participants`, one generator for
the whole run). Without deadlines the schedule does not depend on timing, so a finished
run can be replayed through another clock (re-time); a deadline makes the clock decide
who is averaged, and :attr:`Schedule.timing` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np

from testbed.tree import AggregationTree

FORMAT = "testbed-schedule/1"


@dataclass(frozen=True)
class Drop:
    """A worker left out of an average: its model would have reached ``server`` ``late_s``
    seconds after that server's deadline."""

    worker: int
    server: int  # the top server of the round (an id of the tree)
    late_s: float


@dataclass(frozen=True)
class Step:
    """Local iteration ``t`` and the averages due after it."""

    t: int
    round_start: bool  # a new round: participants were drawn at t
    participants: np.ndarray | None  # bool [n_workers]: who computes this round; None: everyone
    aggregating_servers: tuple[int, ...]  # ids of the top aggregating servers (disjoint subtrees)
    dropped: tuple[Drop, ...] = ()  # left out of this step's averages by a deadline
    averaged: np.ndarray | None = None  # bool [n_workers]: who is averaged, where drops make it differ

    @classmethod
    def at(cls, tree: AggregationTree, t: int, participants: np.ndarray | None = None) -> "Step":
        """The step of iteration t on ``tree`` with the given participants."""
        return cls(t, (t - 1) % tree.servers[0].period == 0, participants,
                   tuple(s.id for s in tree.top_aggregating(t)))

    @property
    def ends_round(self) -> bool:
        """The top server (id 0) aggregates: the round is over after this step."""
        return 0 in self.aggregating_servers

    @property
    def contributors(self) -> np.ndarray | None:
        """Who is averaged at t: the participants less the dropped (None: everyone)."""
        return self.participants if self.averaged is None else self.averaged

    def without(self, drops: list[Drop] | tuple[Drop, ...], n_workers: int) -> "Step":
        """This step with ``drops`` left out of its averages (they still receive them)."""
        if not drops:
            return self
        mask = np.ones(n_workers, bool) if self.participants is None else self.participants.copy()
        mask[[d.worker for d in drops]] = False
        return replace(self, dropped=tuple(drops), averaged=mask)


def sample_participants(
    tree: AggregationTree, fraction: float, rng: np.random.Generator
) -> np.ndarray | None:
    """Draw this round's participants: ``ceil(fraction * n_i)`` workers (at least one)
    from every bottom-level group i, without replacement. ``None`` means everyone."""
    if fraction >= 1.0:
        return None
    active = np.zeros(tree.n_workers, bool)
    for s in tree.level(tree.n_levels - 1):
        k = max(1, int(np.ceil(fraction * len(s.workers) - 1e-9)))
        active[rng.choice(np.array(s.workers), size=k, replace=False)] = True
    return active


class Schedule:
    """Built once from (tree, participation, seed); yields one :class:`Step` per iteration
    and keeps the record of what was averaged (participants per round, drops)."""

    def __init__(self, tree: AggregationTree, participation: float = 1.0,
                 seed: int | np.random.SeedSequence = 0):
        self.tree, self.participation = tree, participation
        self.round_length = tree.servers[0].period
        self.rng = np.random.default_rng(seed)
        self.participants: np.ndarray | None = None  # the current round's, None = everyone
        self.rounds: dict[int, np.ndarray] = {}  # round start -> participants (participation < 1)
        self.drops: dict[int, tuple[Drop, ...]] = {}  # iteration -> workers dropped there
        self.timing: str | None = None  # why participation depends on timing (e.g. 'deadline_s'), None: it does not
        self.t = 0

    # ---- forward: the next step --------------------------------------------------------
    def next(self, t: int) -> Step:
        """Iteration t's step (t = last + 1); a round start draws its participants."""
        if t != self.t + 1:
            raise ValueError(f"Schedule.next({t}) after iteration {self.t}: steps come in order, next is {self.t + 1}")
        if (t - 1) % self.round_length == 0:
            self.participants = sample_participants(self.tree, self.participation, self.rng)
            if self.participants is not None:
                self.rounds[t] = self.participants
        self.t = t
        return Step.at(self.tree, t, self.participants)

    def restart(self) -> None:
        """Back before iteration 1, for another run of the same training object; the
        generator goes on (as the draws always did)."""
        self.t, self.participants, self.rounds, self.drops = 0, None, {}, {}

    def record(self, step: Step) -> None:
        """Keep what was decided at ``step.t`` beyond the draw (the drops of a deadline)."""
        if step.dropped:
            self.drops[step.t] = step.dropped

    # ---- backward: the recorded steps ---------------------------------------------------
    def replay(self, until_t: int, after_t: int = 0) -> Iterator[Step]:
        """The recorded steps after_t + 1 .. until_t, as they were averaged."""
        for t in range(after_t + 1, until_t + 1):
            yield Step.at(self.tree, t, self._participants_at(t)).without(self.drops.get(t, ()), self.tree.n_workers)

    def _participants_at(self, t: int) -> np.ndarray | None:
        if not self.rounds:
            return None
        return self.rounds[(t - 1) // self.round_length * self.round_length + 1]

    # ---- checkpoints (the layout checkpoints had before the Schedule, kept byte for byte) ----
    def state_dict(self) -> dict[str, Any]:
        """The generator and the current round's draw: what training needs to continue."""
        import torch  # here only: the network clock imports this module, and light commands never load torch

        return {"participation_rng": _json_safe(self.rng.bit_generator.state),
                "participants": None if self.participants is None else torch.as_tensor(self.participants)}

    def load_state_dict(self, state: dict[str, Any], t: int) -> None:
        self.rng.bit_generator.state = _from_json_safe(state["participation_rng"])
        p = state["participants"]
        self.participants = None if p is None else p.numpy().astype(bool)
        self.t = t

    def record_state(self) -> dict[str, Any]:
        """The record so far (participants per round start, drops), for a checkpoint."""
        state: dict[str, Any] = {"participants": {str(t): np.flatnonzero(p).tolist() for t, p in self.rounds.items()}}
        if self.drops:
            state["drops"] = _drops_json(self.drops)
        if self.timing:
            state["timing"] = self.timing
        return state

    def load_record_state(self, state: dict[str, Any]) -> None:
        self.rounds = {int(t): self._mask(w) for t, w in state["participants"].items()}
        self.drops = _drops_from_json(state.get("drops", []))
        self.timing = state.get("timing")

    # ---- JSON: schedule.json ------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON (one pair of schedule.json)."""
        return {"iterations": self.t, "round_length": self.round_length, "n_workers": self.tree.n_workers,
                "participation": self.participation, "timing": self.timing,
                "rounds": [{"start": t, "participants": np.flatnonzero(p).tolist()} for t, p in self.rounds.items()],
                "drops": _drops_json(self.drops)}

    @classmethod
    def from_json(cls, tree: AggregationTree, data: dict[str, Any], where: str) -> "Schedule":
        """A recorded schedule on ``tree`` (to replay); ``where`` names it in errors. An old
        run's record (rounds only) has no shape to check."""
        schedule = cls(tree, float(data.get("participation", 1.0)))
        shape = (data.get("n_workers", tree.n_workers), data.get("round_length", schedule.round_length))
        if shape != (tree.n_workers, schedule.round_length):
            raise ValueError(f"{where}: recorded for {shape[0]} workers and rounds of {shape[1]} iterations, "
                             f"but the tree has {tree.n_workers} and {schedule.round_length}")
        try:
            schedule.rounds = {int(r["start"]): schedule._mask(r["participants"]) for r in data["rounds"]}
            schedule.drops = _drops_from_json(data["drops"])
            schedule.t, schedule.timing = int(data.get("iterations", 0)), data.get("timing")
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{where}: not a recorded schedule ({type(err).__name__}: {err}); expected keys "
                             f"rounds [{{start, participants}}] and drops [{{t, worker, server, late_s}}]") from None
        return schedule

    def _mask(self, workers: list[int]) -> np.ndarray:
        mask = np.zeros(self.tree.n_workers, bool)
        mask[np.asarray(workers, dtype=np.int64)] = True
        return mask


def _drops_json(drops: dict[int, tuple[Drop, ...]]) -> list[dict[str, Any]]:
    return [{"t": t, "worker": d.worker, "server": d.server, "late_s": d.late_s} for t, ds in drops.items() for d in ds]


def _drops_from_json(rows: list[dict[str, Any]]) -> dict[int, tuple[Drop, ...]]:
    out: dict[int, list[Drop]] = {}
    for r in rows:
        out.setdefault(int(r["t"]), []).append(Drop(int(r["worker"]), int(r["server"]), float(r["late_s"])))
    return {t: tuple(ds) for t, ds in out.items()}


def _json_safe(state: dict) -> dict:
    """numpy's generator state holds 128-bit ints; keep them as text for weights_only loads."""
    return {k: _json_safe(v) if isinstance(v, dict) else (str(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in state.items()}


def _from_json_safe(state: dict) -> dict:
    return {k: _from_json_safe(v) if isinstance(v, dict) else (int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v) for k, v in state.items()}
