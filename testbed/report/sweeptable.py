"""A sweep's time-to-target table: one row per point x algorithm, the grid values as
columns, the numbers those of each run's own report (:func:`run_target_table`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from testbed.report.runfolder import load_run
from testbed.report.tables import run_target_table

COLUMNS = ("algorithm", "spec", "target_acc", "time_to_target_s", "iterations_to_target", "n_seeds", "n_seeds_reached",
           "seed_median_s", "seed_min_s", "seed_max_s", "final_acc", "end_time_s", "acc_at_budget", "run_dir")


def target_rows(points: Sequence[tuple[str, Mapping[str, str], Path]], root: Path) -> pd.DataFrame:
    """``points``: (name, grid values, finished run folder). Times are simulated seconds to
    the target on the mean curve over seeds (empty: not reached), then the seeds' own
    crossings; ``acc_at_budget``: with ``budget_s``, the median over seeds of the accuracy
    at the budget (empty without one); ``run_dir`` is relative to ``root`` (the sweep folder)."""
    rows = []
    for name, values, run_dir in points:
        run = load_run(run_dir)
        specs = {a.label: a.spec for a in run.algorithms}
        target = run.target_acc
        for r in run_target_table(run, target) if target is not None else ():
            spread = r.spread or (None, None, None, 0)
            rows.append({"point": name, **values, "algorithm": r.label, "spec": specs.get(r.label, ""),
                         "target_acc": target, "time_to_target_s": r.time_s, "iterations_to_target": r.iteration,
                         "n_seeds": len(r.seed_times_s), "n_seeds_reached": spread[3], "seed_median_s": spread[0],
                         "seed_min_s": spread[1], "seed_max_s": spread[2], "final_acc": r.final_acc,
                         "end_time_s": r.end_time_s, "acc_at_budget": _median([e.acc for e in r.seed_ends]),
                         "run_dir": Path(run.path).relative_to(Path(root).resolve()).as_posix()})
    keys = list(dict.fromkeys(k for _, values, _ in points for k in values))
    return pd.DataFrame(rows, columns=["point", *keys, *(c for c in COLUMNS if c not in keys)])


def _median(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.median(finite)) if finite else None
