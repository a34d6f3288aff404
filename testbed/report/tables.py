"""The report's numbers: time to target accuracy with speed-ups, time breakdown, aggregations.

Computation and rendering are split: ``target_table`` / ``breakdown`` / ``aggregation_summary``
return small frozen rows (tested on hand-made curves); ``*_html`` turn them into tables.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from testbed.report.curves import Band, first_crossing, seed_band
from testbed.report.markup import fmt_number, fmt_seconds, html_table
from testbed.experiment.columns import COMM_COLUMN
from testbed.report.runfolder import RunFolder


@dataclass(frozen=True)
class Speedup:
    """How many times sooner an algorithm reaches the target than one local SGD baseline."""

    baseline: str
    ratio: float | None  # baseline's time / this algorithm's time; None if this one never reached it
    lower_bound: bool = False  # the baseline never reached the target: ratio uses its last time
    is_self: bool = False


@dataclass(frozen=True)
class SeedEnd:
    """Where one seed's run ended: its last row's accuracy and simulated time. Under a time
    budget that row is the accuracy at the budget (a run that stopped sooner, at its
    target or its last iteration, keeps its model until then)."""

    seed: int
    acc: float | None  # None: the run diverged
    time_s: float


@dataclass(frozen=True)
class TargetRow:
    label: str
    time_s: float | None  # first simulated time the mean curve reaches the target
    iteration: float | None  # first iteration the mean curve (over iterations) reaches it
    final_acc: float | None  # the mean curve's last value
    end_time_s: float | None  # the mean curve's last simulated time
    speedups: tuple[Speedup, ...]
    seed_times_s: tuple[tuple[int, float | None], ...] = ()  # (seed, its own first crossing or None)
    seed_ends: tuple[SeedEnd, ...] = ()  # with a time budget: each seed's accuracy at it

    @property
    def spread(self) -> tuple[float, float, float, int] | None:
        """(median, min, max, seeds reaching) over the seeds' own crossings; None: no seed reached."""
        times = [t for _, t in self.seed_times_s if t is not None]
        if not times:
            return None
        return float(np.median(times)), min(times), max(times), len(times)


@dataclass(frozen=True)
class Breakdown:
    """Where one algorithm's simulated time went, mean over seeds at its last evaluation."""

    label: str
    parts: tuple[tuple[str, float], ...]  # (component, seconds) in stacking order
    sim_time_s: float


# ------------------------------------------------------------------ time to target


def target_table(
    by_time: Mapping[str, Band], by_iteration: Mapping[str, Band], baselines: Sequence[str], target: float
) -> tuple[TargetRow, ...]:
    """One row per algorithm (in ``by_time`` order) with a speed-up against each baseline."""
    reached = {label: first_crossing(b.x, b.mean, target) for label, b in by_time.items()}
    rows = []
    for label, b in by_time.items():
        it_band = by_iteration.get(label)
        rows.append(
            TargetRow(
                label=label,
                time_s=reached[label],
                iteration=first_crossing(it_band.x, it_band.mean, target) if it_band is not None else None,
                final_acc=_last(b.mean),
                end_time_s=_last(b.x),
                speedups=tuple(_speedup(label, reached[label], base, reached.get(base), by_time.get(base)) for base in baselines),
            )
        )
    return tuple(rows)


def _speedup(label: str, time_s: float | None, baseline: str, base_time_s: float | None, base_band: Band | None) -> Speedup:
    if label == baseline:
        return Speedup(baseline, 1.0, is_self=True)
    if time_s is None:
        return Speedup(baseline, None)
    if base_time_s is not None:
        return Speedup(baseline, _ratio(base_time_s, time_s))
    # The baseline never got there: its whole run is a lower bound on its time to target.
    end = _last(base_band.x) if base_band is not None else None
    return Speedup(baseline, _ratio(end, time_s) if end is not None else None, lower_bound=True)


def _ratio(numerator: float, denominator: float) -> float:
    # Reaching the target at t=0 (already above it at the first evaluation) makes every
    # ratio infinite, which is what it is.
    return numerator / denominator if denominator > 0 else float("inf")


def speedup_text(s: Speedup) -> str:
    """A cell under 'speed-up vs <baseline>': '1.80x', '> 2.10x (never reached)', 'baseline'."""
    if s.is_self:
        return "baseline"
    if s.ratio is None:
        return "—"  # this algorithm never reached the target
    ratio = "∞" if np.isinf(s.ratio) else f"{s.ratio:.2f}"
    return f"> {ratio}x (never reached)" if s.lower_bound else f"{ratio}x"


