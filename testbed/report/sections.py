"""The report's sections. Each is a builder: ``RunFolder -> Section | None``.

To add a section (the theory panel, say), write a builder and put it in
``DEFAULT_SECTIONS`` (or pass ``extra_sections`` to ``build_report``). A builder returns
None to leave its section out (e.g. no divergence columns in this run); when data it
needs is missing it should rather return a section that says so. Bodies are HTML
fragments: escape every value from the run folder with ``markup.esc``.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any, Callable

import numpy as np

from testbed.experiment.config import saved_tcp_model
from testbed.report.caveats import caveats
from testbed.report.curves import seed_band
from testbed.report.figures import accuracy_figure, breakdown_figure, family_colors, trace_ecdf_figure
from testbed.report.markup import Section, esc, figure_html, fmt_number, fmt_seconds, html_table
from testbed.report.runfolder import EVENTS_FILE, TOPOLOGY_FILE, TRACES_DIR, RunFolder
from testbed.report.tables import (
    aggregation_html,
    aggregation_summary,
    breakdown,
    breakdown_html,
    run_target_table,
    target_html,
)
from testbed.report.theory_panel import theory_section
from testbed.report.verdict import verdict_html
from testbed.report.topology_view import fixed_links, topology_figure, tree_layout


SectionBuilder = Callable[[RunFolder], "Section | None"]


def message(text: str) -> str:
    """A 'this part is missing, and why' paragraph."""
    return f'<p class="missing">{esc(text)}</p>'


def _baselines(run: RunFolder) -> list[str]:
    return [a.label for a in run.algorithms if a.is_local_sgd]


def _band_note(run: RunFolder) -> str:
    n = len(run.seeds)
    spread = "the band spans the minimum to the maximum over seeds; " if n > 1 else ""
    return (
        f'<p class="note">Mean over {n} seed(s); {spread}each seed holds its accuracy between evaluations '
        "(step curves), and a curve stops where its first seed stops. Colours follow the family (local SGD blue "
        "and dashed, two-level H-SGD green, multi-level H-SGD red/orange); the buttons switch the x axis to log. Every point "
        "evaluates the global average model: between global rounds no server holds it, it is the <em>virtual</em> "
        "average of all workers' models (with the global weights).</p>"
    )


# ------------------------------------------------------------------ builders


def caveats_html(run: RunFolder) -> str:
    found = caveats(run)
    return f'<ul class="notes caveats">{"".join(f"<li>{esc(c)}</li>" for c in found)}</ul>' if found else ""


def verdict_section(run: RunFolder) -> Section:
    return Section("verdict", "Verdict", caveats_html(run) + verdict_html(run))


def algorithm_colors(run: RunFolder) -> dict[str, str]:
    """One hue per family (local SGD, two-level, multi-level H-SGD), in the run's order."""
    return family_colors({a.label: len(a.periods) for a in run.algorithms})


def accuracy_time_section(run: RunFolder) -> Section:
    bands = {a.label: seed_band(run.curves(a.label), "sim_time_s") for a in run.algorithms}
    fig = accuracy_figure(bands, x_title="simulated wall-clock (s)", baselines=_baselines(run), target=run.target_acc,
                          colors=algorithm_colors(run), x_unit="s", budget_s=run.budget_s)
    return Section("accuracy-time", "Test accuracy vs simulated wall-clock", _band_note(run) + figure_html(fig, "accuracy-time"))


def accuracy_iteration_section(run: RunFolder) -> Section:
    bands = {a.label: seed_band(run.curves(a.label), "iteration") for a in run.algorithms}
    fig = accuracy_figure(bands, x_title="local iterations", baselines=_baselines(run), target=run.target_acc,
                          colors=algorithm_colors(run))
    return Section("accuracy-iterations", "Test accuracy vs iterations", _band_note(run) + figure_html(fig, "accuracy-iterations"))


