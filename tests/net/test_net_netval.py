"""The clock against packet-level TCP: replay the committed ns-3 references.

``bench/netval/reference.json`` holds every scenario of the ns-3 grid (single transfers,
uploads sharing a bottleneck, an aggregation round of every shipped topology) with
ns-3 3.44's completion times; ``bench/netval/replay.py`` prices the same scenarios with
the testbed. This keeps the agreement from being lost silently: re-run ``make netval``
after changing the reference conditions, and this test after changing the clock.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPLAY = Path(__file__).resolve().parents[2] / "bench" / "netval" / "replay.py"


@pytest.fixture(scope="module")
def rows():
    spec = importlib.util.spec_from_file_location("netval_replay", REPLAY)
    replay = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = replay  # dataclasses look their module up while the file runs
    spec.loader.exec_module(replay)
    return replay.compare()


def test_the_reference_covers_every_kind_of_scenario(rows):
    kinds = {k: sum(r.kind == k for r in rows) for k in ("single", "shared", "round")}
    assert kinds["single"] == 36 and kinds["shared"] == 54 and kinds["round"] >= 22, kinds


def test_tcp_model_agrees_with_ns3(rows):
    """What holds today (bench/netval/README.md has the table and the reasons): every one
    of the 22 aggregation rounds within 15% (the issue's bar), 21 within 10%; 33 of the 36
    single transfers within 10%, all within 15%; 87 of all 112 within 10% (the issue asks
    for 90%: not reached). The misses are scenarios where ns-3 recovers from slow-start
    overshoot by a retransmission timeout (no RACK/TLP in ns-3; Linux has none there),
    which the testbed does not model."""
    err = {r.id: r.error("tcp") for r in rows}
    rounds = [r for r in rows if r.kind == "round"]
    assert sum(abs(err[r.id]) <= 0.10 for r in rounds) >= 21 and all(abs(err[r.id]) <= 0.15 for r in rounds)
    single = [r for r in rows if r.kind == "single"]
    assert sum(abs(err[r.id]) <= 0.10 for r in single) >= 33 and all(abs(err[r.id]) <= 0.15 for r in single)
    without_timeouts = [r for r in rows if r.ns3_rtos == 0]
    within = sum(abs(err[r.id]) <= 0.10 for r in without_timeouts)
    assert within >= 0.95 * len(without_timeouts), f"{within} of {len(without_timeouts)} within 10%"
    assert sum(abs(e) <= 0.10 for e in err.values()) >= 87
    # no systematic bias where TCP behaves (no timeouts): median signed error within 2%
    signed = sorted(err[r.id] for r in without_timeouts)
    assert abs(signed[len(signed) // 2]) <= 0.02


def test_the_fluid_model_is_what_tcp_fixes(rows):
    # the fluid model is always too fast: it has neither slow start nor headers
    assert all(r.error("fluid") < 0 for r in rows)
    assert sum(abs(r.error("fluid")) <= 0.10 for r in rows) < 0.3 * len(rows)
