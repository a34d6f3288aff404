import numpy as np

from testbed.report.curves import band
from testbed.report.figures import accuracy_figure, breakdown_figure, trace_ecdf_figure
from testbed.report.runfolder import Trace
from testbed.report.tables import Breakdown


def test_accuracy_figure_has_band_and_mean_per_algorithm_and_dashes_baselines():
    two = band([(np.array([0.0, 1.0]), np.array([0.1, 0.5])), (np.array([0.0, 1.0]), np.array([0.2, 0.4]))])
    one = band([(np.array([0.0, 2.0]), np.array([0.1, 0.6]))])
    fig = accuracy_figure({"<b>H</b>": two, "local SGD P=2": one}, x_title="s", baselines=["local SGD P=2"], target=0.5)
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == ["&lt;b&gt;H&lt;/b&gt;", "local SGD P=2"]
    assert len(fig.data) == 4  # band edges + mean for two seeds; mean only for one seed
    assert fig.data[1].fill == "tonexty"
    assert fig.data[3].line.dash == "dash" and fig.data[2].line.dash == "solid"
    assert fig.data[2].line.shape == "hv"  # step curve: accuracy is held between evaluations
    assert "%{meta}" in fig.data[2].hovertemplate and "<b>" not in fig.data[2].hovertemplate


def test_breakdown_figure_stacks_components_in_order():
    rows = [Breakdown("a", (("compute", 1.0), ("communication: cloud", 2.0), ("waiting", 0.5)), 3.5)]
    fig = breakdown_figure(rows)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["compute", "communication: cloud", "waiting"]
    assert [t.x[0] for t in fig.data] == [1.0, 2.0, 0.5]


def test_trace_ecdf_shows_percentiles_in_legend_and_is_downsampled():
    values = np.arange(1, 10001, dtype=float)
    fig = trace_ecdf_figure([Trace("wan", "rtt", "rtt_ms", "ms", np.arange(values.size) * 1.0, values)], title="RTT")
    (line,) = fig.data
    assert line.name == "wan (p50 5e+03, p90 9e+03, p99 9.9e+03 ms)"
    assert len(line.x) <= 2001 and line.x[-1] == 10000 and line.y[-1] == 1.0


def test_colours_follow_the_algorithm_family_and_hover_carries_units():
    from testbed.report.figures import FAMILY_SHADES, family_colors

    colors = family_colors({"local SGD P=2": 1, "H-SGD (40,10,2)": 3, "local SGD P=40": 1, "H-SGD (40,2)": 2})
    assert colors["local SGD P=2"] == FAMILY_SHADES["local SGD"][0] != colors["local SGD P=40"] == FAMILY_SHADES["local SGD"][1]
    assert colors["H-SGD (40,2)"] in FAMILY_SHADES["two-level H-SGD"]
    assert colors["H-SGD (40,10,2)"] in FAMILY_SHADES["multi-level H-SGD"]
    b = band([(np.array([0.0, 2.0]), np.array([0.1, 0.6]))])
    fig = accuracy_figure({"local SGD P=2": b}, x_title="s", colors=colors, x_unit="s", log_x=True)
    assert fig.data[0].line.color == colors["local SGD P=2"]
    assert "t = %{x:.4g} s" in fig.data[0].hovertemplate and "test accuracy %{y:.1%}" in fig.data[0].hovertemplate
    assert fig.layout.xaxis.type == "log"
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["linear x", "log x"]
    single = band([(np.array([5.0]), np.array([0.4]))])  # one evaluation: a marker, not an invisible line
    assert accuracy_figure({"a": single}, x_title="iterations").data[0].mode == "markers"
