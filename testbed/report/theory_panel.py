"""The theory panel: the papers' bounds evaluated with the run's measured quantities.

Shown when the run measured divergences (``divergence_every`` > 0): the divergences per
level over time; each algorithm's bound (Corollary 1 for local SGD, Theorem 1 for two
levels, Theorem 3 for more) with the measured sigma^2 and divergences; the sandwich of
the bounds next to the measured sandwich of the accuracy curves; and Lemmas 1-2's split
for a random grouping next to the measured split.

The smoothness L cannot be measured, so the bounds are evaluated at L*, the largest L for
which every compared algorithm meets its theorem's learning-rate condition at gamma = lr.
Every term that differs between algorithms carries the same factor L^2, so the ordering
of the bounds does not depend on that choice.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from testbed.report.figures import LAYOUT, color_for
from testbed.report.markup import Section, esc, figure_html, fmt_number, html_table, plot_text
from testbed.report.runfolder import RunFolder
from testbed.theory import (
    corollary1_bound,
    expected_random_split,
    multilevel_shape,
    sandwich_divergence,
    sandwich_multilevel_divergence,
    sandwich_multilevel_noise,
    sandwich_noise,
    theorem1_bound,
    theorem3_bound,
    two_level_shape,
)
from testbed.tree import AggregationTree

SANDWICH_TOLERANCE = 0.01  # accuracy slack when checking the measured sandwich point by point


def theory_section(run: RunFolder):
    metrics = run.metrics
    if "div_global" not in metrics.columns or metrics["div_global"].notna().sum() == 0:
        return None
    trees = _trees(run)
    measured = _time_averages(metrics)
    parts = [_INTRO, _gloss(GLOSS["divergences"]), _divergence_figure(metrics, trees), _bounds_table(run, trees, measured),
             _sandwich_table(run, trees), _split_table(trees, measured)]
    return Section("theory", "Theory: bounds and divergences", "".join(p for p in parts if p))


_INTRO = (
    '<p class="note">Divergences are measured at the global average model from each worker\'s full '
    "local gradient (Wang et al. 2022, (7)-(9)), on the topology's full tree. Bounds use the run's "
    "learning rate, the time averages of the measured sigma<sup>2</sup> and divergences, f<sup>0</sup> "
    "- f<sup>*</sup> &le; the global model's first training loss, and L = L*, the largest smoothness for which every "
    "algorithm meets its theorem's condition (L is not measurable; the ordering of the bounds does not "
    "depend on it).</p>"
)


GLOSS = {  # one plain sentence per panel: what it says, before the symbols
    "divergences": "How far apart the workers' gradients pull: the global divergence splits into the part between "
                   "groups (upward, what only a global round fixes) and within groups (downward, what a local round fixes).",
    "bounds": "Each algorithm's guaranteed ceiling on the average squared gradient norm (lower is better) with this "
              "run's measured noise and divergences; a measured value above its bound is flagged: the smoothness "
              "L* used here is then too small for this model, or an assumption of the theorem does not hold.",
    "sandwich": "The theory says H-SGD lands between local SGD with its local period (better) and with its global "
                "period (worse); the last column checks that on the measured accuracy curves.",
    "split": "Whether this grouping puts less of the divergence between groups than a random grouping would: the "
             "smaller the upward share, the more local rounds can do.",
}


def _gloss(text: str) -> str:
    return f'<p class="gloss">{esc(text)}</p>'


def _trees(run: RunFolder) -> dict[str, AggregationTree]:
    out = {}
    for entry in run.raw_config.get("algorithms", []):
        try:
            out[entry["label"]] = AggregationTree(entry["tree"], entry["periods"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _time_averages(metrics: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per algorithm, the mean over seeds and probe points of every measured column."""
    cols = [c for c in metrics.columns if c.startswith(("div_", "sigma2", "grad_norm2"))]
    out = {}
    for label, rows in metrics.groupby("algorithm", sort=False):
        out[label] = {c: float(rows[c].mean()) for c in cols if rows[c].notna().any()}
        # f(w0) - f* <= f(w0): the global model's first training loss (older runs: the workers')
        loss = "global_train_loss" if "global_train_loss" in rows and rows.global_train_loss.notna().any() else "worker_loss"
        out[label]["f_gap"] = float(rows.sort_values("iteration").groupby("seed")[loss].first().mean())
        out[label]["iterations"] = int(rows.iteration.max())
    return out


