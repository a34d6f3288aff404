"""The clock callback: the network clock driven by the run's :class:`~testbed.schedule.Schedule`.

Each iteration's step goes to the clock twice: :meth:`NetworkTimer.admit` before the
averages (with deadlines the clock leaves out the late workers, and training averages
exactly the step it returns) and :meth:`NetworkTimer.on_step` after them (the clock
prices that step). Evaluation rows get the simulated time and its breakdown.
"""

from __future__ import annotations

from typing import Any

from testbed.schedule import Schedule, Step
from testbed.simulate import Callback

DEADLINE = "deadline_s"
"""The reason a schedule depends on timing when the clock has deadlines."""


class NetworkTimer(Callback):
    """Prices each step on a NetworkClock and stamps evaluation rows with its time.
    A resumed run replays its schedule's record through the clock up to the checkpoint."""

    def __init__(self, clock):
        self.clock = clock
        self.schedule: Schedule | None = None
        self._record: dict[str, Any] | None = None  # a checkpoint's record, until the run starts

    def on_start(self, run) -> None:
        tree = self.clock.tree
        if run.tree.nested != tree.nested or run.tree.periods != tree.periods:
            raise ValueError(f"the run's tree {run.tree!r} is not the clock's {tree!r}: the clock would price other rounds")
        self.schedule = run.schedule
        if self._record is not None:
            self.schedule.load_record_state(self._record)
        if self.clock.has_deadlines:
            self.schedule.timing = DEADLINE
        replay(self.clock, self.schedule, run.t)

    def admit(self, step: Step) -> Step:
        return self.clock.admit(step)

    def on_step(self, step: Step) -> None:
        self.clock.advance(step)

    def on_eval(self, row: dict[str, Any]) -> None:
        stamp(self.clock, row)

    def state_dict(self) -> dict[str, Any]:
        assert self.schedule is not None
        return self.schedule.record_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._record = state


def replay(clock, schedule: Schedule, until_t: int) -> None:
    """Advance ``clock`` through the schedule's recorded steps up to ``until_t`` (resume, re-time)."""
    for step in schedule.replay(until_t, after_t=clock.t):
        clock.advance(step)


def stamp(clock, row: dict[str, Any]) -> None:
    """Add the clock's time and breakdown (the ``*_s`` columns) to an evaluation row."""
    row["sim_time_s"] = clock.now_s
    row.update({k: v for k, v in clock.breakdown().items() if k.endswith("_s") and k != "now_s"})
