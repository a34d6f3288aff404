"""Run folders written before the columns were named for what they hold: read them as today's.

Before tiers, ``comm_l<k>_s`` and events.csv's ``level`` counted each algorithm's *own*
levels, so for H-SGD (40,2) @ levels 0,2 the edge traffic sat in ``comm_l1_s``, the column
that holds the regional servers in full H-SGD's rows. Each algorithm's spec says which
topology levels it kept, which maps its columns onto the topology's (``comm_cloud_s``,
``comm_level_2_s``: old topologies name no tiers). ``train_loss`` was the workers' own
minibatch loss: it becomes ``worker_loss``. Barrier and aggregate rows carried bytes
already counted by the transfers: they move to ``round_bytes`` (aggregate) or go (barrier).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from testbed.experiment.algorithms import spec_levels
from testbed.experiment.columns import OLD_METRICS
from testbed.net.rules import default_tier


def algorithm_levels(specs: Mapping[str, tuple[str, int]]) -> dict[str, tuple[int, ...]]:
    """Label -> the topology levels of its own levels 0, 1, ..., from (spec, number of levels)."""
    out = {}
    for label, (spec, n_levels) in specs.items():
        try:
            out[label] = spec_levels(spec, n_levels) if spec else ()
        except ValueError:
            out[label] = ()
    return out


def upgrade_metrics(metrics: pd.DataFrame, levels: Mapping[str, tuple[int, ...]], notes: list[str]) -> pd.DataFrame:
    """Today's columns for an old metrics.csv (unchanged when it is not old)."""
    if "train_loss" in metrics.columns and "worker_loss" not in metrics.columns:
        metrics = metrics.rename(columns={"train_loss": "worker_loss"})
        notes.append("metrics.csv predates global_train_loss: its train_loss (the workers' own minibatch loss) is shown as worker_loss")
    old = {int(m.group("own")): c for c in metrics.columns if (m := OLD_METRICS.match(c)) and m.group("own")}
    if not old:
        return metrics
    out = metrics.drop(columns=list(old.values()))
    new: dict[str, np.ndarray] = {}
    unmapped = []
    for label, rows in metrics.groupby("algorithm", sort=False):
        kept = levels.get(label, ())
        if len(kept) < len([k for k, c in old.items() if rows[c].notna().any()]):
            unmapped.append(label)  # no spec to say which topology levels its columns are
            continue
        for own, column in old.items():
            if own < len(kept):
                name = f"comm_{default_tier(kept[own])}_s"
                new.setdefault(name, np.full(len(metrics), np.nan))[rows.index.to_numpy()] = rows[column].to_numpy()
    for name in sorted(new, key=lambda c: (c != "comm_cloud_s", c)):
        out[name] = new[name]
    notes.append("metrics.csv predates tier-named columns: comm_l<k>_s (each algorithm's own level k) mapped to the "
                 "topology's levels by each algorithm's spec")
    if unmapped:
        notes.append(f"no spec in config.json for {', '.join(unmapped)}: its communication per level is not shown")
    return out


def upgrade_events(events: pd.DataFrame, levels: Mapping[str, tuple[int, ...]], notes: list[str]) -> pd.DataFrame:
    """Today's events.csv columns for an old log (unchanged when it has a tier column)."""
    if "tier" in events.columns or not {"algorithm", "level", "kind"} <= set(events.columns):
        return events
    events = events.copy()
    own = events["level"].to_numpy()
    topo_level = np.full(len(events), -1, dtype=np.int64)
    for label, kept in levels.items():
        rows = (events["algorithm"] == label).to_numpy() & (own < len(kept))
        topo_level[rows] = np.asarray(kept, dtype=np.int64)[own[rows]] if kept else -1
    events = events[topo_level >= 0].assign(level=topo_level[topo_level >= 0])
    events.insert(events.columns.get_loc("level") + 1, "tier", [default_tier(int(k)) for k in events["level"]])
    if "size_bytes" in events.columns:
        size = events["size_bytes"].astype(float)
        events["round_bytes"] = size.where(events["kind"] == "aggregate")
        events["size_bytes"] = size.where(events["kind"].isin(["up", "down"]))
    notes.append("events.csv predates tier-named levels: each algorithm's own level mapped to the topology's; "
                 "bytes counted once (round_bytes on aggregate rows)")
    return events