def target_section(run: RunFolder) -> Section:
    title = "Time to target accuracy"
    target = run.target_acc
    if target is None:
        return Section("time-to-target", title, message("config.json has no numeric target_acc, so there is no target to time."))
    baselines = _baselines(run)
    note = (
        f'<p class="note">First simulated time (and first iteration) at which the mean curve over seeds reaches '
        f"{esc(f'{target:g}')} test accuracy; next to it, each seed's own first crossing, with their median and range. "
        "A speed-up is the baseline's time divided by the algorithm's (mean curves); "
        "when a baseline never reaches the target its last time gives a lower bound (&gt;).</p>"
    )
    if run.budget_s:
        note += (f'<p class="note">Every algorithm ran until {esc(fmt_seconds(run.budget_s))} of simulated time '
                 "(budget_s), stopping at the first iteration that reached it: accuracy at the budget is each seed's "
                 "last evaluation there, or where it stopped sooner (at its target, or out of iterations: "
                 "&ldquo;ended at&rdquo;).</p>")
    if not baselines:
        note += message("No local SGD baseline among the algorithms (none has is_local_sgd), so no speed-ups.")
    return Section("time-to-target", title,
                   note + target_html(run_target_table(run, target), target, baselines, run.budget_s))


def breakdown_section(run: RunFolder) -> Section:
    title = "Time breakdown at the end of training"
    rows = breakdown(run.metrics, [a.label for a in run.algorithms])
    if not rows or not rows[0].parts:
        return Section("breakdown", title, message("metrics.csv has no compute_s, comm_l<k>_s or wait_s column to break time down."))
    body = (
        '<p class="note">Cumulative simulated seconds at each run\'s last evaluation, mean over seeds; communication '
        "per tier of the topology (rounds whose top server is at that tier), — where an algorithm does not aggregate there.</p>" + figure_html(breakdown_figure(rows), "breakdown") + breakdown_html(rows)
    )
    if run.events is None:
        body += message(f"{EVENTS_FILE} not found: no per-level aggregation counts.")
    elif run.events.empty:
        body += message(f"{EVENTS_FILE} holds no events (the run was made with events=none).")
    else:
        try:
            summary = aggregation_summary(run.events)
        except ValueError as err:
            body += message(str(err))
        else:
            table = aggregation_html(summary, [a.label for a in run.algorithms])
            body += f"<details><summary>Network events per level ({len(summary)} rows from {EVENTS_FILE})</summary>{table}</details>"
    return Section("breakdown", title, body)


def topology_section(run: RunFolder) -> Section:
    title = f"Topology: {run.topology_name}"
    if run.topology is None:
        return Section("topology", title, message(f"{TOPOLOGY_FILE} not found or unreadable in {run.path}: the topology is not drawn."))
    try:
        layout = tree_layout(run.topology)
    except ValueError as err:
        return Section("topology", title, message(str(err)))
    roles = [r for _, r in run.topology.nodes(data="role")]
    counts = ", ".join(f"{roles.count(r)} {r}{'s' if roles.count(r) > 1 else ''}" for r in dict.fromkeys(roles))
    body = _network_model_html(run)
    collapsed = " Each \"×k\" node stands for a server's k workers." if layout.groups else ""
    body += (f'<p class="note">{esc(counts)}. Rows are labelled with their tier and link figures (one-way latency or '
             f"RTT trace, bandwidth) are written on the links, once per row when they are all alike.{esc(collapsed)} "
             "Hover a node for its period or compute time, the middle of a link for all its figures.</p>")
    if layout.unreached:
        body += message(f"not connected to {layout.root}: {', '.join(layout.unreached)}")
    return Section("topology", title, body + figure_html(topology_figure(run.topology, layout), "topology"))


