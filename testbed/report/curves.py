"""Curves over seeds: step interpolation onto a common grid, mean and band, first crossings.

Pure numerics (numpy in, numpy out) so the arithmetic the report shows is testable on
hand-made curves.

An evaluation point says "at time t the model had accuracy a"; until the next
evaluation that is all we know, so a seed's curve is a step function that holds its
last value (never a line between points, which would invent accuracy nobody measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Band:
    """One algorithm's curve over seeds on a common grid."""

    x: np.ndarray  # the grid: every seed's evaluation points inside the common span
    mean: np.ndarray
    lo: np.ndarray  # minimum over seeds
    hi: np.ndarray  # maximum over seeds
    std: np.ndarray  # population standard deviation over seeds (0 for one seed)
    n_seeds: int


def step_interpolate(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value at each grid point of the step function through (x, y): the y of the last
    point with x <= grid point (the latest at equal x), NaN before the first point."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    grid = np.asarray(grid, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d of equal length, got shapes {x.shape} and {y.shape}")
    if x.size == 0:
        return np.full(grid.shape, np.nan)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    idx = np.searchsorted(xs, grid, side="right") - 1
    return np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan)


def band(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> Band:
    """Mean, min, max and std over seeds, each seed given as (x, y) evaluation points.

    The grid is the union of all seeds' x values inside the span every seed covers: from
    the latest first point to the earliest last point. Past a seed's last point (a seed
    that diverged and stopped, or finished sooner in simulated time) its value is
    unknown, so the mean there would be over a different set of seeds; the curve stops.
    """
    cleaned = [_finite_x(x, y) for x, y in curves]
    cleaned = [(x, y) for x, y in cleaned if x.size]
    if not cleaned:
        empty = np.array([], dtype=float)
        return Band(empty, empty, empty, empty, empty, 0)
    start = max(float(x.min()) for x, _ in cleaned)
    stop = min(float(x.max()) for x, _ in cleaned)
    all_x = np.unique(np.concatenate([x for x, _ in cleaned]))
    grid = all_x[(all_x >= start) & (all_x <= stop)]
    stacked = np.vstack([step_interpolate(x, y, grid) for x, y in cleaned])
    return Band(
        x=grid,
        mean=stacked.mean(axis=0),
        lo=stacked.min(axis=0),
        hi=stacked.max(axis=0),
        std=stacked.std(axis=0),
        n_seeds=len(cleaned),
    )


def seed_band(per_seed: dict[int, pd.DataFrame], x_column: str, y_column: str = "test_acc") -> Band:
    """``band`` over the seeds of one algorithm, as returned by ``RunFolder.curves``."""
    return band([(g[x_column].to_numpy(dtype=float), g[y_column].to_numpy(dtype=float)) for g in per_seed.values()])


def first_crossing(x: np.ndarray, y: np.ndarray, target: float) -> float | None:
    """The first x (in grid order) where y >= target; None if never. NaN never crosses."""
    with np.errstate(invalid="ignore"):
        hit = np.flatnonzero(np.asarray(y, dtype=float) >= target)
    return float(np.asarray(x, dtype=float)[hit[0]]) if hit.size else None


def _finite_x(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x)
    return x[keep], y[keep]
