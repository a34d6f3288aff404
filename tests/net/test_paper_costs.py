"""topologies/paper_costs.py: the `paper` preset's network allows Table 2 (issue 12)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "topologies" / "paper_costs.py"


@pytest.fixture(scope="module")
def paper_costs():
    spec = importlib.util.spec_from_file_location("paper_costs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_preset_network_passes_the_check(paper_costs, capsys):
    assert paper_costs.main(["--check"]) == 0
    assert "check: ok" in capsys.readouterr().out


def test_the_check_bounds_follow_table_2(paper_costs):
    # A2 with c_l = 0: (c + c_g/10) / (c + c_g/50) = 690.2 / 160.3
    c, c_g = paper_costs.COMPUTE_S, paper_costs.A2_MIN_GLOBAL_S
    assert (c + c_g / 10) / (c + c_g / 50) == pytest.approx(690.2 / 160.3, rel=1e-4)
    assert paper_costs.implied_ratio_a2(c, c_g) == pytest.approx(0.0, abs=1e-5)
    # A2' at its bound: T(H50,5) = T(P=5), so the time ratio is Table 2's 673.5 / 160.3
    bound = paper_costs.max_ratio_a2prime(c, 1.0)
    assert (c + 1.0 / 5) / (c + 1.0 / 50 + 0.18 * bound) == pytest.approx(673.5 / 160.3, rel=1e-9)


def test_the_measured_window_network_fails_a3(paper_costs, capsys):
    """With iperf's 1 MiB single-stream window a global round costs ~12 s, and Table 2's
    times would mean P = 5 reached 50% within a few hundred iterations."""
    out = paper_costs.report("paper_table2", 132_863_336 * 4, 1 << 20)
    assert out["c_g"] > 10 and out["iterations"]["P=5"] < 500
