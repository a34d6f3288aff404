"""Reading the shape the theorems take (group sizes, fan-outs, periods) off an
AggregationTree."""

from __future__ import annotations

from dataclasses import dataclass

from testbed.tree import AggregationTree


@dataclass(frozen=True)
class TwoLevelShape:
    """What Theorem 1 needs from a two-level tree."""

    group_sizes: tuple[int, ...]  # n_i
    local_periods: tuple[int, ...]  # I_i
    global_period: int  # G


def two_level_shape(tree: AggregationTree) -> TwoLevelShape:
    """n_i, I_i and G of a two-level AggregationTree (cloud over local servers)."""
    if tree.n_levels != 2:
        raise ValueError(f"tree has {tree.n_levels} server level(s); Theorems 1-2 need exactly 2 (cloud, groups)")
    groups = tree.level(1)
    return TwoLevelShape(
        group_sizes=tuple(len(s.workers) for s in groups),
        local_periods=tuple(s.period for s in groups),
        global_period=tree.level(0)[0].period,
    )


def multilevel_shape(tree: AggregationTree) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(N_1..N_M), (P_1..P_M) of a uniform tree, as Theorem 3 and (23)-(24) take them.

    Tree level l-1 (0 = cloud) aggregates its N_l children every P_l iterations; the
    theorem assumes every server of a level has the same fan-out and period.
    """
    branching, periods = [], []
    for l in range(tree.n_levels):
        servers = tree.level(l)
        fan_outs = {len(s.children) if s.children else len(s.workers) for s in servers}
        level_periods = {s.period for s in servers}
        if len(fan_outs) != 1 or len(level_periods) != 1:
            raise ValueError(
                f"tree level {l}: servers have fan-outs {sorted(fan_outs)} and periods "
                f"{sorted(level_periods)}; Theorem 3 needs one of each per level"
            )
        branching.append(fan_outs.pop())
        periods.append(level_periods.pop())
    return tuple(branching), tuple(periods)
