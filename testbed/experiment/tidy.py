"""The tidy tables of a run folder as the runner and a re-time write them: metrics in the
data dictionary's column order, events keyed to the topology's levels."""

from __future__ import annotations

import pandas as pd

from pathlib import Path

from testbed.experiment.columns import METRICS, OLD_METRICS, order_columns


def metrics_frame(frames: list[pd.DataFrame], tiers) -> pd.DataFrame:
    """The metrics of every pair, columns in the data dictionary's order (stable between runs)."""
    frame = pd.concat(frames, ignore_index=True)
    return frame[order_columns(list(frame.columns), METRICS, tiers)]


def metric_rows(rows: pd.DataFrame, algorithm, seed: int, has_test: bool) -> pd.DataFrame:
    """One pair's evaluation rows for metrics.csv, keyed by algorithm, spec and seed."""
    for col in ("test_acc", "test_loss") if has_test else ():  # a run that diverged before its first evaluation has none yet
        if col not in rows:
            rows[col] = float("nan")
    rows.insert(0, "algorithm", algorithm.label)
    rows.insert(1, "spec", algorithm.spec)
    rows.insert(2, "seed", seed)
    return rows


def event_rows(clock, topology, label: str, seed: int) -> pd.DataFrame:
    """The clock's event log for events.csv: keyed by algorithm and seed, with ``level``
    the topology's level of the round's top server (the clock counts only its own levels)."""
    events = keyed_to_topology(clock.events_frame(), topology)
    events.insert(0, "algorithm", label)
    events.insert(1, "seed", seed)
    return events


def keyed_to_topology(events: pd.DataFrame, topology) -> pd.DataFrame:
    """A clock's event log with ``level`` the topology's level of each round's top server
    (found by its tier): an algorithm's clock counts only the levels it aggregates at."""
    events["level"] = events["tier"].map({tier: k for k, tier in enumerate(topology.tiers)}).astype("int64")
    return events


def refuse_old_columns(metrics: pd.DataFrame | None, file: Path) -> pd.DataFrame | None:
    """A resumed run's metrics, unless an older version wrote them: its rows and new ones
    would not share columns."""
    old = [c for c in (metrics.columns if metrics is not None else ()) if OLD_METRICS.match(c)]
    if old:
        raise ValueError(f"{file}: written by an older version (columns {', '.join(old)}); it cannot be resumed, "
                         f"start a new run (`testbed report` still reads it)")
    return metrics