def _network_model_html(run: RunFolder) -> str:
    """How transfers were timed: the TCP model and its settings."""
    try:
        tcp = saved_tcp_model(dict(run.config))
    except (ValueError, TypeError) as err:
        return message(f"config.json: the TCP model's keys are not valid ({err}); the network model is not stated.")
    window = run.config.get("window_kib", 4096)
    cap = f"socket window W = {fmt_number(window)} KiB (each flow at most W / RTT)" if window else "no socket window cap"
    where = "" if tcp.fluid else "; checked against packet-level TCP (ns-3) in bench/netval"
    return f'<p class="note"><b>Network model</b>: {esc(tcp.describe())}; {esc(cap)}{esc(where)}.</p>'


def traces_section(run: RunFolder) -> Section:
    title = "Network traces"
    used = _traces_named_in_topology(run)
    missing = sorted(used - set(run.traces))
    body = message(f"named in the topology but not in {TRACES_DIR}/: {', '.join(missing)}") if missing else ""
    fixed = fixed_links(run.topology) if run.topology is not None else []
    if fixed:
        body += ("<h3>Fixed-latency links</h3>"
                 '<p class="note">Links that charge a constant one-way latency (no RTT trace); alike links counted once.</p>'
                 + html_table(["upper end", "lower end", "links", "one-way latency", "bandwidth"], fixed, numeric=(2,)))
    if not run.traces:
        if not fixed:
            body += message(f"no trace files in {run.path / TRACES_DIR} and no fixed-latency links in the topology")
        return Section("traces", "Network links" if fixed else title, body)
    for kind, heading in (("rtt", "Round-trip time"), ("bandwidth", "Bandwidth"), ("other", "Other traces")):
        traces = [t for t in run.traces.values() if t.kind == kind]
        if traces:
            body += figure_html(trace_ecdf_figure(traces, title=f"{heading}: empirical CDF"), f"traces-{kind}")
    rows = []
    for t in run.traces.values():
        p = [fmt_number(float(v)) for v in _percentiles(t.values)]
        rows.append([t.name, t.column, f"{t.values.size:,}", *p, fmt_number(float(t.values.min())), fmt_number(float(t.values.max()))])
    return Section("traces", title, body + html_table(["trace", "column", "samples", "p50", "p90", "p99", "min", "max"], rows, numeric=range(2, 8)))


def config_section(run: RunFolder) -> Section:
    rows = [[key, _value_text(value)] for key, value in run.config.items()]
    body = "<h3>Experiment keys</h3>" + html_table(["key", "value"], rows, cls="data config")
    algos = [[a.label, a.spec, _value_text([list(p) for p in a.periods]), fmt_number(a.global_period),
              "yes" if a.is_local_sgd else "no", len(a.server_nodes)] for a in run.algorithms]  # fmt: skip
    body += "<h3>Algorithms</h3>" + html_table(["label", "spec", "periods (top first)", "global period", "local SGD", "servers"], algos)
    if run.versions:
        body += "<h3>Versions</h3>" + html_table(["package", "version"], sorted(run.versions.items()), cls="data config")
    raw = json.dumps(run.raw_config, indent=2, sort_keys=False, default=str)
    body += f"<details><summary>config.json as written</summary><pre>{esc(raw)}</pre></details>"
    return Section("config", "Resolved configuration", body)


DEFAULT_SECTIONS: tuple[SectionBuilder, ...] = (
    verdict_section,
    accuracy_time_section,
    accuracy_iteration_section,
    target_section,
    breakdown_section,
    topology_section,
    traces_section,
    theory_section,
    config_section,
)


def _traces_named_in_topology(run: RunFolder) -> set[str]:
    if run.topology is None:
        return set()
    names = set()
    for _, _, data in run.topology.edges(data=True):
        # An edge may name a trace "wan" or "traces/wan.csv"; the run folder stores traces/wan.csv.
        names |= {PurePath(str(data[k])).stem for k in ("rtt_trace", "bandwidth_trace") if k in data}
    return names


def _percentiles(values: np.ndarray) -> list[float]:
    return list(np.percentile(values, [50, 90, 99]))


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