def _divergence_figure(metrics: pd.DataFrame, trees: dict[str, AggregationTree]) -> str:
    deepest = max(trees, key=lambda k: trees[k].n_levels, default=None)
    label = deepest if deepest in set(metrics.algorithm) else metrics.algorithm.iloc[0]
    rows = metrics[metrics.algorithm == label]
    cols = ["div_global"] + sorted(c for c in rows.columns if c.startswith(("div_up_l", "div_down_l")) and "_g" not in c)
    fig = go.Figure()
    for k, col in enumerate(cols):
        series = rows.groupby("iteration")[col].mean().dropna()
        fig.add_trace(go.Scatter(x=series.index, y=series.values, mode="lines+markers", name=_pretty(col), line=dict(color=color_for(k)),
                                 meta=_pretty(col), hovertemplate="%{meta}<br>iteration %{x}<br>%{y:.3g} (squared gradient norm)<extra></extra>"))
    fig.update_layout(**LAYOUT, title=dict(text=plot_text(f"Measured divergences during {label}"), x=0.01),
                      xaxis_title="iteration", yaxis_title="squared gradient divergence", yaxis_type="log")
    return figure_html(fig, "theory-divergences", height_px=360)


def _pretty(col: str) -> str:
    if col == "div_global":
        return "global (9)"
    kind, level = col.removeprefix("div_").split("_l")
    return f"{'upward (7)' if kind == 'up' else 'downward (8)'} level {level}"


def _bound(tree: AggregationTree, m: dict[str, float], levels: list[int], gamma: float, L: float):
    """The bound that fits the algorithm's tree; ``levels``: the topology levels it keeps."""
    common = dict(gamma=gamma, L=L, sigma2=m.get("sigma2", 0.0), f_gap=m["f_gap"], n_iterations=m["iterations"])
    if tree.n_levels == 1:
        return "Corollary 1 (12)", corollary1_bound(n_workers=tree.n_workers, period=tree.servers[0].period, global_divergence=m["div_global"], **common)
    if tree.n_levels == 2 and f"div_up_l{levels[1]}" in m:
        shape = two_level_shape(tree)
        return "Theorem 1 (11)", theorem1_bound(
            group_sizes=shape.group_sizes, local_periods=shape.local_periods, global_period=shape.global_period,
            upward_divergence=m[f"div_up_l{levels[1]}"], downward_divergences=m[f"div_down_l{levels[1]}"], **common,
        )
    branching, periods = multilevel_shape(tree)
    return "Theorem 3 (22)", theorem3_bound(branching=branching, periods=periods, global_divergence=m["div_global"], **common)


def _levels(run: RunFolder, label: str, trees: dict[str, AggregationTree]) -> list[int]:
    """Topology levels an algorithm keeps: the levels its servers have in the deepest tree."""
    deepest = max(trees, key=lambda k: trees[k].n_levels)
    nodes = run.algorithm(deepest).server_nodes  # in server-id (pre-)order
    level_of = {nodes[s.id]: s.level for s in trees[deepest].servers if s.id < len(nodes)}
    return sorted({level_of.get(node, 0) for node in run.algorithm(label).server_nodes})


def _bounds_table(run: RunFolder, trees: dict[str, AggregationTree], measured: dict[str, dict[str, float]]) -> str:
    gamma = float(run.config.get("lr", float("nan")))
    if not math.isfinite(gamma) or gamma <= 0 or not trees:
        return '<p class="missing">No learning rate in config.json: bounds not evaluated.</p>'
    g_max = max(t.servers[0].period for t in trees.values())
    L = 0.99 / (2 * math.sqrt(6) * g_max * gamma)
    rows = []
    for label, tree in trees.items():
        m = measured.get(label)
        if not m or "div_global" not in m:
            continue
        try:
            theorem, terms = _bound(tree, m, _levels(run, label, trees), gamma, L)
        except ValueError as err:
            rows.append([label, "-", str(err), "", "", "", "", ""])
            continue
        rows.append([label, theorem, fmt_number(terms.sgd_part), fmt_number(terms.upward_part), fmt_number(terms.downward_part),
                     fmt_number(terms.total), fmt_number(m.get("grad_norm2")), fmt_number(m.get("sigma2")),
                     bound_check(m.get("grad_norm2"), terms.total)])
    head = f'<h3>Bounds at gamma = {fmt_number(gamma)}, L* = {fmt_number(L, 4)}</h3>' + _gloss(GLOSS["bounds"])
    return head + html_table(["algorithm", "bound", "SGD part", "upward part", "downward part", "bound total",
                              "measured mean ||grad f||^2", "measured sigma^2", "measured within bound?"], rows,
                             numeric=(2, 3, 4, 5, 6, 7))


