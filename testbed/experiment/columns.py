"""The data dictionary of a run folder: every column of metrics.csv and events.csv.

One source for three things: the order columns are written in (``order_columns``), the
``COLUMNS.md`` written into each run folder and the table in the README
(``columns_markdown``; a test keeps the README equal to it). A column whose name holds a
placeholder (``comm_<tier>_s``) stands for one column per topology level: the tiers come
from the topology's servers (``tier`` attribute), else ``cloud`` for level 0 and
``level_k`` below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

COLUMNS_FILE = "COLUMNS.md"


@dataclass(frozen=True)
class Column:
    name: str  # as in the CSV header; <tier> / <k> / <g> are placeholders
    unit: str  # "" for labels and counts
    meaning: str
    empty: str  # when the cell is empty (NaN), or "never"

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(<tier>|<k>|<g>)", self.name)
        regex = {"<tier>": "(?P<tier>[a-z][a-z0-9_]*)", "<k>": r"(?P<k>\d+)", "<g>": r"(?P<g>\d+)"}
        return re.compile("^" + "".join(regex.get(p, re.escape(p)) for p in parts) + "$")


METRICS: tuple[Column, ...] = (
    Column("algorithm", "", "the algorithm's label (config.json lists its spec, tree and periods)", "never"),
    Column("spec", "", "the algorithm as written in the config, e.g. local:40, hsgd:40,2@0,2", "never"),
    Column("seed", "", "the run's seed: data split, minibatches, initial model, trace offsets", "never"),
    Column("iteration", "", "local iterations done by every worker at this evaluation", "never"),
    Column("sim_time_s", "s", "simulated wall-clock: when the slowest worker finished this iteration and its aggregations", "never"),
    Column("elapsed_s", "s", "the mean worker clock (= compute_s + comm_s + wait_s)", "never"),
    Column("compute_s", "s", "cumulative local computation, mean over workers", "never"),
    Column("comm_<tier>_s", "s", "cumulative time moving models in rounds whose top server is at that tier "
           "(its own path up and down), mean over workers", "the algorithm does not aggregate at that tier"),
    Column("comm_s", "s", "sum of the comm_<tier>_s columns", "never"),
    Column("wait_s", "s", "cumulative time blocked at barriers waiting for slower peers, mean over workers", "never"),
    Column("worker_loss", "nats", "weighted mean of the workers' own minibatch losses at this step (local models, "
           "local data: not the global model's loss)", "never"),
    Column("global_train_loss", "nats", "the global average model's loss on a fixed seeded sample of the "
           "training data (the same number of samples per worker, global weights)", "testbed.simulate(train_eval_samples=0), or a diverged row"),
    Column("test_loss", "nats", "the global average model's cross-entropy on the test set", "a diverged row"),
    Column("test_acc", "fraction", "the global average model's accuracy on the test set (0..1)", "a diverged row"),
    Column("status", "", "'diverged: ...' on the row where a run stopped on a non-finite loss", "the run went on normally"),
    Column("stop", "", "on a run's last row when a stopping rule ended it: budget (sim_time_s reached budget_s: "
           "the accuracy at the budget) or target (test_acc reached target_acc with stop_at_target)",
           "rows before a run's last, a run that ran all its iterations or diverged (the column is absent "
           "when no run stopped this way)"),
    Column("div_global", "squared grad norm", "global divergence (9) at the global average model", "no probe at this row"),
    Column("div_up_l<k>", "squared grad norm", "upward divergence (7) of topology level k's groups", "no probe at this row"),
    Column("div_down_l<k>", "squared grad norm", "downward divergence (8) of level k, weighted mean over its servers", "no probe at this row"),
    Column("div_down_l<k>_g<g>", "squared grad norm", "downward divergence (8) of the g-th server of level k", "no probe at this row"),
    Column("partition_residual_l<k>", "fraction", "|global - upward - downward| / global divergence at level k "
           "(identity (10): 0 up to rounding)", "no probe at this row"),
    Column("grad_norm2", "squared grad norm", "||grad f||^2 of the global model, full local gradients", "no probe at this row"),
    Column("sigma2", "squared grad norm", "minibatch gradient noise sigma^2 of (6), worst worker", "no probe at this row"),
    Column("sigma2_mean", "squared grad norm", "the same, mean over workers", "no probe at this row"),
    Column("probe_samples", "", "samples per worker the divergence probe used", "no probe at this row"),
)

EVENTS: tuple[Column, ...] = (
    Column("algorithm", "", "the algorithm's label", "never"),
    Column("seed", "", "the run's seed", "never"),
    Column("t", "", "the local iteration after which the round ran", "never"),
    Column("kind", "", "up / down: one model over a node's hop to / from its aggregation parent; barrier: a server "
           "waiting for its children; aggregate: a whole round, first send to last delivery", "never"),
    Column("level", "", "topology level of the round's top server (0 = cloud)", "never"),
    Column("tier", "", "that level's name (comm_<tier>_s holds its time)", "never"),
    Column("node", "", "the sending / receiving node (up, down), the waiting server (barrier) or the round's top "
           "server (aggregate)", "never"),
    Column("peer", "", "the aggregation parent of an up / down transfer", "barrier and aggregate rows"),
    Column("start_s", "s", "simulated start", "an aggregate row where nobody took part"),
    Column("end_s", "s", "simulated end", "never"),
    Column("size_bytes", "bytes", "bytes of this transfer (one model)", "barrier and aggregate rows: each byte is counted once"),
    Column("round_bytes", "bytes", "bytes the whole round moved (the sum of its transfers' size_bytes)", "up, down and barrier rows"),
)


def find(columns: Sequence[Column], name: str) -> Column | None:
    """The dictionary entry a CSV column name falls under, or None."""
    return next((c for c in columns if c.pattern.match(name)), None)


def order_columns(names: Sequence[str], dictionary: Sequence[Column], tiers: Sequence[str] = ()) -> list[str]:
    """``names`` in the dictionary's order: per-tier columns top tier first, numbered ones
    by number; columns the dictionary does not know (a callback's) keep their order, last."""
    rank = {tier: i for i, tier in enumerate(tiers)}

    def key(name: str) -> tuple:
        for i, column in enumerate(dictionary):
            m = column.pattern.match(name)
            if m:
                groups = m.groupdict()
                tier = groups.get("tier")
                return (i, rank.get(tier, len(rank)) if tier else 0, tier or "", int(groups.get("k") or 0), int(groups.get("g") or 0))
        return (len(dictionary),)

    return sorted(names, key=key)  # stable: unknown columns keep their order


def columns_markdown() -> str:
    """COLUMNS.md: a title over :func:`columns_tables`."""
    return "# Columns of metrics.csv and events.csv\n\n" + columns_tables()


def columns_tables() -> str:
    """Both tables (name / unit / meaning / when empty), as in the README."""
    parts = ["Generated from `testbed/experiment/columns.py`. `<tier>` stands for each server level's name in the "
             "topology (its servers' `tier` attribute; `cloud` / `level_k` where none is given), `<k>` for a "
             "topology level (0 = cloud), `<g>` for a server's index within its level.", ""]
    for title, columns in (("metrics.csv: one row per algorithm x seed x evaluation point", METRICS),
                           ("events.csv: one row per transfer, barrier and round", EVENTS)):
        parts += [f"### {title}", "", "| column | unit | meaning | empty when |", "|---|---|---|---|"]
        parts += [f"| `{c.name}` | {c.unit or '—'} | {c.meaning} | {c.empty} |" for c in columns]
        parts.append("")
    return "\n".join(parts)


COMM_COLUMN = next(c for c in METRICS if c.name == "comm_<tier>_s").pattern
"""Matches a per-level communication column; group ``tier`` is the level's name."""

OLD_METRICS = re.compile(r"^(comm_l(?P<own>\d+)_s|train_loss)$")
"""Columns of metrics.csv before tiers: comm_l<k>_s (the algorithm's own level k) and train_loss."""