def seed_crossings(per_seed: Mapping[int, pd.DataFrame], target: float) -> tuple[tuple[int, float | None], ...]:
    """Each seed's own first simulated time at or above the target (None: never)."""
    return tuple((seed, first_crossing(g["sim_time_s"].to_numpy(), g["test_acc"].to_numpy(), target))
                 for seed, g in sorted(per_seed.items()))


def seed_ends(per_seed: Mapping[int, pd.DataFrame]) -> tuple[SeedEnd, ...]:
    """Each seed's last row: its accuracy (None when not finite) and simulated time."""
    ends = []
    for seed, g in sorted(per_seed.items()):
        acc = float(g["test_acc"].iloc[-1])
        ends.append(SeedEnd(seed, acc if np.isfinite(acc) else None, float(g["sim_time_s"].iloc[-1])))
    return tuple(ends)


def run_target_table(run: RunFolder, target: float) -> tuple[TargetRow, ...]:
    by_time = {a.label: seed_band(run.curves(a.label), "sim_time_s") for a in run.algorithms}
    by_iter = {a.label: seed_band(run.curves(a.label), "iteration") for a in run.algorithms}
    baselines = [a.label for a in run.algorithms if a.is_local_sgd]
    rows = target_table(by_time, by_iter, baselines, target)
    return tuple(dataclasses.replace(r, seed_times_s=seed_crossings(run.curves(r.label), target),
                                     seed_ends=seed_ends(run.curves(r.label)) if run.budget_s else ())
                 for r in rows)


def spread_text(row: TargetRow) -> str:
    """E.g. '310 s (280 s–350 s)', '310 s (280 s–350 s), 2 of 3 seeds'."""
    spread = row.spread
    if spread is None:
        return "not reached"
    median, lo, hi, reached = spread
    text = f"{fmt_seconds(median)} ({fmt_seconds(lo)}–{fmt_seconds(hi)})" if reached > 1 else fmt_seconds(median)
    return text + (f", {reached} of {len(row.seed_times_s)} seeds" if reached < len(row.seed_times_s) else "")


def seeds_text(row: TargetRow) -> str:
    """E.g. '0: 12 s; 1: not reached'; '—' when no seed reached the target."""
    if row.spread is None:
        return "—"
    return "; ".join(f"{seed}: {fmt_seconds(t) if t is not None else 'not reached'}" for seed, t in row.seed_times_s)


def budget_text(ends: Sequence[SeedEnd], budget_s: float) -> str:
    """Accuracy at the budget over seeds, e.g. '0.854 (0.849–0.861)', '0.85, 1 of 2 seeds
    ended at 12 s', '0.85, 1 of 2 seeds diverged'; '—' without seeds."""
    accs = [e.acc for e in ends if e.acc is not None]
    if not accs:
        return "diverged" if ends else "—"
    median = float(np.median(accs))
    text = f"{median:.3f} ({min(accs):.3f}–{max(accs):.3f})" if len(accs) > 1 else f"{median:.3f}"
    short = [e for e in ends if e.acc is not None and e.time_s < budget_s]
    if short:
        text += f", {len(short)} of {len(ends)} seeds ended at {fmt_seconds(min(e.time_s for e in short))}"
    if len(accs) < len(ends):
        text += f", {len(ends) - len(accs)} of {len(ends)} seeds diverged"
    return text


def target_html(rows: Sequence[TargetRow], target: float, baselines: Sequence[str], budget_s: float | None = None) -> str:
    """The time-to-target table; with ``budget_s``, a column of accuracy at the budget."""
    headers = ["algorithm", f"time to {target:.0%} (mean curve)", "per seed: median (min–max)", "each seed's crossing",
               "iterations to target", "final acc", "end time"]
    if budget_s:
        headers.append(f"acc at budget {fmt_seconds(budget_s)}: median (min–max)")
    headers += [f"speed-up vs {b}" for b in baselines]
    body = [
        [
            r.label,
            fmt_seconds(r.time_s) if r.time_s is not None else "not reached",
            spread_text(r),
            seeds_text(r),
            fmt_number(r.iteration) if r.iteration is not None else "not reached",
            f"{r.final_acc:.3f}" if r.final_acc is not None else "—",
            fmt_seconds(r.end_time_s),
            *([budget_text(r.seed_ends, budget_s)] if budget_s else []),
            *(speedup_text(s) for s in r.speedups),
        ]
        for r in rows
    ]
    return html_table(headers, body, numeric=(1, 2, *range(4, len(headers))), cls="data target")


