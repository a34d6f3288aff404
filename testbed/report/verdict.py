"""The verdict at the top of the report: who wins, by how much, and the cost structure
that explains it.

``verdict(run)`` computes small frozen values (tested on hand-made curves); ``verdict_html``
renders them. The cost structure is what one aggregation round costs at each level of
the topology, priced by the runner on the clock (``round_costs`` in config.json).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.net.costs import CostStructure, LevelCost, payoff_sentence
from testbed.report.markup import esc, fmt_seconds, html_table
from testbed.report.runfolder import RunFolder
from testbed.report.tables import TargetRow, run_target_table


@dataclass(frozen=True)
class Verdict:
    target: float
    best: str | None  # the algorithm whose mean curve reaches the target first; None: none does
    best_time_s: float | None
    best_local: str | None  # the local SGD baseline that reaches the target first
    speedup: float | None  # best_local's time / best's time (mean curves)
    seed_speedups: tuple[float, ...]  # the same per seed (seeds where both reach the target)
    highest: tuple[str, float] | None  # (algorithm, final mean accuracy) when none reached the target
    only_local: bool = False  # every algorithm of the run is local SGD


def verdict(run: RunFolder) -> Verdict | None:
    target = run.target_acc
    if target is None:
        return None
    rows = run_target_table(run, target)
    reached = [r for r in rows if r.time_s is not None]
    local = {a.label for a in run.algorithms if a.is_local_sgd}
    if not reached:
        finals = [(r.label, r.final_acc) for r in rows if r.final_acc is not None]
        top = max(finals, key=lambda x: x[1]) if finals else None
        return Verdict(target, None, None, None, None, (), top, local == {r.label for r in rows})
    best = min(reached, key=lambda r: r.time_s)
    locals_reached = [r for r in reached if r.label in local]
    best_local = min(locals_reached, key=lambda r: r.time_s) if locals_reached else None
    speedup = seeds = None
    if best_local is not None and best.time_s > 0:
        speedup = best_local.time_s / best.time_s
        seeds = _seed_speedups(best, best_local)
    return Verdict(target, best.label, best.time_s, best_local.label if best_local else None, speedup,
                   tuple(seeds or ()), None, local == {r.label for r in rows})


def _seed_speedups(row: TargetRow, baseline: TargetRow) -> list[float]:
    """The baseline's time over the algorithm's, per seed where both reach the target
    (each seed's own crossing, as the target table has it)."""
    theirs = dict(baseline.seed_times_s)
    return [theirs[seed] / mine for seed, mine in sorted(row.seed_times_s)
            if mine is not None and mine > 0 and theirs.get(seed) is not None]


def verdict_sentence(v: Verdict) -> str:
    target = f"{v.target:.0%}"
    if v.best is None:
        if v.highest is None:
            return f"No algorithm reached {target} test accuracy."
        return (f"No algorithm reached {target} test accuracy within the run; the highest final accuracy was "
                f"{v.highest[0]}'s {v.highest[1]:.1%}.")
    text = f"{v.best} reaches {target} test accuracy first, at {fmt_seconds(v.best_time_s)} of simulated time"
    if v.best_local is None:
        return text + "; no local SGD baseline reached it."
    if v.best == v.best_local:
        if v.only_local:
            return text + " (only local SGD was run)."
        return text + ": local SGD is the best algorithm here, no H-SGD beats it on the clock."
    spread = ""
    if len(v.seed_speedups) > 1:
        spread = f" (per seed {min(v.seed_speedups):.2f}x to {max(v.seed_speedups):.2f}x)"
    elif len(v.seed_speedups) == 1:
        spread = f" (one seed with both reaching the target: {v.seed_speedups[0]:.2f}x)"
    return text + f", {v.speedup:.2f}x sooner than the best local SGD, {v.best_local}{spread}." + _robustness(v)


def _robustness(v: Verdict) -> str:
    """A warning when the seeds, each on its own, do not bear out the mean curves' winner.

    Averaging curves that cross the target at different times can put the mean's crossing
    ahead of every seed's own, so a lead of the mean curve alone is not a result.
    """
    if not v.seed_speedups:
        return ""
    behind = sum(s < 1 for s in v.seed_speedups)
    if behind == len(v.seed_speedups):
        return (f" But on every seed on its own {v.best_local} reaches the target sooner: the lead exists only in "
                "the averaged curves, so this run does not show that local aggregation pays off.")
    if behind:
        return (f" The seeds disagree ({behind} of {len(v.seed_speedups)} reach it sooner with {v.best_local}): "
                "run more seeds before drawing a conclusion.")
    return ""


def cost_structure(run: RunFolder) -> CostStructure | None:
    raw = run.raw_config.get("round_costs")
    if not isinstance(raw, dict) or not isinstance(raw.get("levels"), list) or not raw["levels"]:
        return None
    levels = tuple(
        LevelCost(int(lc["level"]), tuple(lc.get("servers", ())), float(lc["cost_s"]), float(lc["ratio"]),
                  str(lc.get("bottleneck", "")), None if lc.get("bottleneck_mbps") is None else float(lc["bottleneck_mbps"]))
        for lc in raw["levels"]
    )
    return CostStructure(float(raw.get("model_bytes", np.nan)), raw.get("window_bytes"), levels,
                         float(raw.get("local_sgd_global_s", np.nan)))


def cost_html(costs: CostStructure, graph=None) -> str:
    """The cost table; levels named by their tier when ``graph`` (the run's topology) says."""
    rows = []
    for lc in costs.levels:
        tier = _tier(graph, lc.servers)
        what = "global (cloud)" if lc.level == 0 else \
            f"level {lc.level}{f' {tier}' if tier else ''} ({len(lc.servers)} server{'s' if len(lc.servers) != 1 else ''})"
        link = f"{lc.bottleneck} ({lc.bottleneck_mbps:g} Mbit/s)" if lc.bottleneck_mbps is not None else lc.bottleneck or "—"
        rows.append([what, _cost(lc.cost_s), f"{lc.ratio:.1%}", link])
    if np.isfinite(costs.local_sgd_global_s):
        ratio = costs.local_sgd_global_s / costs.levels[0].cost_s if costs.levels[0].cost_s > 0 else float("nan")
        rows.append(["local SGD global (servers relay)", _cost(costs.local_sgd_global_s), f"{ratio:.1%}", "—"])
    return html_table(["round", "one round costs", "ratio to a global round", "slowest link a model crosses"], rows,
                      numeric=(1, 2))


def _tier(graph, servers) -> str | None:
    if graph is None or not servers or servers[0] not in graph:
        return None
    return graph.nodes[servers[0]].get("tier")


def _cost(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else fmt_seconds(seconds)


def verdict_html(run: RunFolder) -> str:
    v = verdict(run)
    body = f"<p><strong>{esc(verdict_sentence(v))}</strong></p>" if v is not None else \
        '<p class="missing">config.json has no numeric target_acc: no time-to-target verdict.</p>'
    costs = cost_structure(run)
    if costs is None:
        return body + ('<p class="missing">config.json has no round_costs (a run made before they were recorded): '
                       "re-time the run to price one round per level.</p>")
    size = f"{costs.model_bytes / 1e6:.3g} MB" if np.isfinite(costs.model_bytes) else "the run's model"
    body += f"<p>{esc(payoff_sentence(costs))}</p>"
    note = (f'<p class="note">Cost structure: one round at each aggregation level of the topology, {esc(size)} per '
            "transfer, no compute, priced on the run's network; per local iteration H-SGD (G, I) pays "
            "c_g/G + c_l (1/I - 1/G) and local SGD P pays c_g/P.</p>")
    return body + note + cost_html(costs, run.topology)
