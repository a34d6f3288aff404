"""Plotly figures of the report: accuracy curves with bands, time breakdown, trace ECDFs.

Every figure takes already-computed data (bands, breakdown rows, traces) and returns a
``go.Figure``; no file is read here. Text from files goes through ``plot_text`` and reaches
hover templates only through ``meta`` (``%{meta}``): a label written into the template
itself would have any ``%{...}`` in it expanded by plotly.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from testbed.report.curves import Band
from testbed.report.markup import plot_text
from testbed.report.runfolder import Trace
from testbed.report.tables import Breakdown

PALETTE = plotly.colors.qualitative.Plotly + plotly.colors.qualitative.D3
# Breakdown components: compute, one per communication level, waiting.
COMPONENT_COLORS = {"compute": "#4C78A8", "waiting": "#BAB0AC"}
COMM_COLORS = ("#E45756", "#F58518", "#EECA3B", "#72B7B2", "#54A24B", "#B279A2")
ECDF_MAX_POINTS = 2000  # per trace: keeps the page small; an ECDF at this density looks exact
LAYOUT = dict(template="plotly_white", font=dict(family="system-ui, sans-serif", size=13), margin=dict(l=60, r=20, t=40, b=50))


# One hue per algorithm family, shades within it: local SGD blues (dashed), two-level
# H-SGD greens, multi-level H-SGD reds/oranges; the family is the number of aggregation levels.
FAMILY_SHADES = {
    "local SGD": ("#1f4e9c", "#5b8fd6", "#0b2a5b", "#9cbfea", "#3a6fb8"),
    "two-level H-SGD": ("#2a8a3e", "#7bc77e", "#0f5b24", "#a8dca0", "#4fa85a"),
    "multi-level H-SGD": ("#d6401a", "#f28e2b", "#a1200a", "#f7b267", "#e8641f"),
    "other": ("#7f3c8d", "#b07cc6", "#4b1f5a", "#8c8c8c"),
}


def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def family(n_levels: int) -> str:
    """An algorithm's family from its number of aggregation levels (0: unknown)."""
    return {1: "local SGD", 2: "two-level H-SGD"}.get(n_levels, "multi-level H-SGD" if n_levels > 2 else "other")


def family_colors(levels: Mapping[str, int]) -> dict[str, str]:
    """Label -> colour: the next shade of its family's hue, in the given order."""
    used: dict[str, int] = {}
    out = {}
    for label, n in levels.items():
        shades = FAMILY_SHADES[family(n)]
        k = used.get(family(n), 0)
        out[label], used[family(n)] = shades[k % len(shades)], k + 1
    return out


def log_x_buttons() -> list[dict]:
    """Buttons above a figure that switch its x axis between linear and log."""
    return [dict(type="buttons", direction="left", x=0.0, xanchor="left", y=1.02, yanchor="bottom", showactive=True,
                 buttons=[dict(label="linear x", method="relayout", args=[{"xaxis.type": "linear"}]),
                          dict(label="log x", method="relayout", args=[{"xaxis.type": "log"}])])]


