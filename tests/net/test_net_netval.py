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
    """What holds today (bench/netval/README.md has the table and the reasons): 103 of all
    112 within 10% (the issue's bar: 90%, 101), every one of the 22 aggregation rounds
    within 15% (the issue's bar), 21 within 10%; 33 of the 36 single transfers within 10%,
    all within 15%; 49 of the 54 shared-bottleneck uploads within 10%, with the loss model
    (slow-start overshoot of the drop-tail buffer, one RTO per flow, as ns-3 3.44 without
    RACK/TLP recovers); 60 of the 63 scenarios without an ns-3 timeout within 10%."""
    err = {r.id: r.error("tcp") for r in rows}
    rounds = [r for r in rows if r.kind == "round"]
    assert sum(abs(err[r.id]) <= 0.10 for r in rounds) >= 21 and all(abs(err[r.id]) <= 0.15 for r in rounds)
    single = [r for r in rows if r.kind == "single"]
    assert sum(abs(err[r.id]) <= 0.10 for r in single) >= 33 and all(abs(err[r.id]) <= 0.15 for r in single)
    shared = [r for r in rows if r.kind == "shared"]
    assert sum(abs(err[r.id]) <= 0.10 for r in shared) >= 49
    without_timeouts = [r for r in rows if r.ns3_rtos == 0]
    within = sum(abs(err[r.id]) <= 0.10 for r in without_timeouts)
    assert within >= 60, f"{within} of {len(without_timeouts)} within 10%"
    assert sum(abs(e) <= 0.10 for e in err.values()) >= 103
    # no systematic bias: median signed error within 2%, where TCP behaves and overall
    for sel in (without_timeouts, rows):
        signed = sorted(err[r.id] for r in sel)
        assert abs(signed[len(signed) // 2]) <= 0.02


def test_without_the_loss_model_the_overshoot_cases_are_too_fast(rows):
    """``loss='none'`` is the model before: 87 of 112 within 10%, and every scenario the
    loss model changes is one where ns-3 dropped packets."""
    err = {r.id: r.error("none") for r in rows}
    assert sum(abs(e) <= 0.10 for e in err.values()) == 87
    changed = [r for r in rows if abs(r.testbed_s["tcp"] / r.testbed_s["none"] - 1) > 1e-9]
    assert changed and all(r.ns3_drops > 0 and r.testbed_s["none"] < r.testbed_s["tcp"] for r in changed)


def test_the_fluid_model_is_what_tcp_fixes(rows):
    # the fluid model is always too fast: it has neither slow start nor headers
    assert all(r.error("fluid") < 0 for r in rows)
    assert sum(abs(r.error("fluid")) <= 0.10 for r in rows) < 0.3 * len(rows)
