"""Ending a run before its iteration count: a simulated time budget, a target accuracy.

Both are callbacks that ask the training loop to stop after the current iteration
(:meth:`testbed.simulate.HSGDRun.stop`); the loop then evaluates that iteration, so the
last metrics row is the model the run ends with, with the reason in column ``stop``.
Neither keeps state of its own: a resumed run replays the clock to its checkpoint, and
a run is never checkpointed at the iteration it stops on, so it ends where an
uninterrupted run ends.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from testbed.simulate import Callback, HSGDRun

BUDGET, TARGET = "budget", "target"  # values of metrics.csv's ``stop`` column


class TimeBudget(Callback):
    """Stops at the first iteration whose simulated time (compute and the aggregations
    due at it) reaches ``budget_s``: the run ends at most one iteration's time past it.
    Must come after the callback that advances ``clock`` (the runner's network timer)."""

    def __init__(self, clock, budget_s: float):
        if not budget_s > 0 or not math.isfinite(budget_s):
            raise ValueError(f"budget_s: must be a finite number of seconds > 0, got {budget_s!r}")
        self.clock, self.budget_s = clock, budget_s
        self.run: HSGDRun | None = None

    def on_start(self, run: HSGDRun) -> None:
        self.run = run

    def on_step(self, step) -> None:
        if self.clock.now_s >= self.budget_s:
            self.run.stop(BUDGET)


class StopAtTarget(Callback):
    """Stops at the first evaluation whose test accuracy is at or above ``target_acc``."""

    def __init__(self, target_acc: float):
        self.target_acc = target_acc
        self.run: HSGDRun | None = None

    def on_start(self, run: HSGDRun) -> None:
        self.run = run

    def on_eval(self, row: dict[str, Any]) -> None:
        if row.get("test_acc", math.nan) >= self.target_acc:
            self.run.stop(TARGET)


def stopping_callbacks(clock, budget_s: float, stop_at_target: bool, target_acc: float) -> list[Callback]:
    """The config's stopping rules (none when both are off), to follow the network timer."""
    rules: list[Callback] = [TimeBudget(clock, budget_s)] if budget_s else []
    return rules + ([StopAtTarget(target_acc)] if stop_at_target else [])


def check_stop_at_target(stop_at_target: bool, has_test_set: bool, dataset: str) -> None:
    """stop_at_target watches test_acc: refuse it on data without a test set."""
    if stop_at_target and not has_test_set:
        raise ValueError(f"stop_at_target: dataset {dataset!r} has no test set, so test_acc never reaches "
                         f"target_acc; use a dataset with one or set stop_at_target=false")


def short_of_budget(rows: pd.DataFrame, budget_s: float) -> str | None:
    """A hint when a budget run ran out of iterations before the budget (not when it
    stopped at its target or diverged): its curve ends early, unlike the others."""
    if not budget_s or rows.empty or "sim_time_s" not in rows:
        return None
    last = rows.iloc[-1]
    if not last["sim_time_s"] < budget_s or isinstance(last.get("stop"), str) or isinstance(last.get("status"), str):
        return None
    return (f"ended after its {int(last['iteration'])} iterations at {last['sim_time_s']:.4g} s, short of "
            f"budget_s={budget_s:g} s; raise iterations (an upper bound with a budget)")