def accuracy_figure(
    bands: Mapping[str, Band], *, x_title: str, baselines: Sequence[str] = (), target: float | None = None,
    colors: Mapping[str, str] | None = None, x_unit: str = "", log_x: bool = False, budget_s: float | None = None,
) -> go.Figure:
    """Mean test accuracy per algorithm with a min-max band over seeds (step curves).

    Local SGD baselines are dashed so the H-SGD curves stand out between them. ``x_unit``
    goes into hover labels ("s"; "" for iterations); ``log_x`` starts on a log x axis (a
    button switches either way). ``budget_s``: a vertical line where every run was stopped
    (a time axis only).
    """
    fig = go.Figure()
    for i, (label, b) in enumerate(bands.items()):
        if b.x.size == 0:
            continue
        name, color = plot_text(label), (colors or {}).get(label, color_for(i))
        group = f"algo-{i}"
        if b.n_seeds > 1:  # the band: upper edge, then lower edge filled up to it
            fig.add_trace(go.Scatter(x=b.x, y=b.hi, mode="lines", line=dict(width=0, shape="hv", color=color),
                                     legendgroup=group, showlegend=False, hoverinfo="skip"))  # fmt: skip
            fig.add_trace(go.Scatter(x=b.x, y=b.lo, mode="lines", line=dict(width=0, shape="hv", color=color),
                                     fill="tonexty", fillcolor=_alpha(color, 0.18), legendgroup=group,
                                     showlegend=False, hoverinfo="skip"))  # fmt: skip
        hover = np.column_stack([b.lo, b.hi])
        where = f"t = %{{x:.4g}} {x_unit}" if x_unit else "iteration %{x:.0f}"
        fig.add_trace(
            go.Scatter(
                x=b.x, y=b.mean, mode="lines" if b.x.size > 1 else "markers", name=name, legendgroup=group,
                line=dict(color=color, width=2, shape="hv", dash="dash" if label in baselines else "solid"),
                marker=dict(color=color, size=9), customdata=hover, meta=name,
                hovertemplate=f"%{{meta}}<br>{where}<br>test accuracy %{{y:.1%}} (min %{{customdata[0]:.1%}}, "
                              f"max %{{customdata[1]:.1%}}, {b.n_seeds} seed(s))<extra></extra>",
            )  # fmt: skip
        )
    if target is not None:
        fig.add_hline(y=target, line=dict(color="#555", width=1, dash="dot"),
                      annotation_text=f"target {target:.0%}", annotation_position="bottom right")  # fmt: skip
    if budget_s is not None:
        fig.add_vline(x=budget_s, line=dict(color="#555", width=1, dash="dot"),
                      annotation_text=f"budget {budget_s:g} s", annotation_position="top left")  # fmt: skip
    fig.update_layout(**LAYOUT, height=460, hovermode="closest", legend=dict(orientation="h", y=-0.18),
                      updatemenus=log_x_buttons())  # fmt: skip
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title_text="test accuracy", tickformat=".0%")
    return fig


def breakdown_figure(rows: Sequence[Breakdown]) -> go.Figure:
    """Stacked horizontal bars: compute, communication per level, waiting (mean over seeds)."""
    fig = go.Figure()
    labels = [plot_text(r.label) for r in rows]
    names = [name for name, _ in rows[0].parts] if rows else []
    comm_index = 0
    for j, name in enumerate(names):
        if name in COMPONENT_COLORS:
            color = COMPONENT_COLORS[name]
        else:
            color, comm_index = COMM_COLORS[comm_index % len(COMM_COLORS)], comm_index + 1
        seconds = [r.parts[j][1] for r in rows]
        fig.add_trace(go.Bar(y=labels, x=seconds, name=plot_text(name), orientation="h", marker_color=color,
                             meta=plot_text(name), hovertemplate="%{y}<br>%{meta}: %{x:.4g} s<extra></extra>"))  # fmt: skip
    fig.update_layout(**LAYOUT, barmode="stack", height=max(260, 110 + 48 * len(rows)),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0, traceorder="normal"))  # fmt: skip
    fig.update_xaxes(title_text="simulated seconds (mean over seeds, end of training)")
    fig.update_yaxes(autorange="reversed")  # first algorithm on top, as in the tables
    return fig


def trace_ecdf_figure(traces: Sequence[Trace], *, title: str) -> go.Figure:
    """One ECDF per trace (same unit); p50/p90/p99 in the legend."""
    fig = go.Figure()
    unit = traces[0].unit if traces else ""
    for i, trace in enumerate(traces):
        values = np.sort(trace.values)
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        y = np.arange(1, values.size + 1) / values.size
        step = max(1, values.size // ECDF_MAX_POINTS)
        keep = np.unique(np.r_[np.arange(0, values.size, step), values.size - 1])
        name = f"{plot_text(trace.name)} (p50 {p50:.3g}, p90 {p90:.3g}, p99 {p99:.3g} {plot_text(unit)})"
        fig.add_trace(go.Scatter(x=values[keep], y=y[keep], mode="lines", name=name, showlegend=True, line=dict(shape="hv", color=color_for(i)),
                                 meta=[plot_text(trace.name), plot_text(unit)],
                                 hovertemplate="%{meta[0]}<br>%{x:.4g} %{meta[1]}<br>P(X ≤ x) = %{y:.3f}<extra></extra>"))  # fmt: skip
    fig.update_layout(**LAYOUT, height=380, title=dict(text=plot_text(title), x=0.01), legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(title_text=plot_text(f"{traces[0].column if traces else ''} ({unit})"))
    fig.update_yaxes(title_text="fraction of samples ≤ x", range=[0, 1.02])
    return fig


def _alpha(color: str, alpha: float) -> str:
    r, g, b = plotly.colors.hex_to_rgb(color) if color.startswith("#") else plotly.colors.unlabel_rgb(color)
    return f"rgba({int(r)},{int(g)},{int(b)},{alpha})"