def bound_check(measured: float | None, bound: float) -> str:
    """'yes', '⚠ exceeds the bound (2.3x)', or '—' when nothing was measured."""
    if measured is None or not math.isfinite(measured) or not math.isfinite(bound):
        return "—"
    return "yes" if measured <= bound else f"⚠ exceeds the bound ({measured / bound:.2g}x)"


def _sandwich_table(run: RunFolder, trees: dict[str, AggregationTree]) -> str:
    local = {t.servers[0].period: label for label, t in trees.items() if t.n_levels == 1}
    rows = []
    for label, tree in trees.items():
        if tree.n_levels < 2:
            continue
        try:
            branching, periods = multilevel_shape(tree)
        except ValueError:
            continue
        n = tree.n_workers
        if tree.n_levels == 2:
            N, (G, I) = branching[0], periods
            checks = [sandwich_noise(n, N, I, G), sandwich_divergence(n, N, I, G)]
        else:
            G, I = periods[0], periods[-1]
            checks = [sandwich_multilevel_noise(branching, periods), sandwich_multilevel_divergence(branching, periods)]
        bound_text = "; ".join(f"{c.equation}: {'holds' if c.holds else 'fails'}" for c in checks)
        fine, coarse = local.get(I), local.get(G)
        measured = _measured_sandwich(run.metrics, label, fine, coarse) if fine and coarse else None
        rows.append([label, f"local SGD P={I}", f"local SGD P={G}", bound_text,
                     "baselines not in this run" if measured is None else f"{measured:.0%} of evaluation points"])
    if not rows:
        return ""
    return ("<h3>Sandwich: H-SGD between local SGD with its local and its global period</h3>" + _gloss(GLOSS["sandwich"])
            + html_table(["H-SGD", "lower baseline (better)", "upper baseline (worse)", "bounds (16)/(17) or (23)/(24)",
                          "measured: accuracy between the baselines (vs iterations)"], rows))


def _measured_sandwich(metrics: pd.DataFrame, label: str, fine: str, coarse: str) -> float | None:
    """Share of evaluation points where acc(local P=I) >= acc(H-SGD) >= acc(local P=G), up to a tolerance."""
    curves = {k: metrics[metrics.algorithm == k].groupby("iteration").test_acc.mean() for k in (label, fine, coarse)}
    common = curves[label].index.intersection(curves[fine].index).intersection(curves[coarse].index)
    if len(common) == 0 or curves[label].loc[common].isna().all():
        return None
    mid, hi, lo = (curves[k].loc[common].to_numpy() for k in (label, fine, coarse))
    inside = (mid <= hi + SANDWICH_TOLERANCE) & (mid >= lo - SANDWICH_TOLERANCE)
    return float(np.mean(inside))


def _split_table(trees: dict[str, AggregationTree], measured: dict[str, dict[str, float]]) -> str:
    deepest = max(trees, key=lambda k: trees[k].n_levels, default=None)
    if deepest is None or trees[deepest].n_levels < 2 or deepest not in measured:
        return ""
    tree, m = trees[deepest], measured[deepest]
    rows = []
    for level in range(1, tree.n_levels):
        if f"div_up_l{level}" not in m:
            continue
        predicted = expected_random_split(m["div_global"], tree.n_workers, len(tree.level(level)))
        share = m[f"div_up_l{level}"] / m["div_global"] if m["div_global"] > 0 else float("nan")
        rows.append([level, len(tree.level(level)), fmt_number(m[f"div_up_l{level}"]), fmt_number(m[f"div_down_l{level}"]),
                     f"{share:.1%}", fmt_number(predicted.upward), fmt_number(predicted.downward), f"{predicted.upward_share:.1%}"])
    return ("<h3>Upward / downward split: measured grouping vs a uniformly random one (Lemmas 1-3)</h3>"
            + _gloss(GLOSS["split"]) + f'<p class="note">Measured during {esc(deepest)}. A grouping with a smaller upward share than a random '
            "one makes local aggregation more useful (Remark 2).</p>"
            + html_table(["level", "servers", "measured upward (7)", "measured downward (8)", "measured upward share",
                          "random: upward (13)/(20)", "random: downward (14)/(21)", "random: upward share"],
                         rows, numeric=(1, 2, 3, 4, 5, 6, 7)))