# ------------------------------------------------------------------ time breakdown


def component_columns(columns: Sequence[str]) -> list[tuple[str, str]]:
    """(column, display name) of the breakdown components present, in stacking order
    (the tiers in metrics.csv's order: top first)."""
    parts = [("compute_s", "compute")] if "compute_s" in columns else []
    parts += [(c, f"communication: {m.group('tier').replace('_', ' ')}") for c in columns if (m := COMM_COLUMN.match(c))]
    parts += [("wait_s", "waiting")] if "wait_s" in columns else []
    return parts


def breakdown(metrics: pd.DataFrame, labels: Sequence[str]) -> tuple[Breakdown, ...]:
    """Components are cumulative seconds, so each seed's last evaluation row holds its totals."""
    parts = component_columns(list(metrics.columns))
    rows = []
    for label in labels:
        runs = metrics[metrics["algorithm"] == label]
        if runs.empty:
            continue
        last = runs.sort_values("iteration", kind="stable").groupby("seed").tail(1)
        rows.append(
            Breakdown(
                label=label,
                parts=tuple((name, float(last[col].mean())) for col, name in parts),
                sim_time_s=float(last["sim_time_s"].mean()),
            )
        )
    return tuple(rows)


def breakdown_html(rows: Sequence[Breakdown]) -> str:
    if not rows:
        return ""
    names = [name for name, _ in rows[0].parts]
    body = []
    for r in rows:
        total = r.sim_time_s if r.sim_time_s > 0 else float("nan")
        cells = [
            "—" if not np.isfinite(sec) else f"{sec:.3g} ({sec / total:.0%})" if np.isfinite(total) else f"{sec:.3g}"
            for _, sec in r.parts  # NaN: a level this algorithm does not aggregate at
        ]
        body.append([r.label, *cells, fmt_seconds(r.sim_time_s)])
    return html_table(["algorithm", *[f"{n} (s)" for n in names], "simulated time"], body, numeric=range(1, len(names) + 2))


# ------------------------------------------------------------------ aggregation events

EVENT_COLUMNS = ("algorithm", "seed", "kind", "level", "start_s", "end_s")
BYTES_COLUMNS = ("size_bytes", "bytes")


def aggregation_summary(events: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm, level and kind: events per seed, mean duration, bytes per seed."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events.csv: missing column(s) {', '.join(missing)}; expected {', '.join(EVENT_COLUMNS)}, size_bytes")
    frame = events.assign(duration_s=events["end_s"] - events["start_s"])
    # Transfers carry size_bytes, rounds round_bytes (hand-made logs may say bytes).
    size = next((c for c in BYTES_COLUMNS if c in frame.columns), None)
    moved = frame[size] if size else pd.Series(np.nan, index=frame.index)
    if "round_bytes" in frame.columns:
        moved = moved.fillna(frame["round_bytes"])
    frame = frame.assign(bytes=moved)
    if "tier" in frame.columns:  # shown as "2 (edge)"
        frame = frame.assign(level=[f"{lv} ({tier})" for lv, tier in zip(frame["level"], frame["tier"])])
    n_seeds = frame.groupby("algorithm")["seed"].nunique()
    grouped = frame.groupby(["algorithm", "level", "kind"], sort=False)
    out = grouped.agg(count=("duration_s", "size"), mean_duration_s=("duration_s", "mean"),
                      total_bytes=("bytes", lambda b: b.sum(min_count=1))).reset_index()
    per_seed = out["algorithm"].map(n_seeds)
    return out.assign(per_seed=out["count"] / per_seed, bytes_per_seed=out["total_bytes"] / per_seed)


def aggregation_html(summary: pd.DataFrame, order: Sequence[str]) -> str:
    rank = {label: i for i, label in enumerate(order)}
    summary = summary.sort_values(["algorithm", "level", "kind"], key=lambda s: s.map(rank) if s.name == "algorithm" else s)
    body = [
        [r.algorithm, r.level, r.kind, fmt_number(r.per_seed), f"{r.mean_duration_s:.3g}", _fmt_bytes(r.bytes_per_seed)]
        for r in summary.itertuples()
    ]
    return html_table(["algorithm", "level", "kind", "events per seed", "mean duration (s)", "bytes per seed"], body, numeric=(3, 4, 5))


def _fmt_bytes(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} GB"


def _last(values: np.ndarray) -> float | None:
    return float(values[-1]) if len(values) else None
