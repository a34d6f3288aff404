"""The report's deadline section: who was left out of which round, where, and how late.

Read from schedule.json (the recorded :class:`~testbed.schedule.Schedule` of every pair);
left out of the page when the run had no deadlines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from testbed.experiment.rundir import read_schedules
from testbed.report.markup import esc, html_table
from testbed.report.runfolder import RunFolder
from testbed.report.sections import Section, message

SCHEDULE_FILE = "schedule.json"
MAX_ROUND_ROWS = 500  # per-round rows shown; the file holds them all


def drops_section(run: RunFolder) -> Section | None:
    deadlines = run.config.get("deadline_s") or []
    if not any(deadlines):
        return None
    title = "Deadlines: who was dropped"
    try:
        pairs = read_schedules(run.path / SCHEDULE_FILE)
    except ValueError as err:
        return Section("drops", title, message(str(err)))
    if not pairs:
        return Section("drops", title, message(f"{SCHEDULE_FILE} not found: the drops are not known."))
    specs = {a.spec: a for a in run.algorithms}
    workers = [str(w) for w in run.raw_config.get("worker_nodes", [])]
    summary, rounds = [], []
    for (spec, seed), schedule in pairs.items():
        algo = specs.get(spec)
        label = algo.label if algo else spec
        servers = list(algo.server_nodes) if algo else []
        drops = schedule.get("drops", [])
        late = np.array([d["late_s"] for d in drops], dtype=float)
        by_round: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for d in drops:
            by_round.setdefault((int(d["t"]), int(d["server"])), []).append(d)
        counts = np.bincount([int(d["worker"]) for d in drops]) if drops else np.zeros(0, int)
        most = f"{_name(workers, int(counts.argmax()))} ({int(counts.max())})" if drops else "—"
        summary.append([label, seed, len(by_round), len(drops), _s(late.mean()) if drops else "—",
                        _s(late.max()) if drops else "—", most])
        for (t, server), ds in by_round.items():
            who = ", ".join(f"{_name(workers, int(d['worker']))} (+{_s(d['late_s'])} s)" for d in ds)
            rounds.append([label, seed, t, _name(servers, server), len(ds), who])
    levels = ", ".join(f"{d:g} s" if d else "none" for d in deadlines)
    body = (f'<p class="note">Round deadlines per topology server level, top first: {esc(levels)}. A worker whose '
            "model would reach the round's top server after its deadline was left out of that average and received "
            "the result; the server averaged at the deadline. Lateness is how long after the deadline the model "
            "would have arrived.</p>")
    body += html_table(["algorithm", "seed", "rounds with drops", "workers dropped", "mean late (s)", "max late (s)",
                        "most dropped"], summary, numeric=(1, 2, 3, 4, 5))
    if rounds:
        shown = rounds[:MAX_ROUND_ROWS]
        more = f" (first {MAX_ROUND_ROWS} of {len(rounds)}; all in {SCHEDULE_FILE})" if len(rounds) > len(shown) else ""
        table = html_table(["algorithm", "seed", "iteration", "server", "dropped", "who (late by)"], shown,
                           numeric=(1, 2, 4))
        body += f"<details><summary>Per round: {len(rounds)} rounds with drops{esc(more)}</summary>{table}</details>"
    return Section("drops", title, body)


def _name(names: list[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else f"#{index}"


def _s(value: float) -> str:
    return f"{value:.3g}"
