"""`testbed bound` through testbed.cli.main."""

import pytest

import testbed.cli
from testbed.theory.bounds import theorem2_bound, theorem3_bound


@pytest.fixture(autouse=True)
def only_theory_subcommands(monkeypatch):
    # Keep these tests independent of the other subsystems' CLIs.
    monkeypatch.setattr(testbed.cli, "SUBCOMMAND_MODULES", ("testbed.theory.cli",))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = testbed.cli.main(["bound", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def row(out: str, label: str) -> float:
    (line,) = [line for line in out.splitlines() if line.strip().startswith(label)]
    return float(line.split()[-1])


def test_theorem2_prints_terms_parts_and_sandwich(capsys):
    rc, out, _ = run(capsys, "theorem2", "--n", "8", "--N", "2", "--periods", "10", "2",
                     "--gamma", "0.005", "--L", "1", "--sigma2", "1", "--eps2", "0.5")  # fmt: skip
    assert rc == 0
    expected = theorem2_bound(gamma=0.005, L=1, sigma2=1, n_workers=8, n_groups=2, local_period=2,
                              global_period=10, global_divergence=0.5)  # fmt: skip
    assert row(out, "total") == pytest.approx(expected.total, rel=1e-5)
    assert row(out, "upward part") == pytest.approx(expected.upward_part, rel=1e-5)
    assert "Theorem 2 (15)" in out and "gap term at T -> infinity" in out
    assert "sandwich (16): 1.75 <= 2.75 <= 8.75  holds" in out
    assert "sandwich (17): 4 <= 17.7143 <= 100  holds" in out


def test_theorem1_per_group_periods_and_horizon(capsys):
    rc, out, _ = run(capsys, "theorem1", "--group-sizes", "3", "5", "--periods", "10", "2,5", "--gamma", "0.005",
                     "--L", "1", "--sigma2", "1", "--up-eps2", "0.2", "--down-eps2", "0.3", "0.1",
                     "--f-gap", "2", "--T", "1000")  # fmt: skip
    assert rc == 0
    # 4/5 + 1/1600 + 1/1200 + 1/50 + 1/500 + 161/80000 (see test_bounds)
    assert row(out, "total") == pytest.approx(0.8 + 1 / 1600 + 1 / 1200 + 1 / 50 + 1 / 500 + 161 / 80000, rel=1e-5)
    assert row(out, "SGD       2(f0-f*)/(gamma T)") == pytest.approx(0.8)


def test_theorem3_takes_N_per_level_and_eps(capsys):
    rc, out, _ = run(capsys, "theorem3", "--N", "2", "2", "3", "--periods", "20", "10", "2", "--gamma", "0.002",
                     "--L", "1", "--sigma2", "1", "--eps", "0.5")  # fmt: skip
    assert rc == 0
    expected = theorem3_bound(gamma=0.002, L=1, sigma2=1, branching=[2, 2, 3], periods=[20, 10, 2],
                              global_divergence=0.25)  # fmt: skip
    assert row(out, "total") == pytest.approx(expected.total, rel=1e-5)
    assert "sandwich (23)" in out and "sandwich (24)" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("corollary1", "--n", "8", "--periods", "5", "--gamma", "0.01", "--L", "1", "--sigma2", "1", "--eps2", "0.25"),
        ("hier-avg", "--n", "8", "--N", "2", "--periods", "8", "2", "--gamma", "0.01", "--L", "1", "--sigma2", "1"),
    ],
)
def test_other_theorems_print_a_table(capsys, argv):
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and row(out, "total") > 0 and "condition:" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (("theorem2", "--n", "8", "--N", "2", "--periods", "10", "2", "--gamma", "0.05", "--L", "1",
          "--sigma2", "1", "--eps2", "0.5"), "gamma=0.05 is outside Theorem 2's condition gamma <= "),
        (("hier-avg", "--n", "8", "--N", "2", "--periods", "8", "2", "--gamma", "0.01", "--L", "1",
          "--sigma2", "1", "--eps2", "1"), "--eps2 does not apply to hier-avg"),
        (("theorem2", "--n", "8", "--N", "2", "--periods", "10", "--gamma", "0.001", "--L", "1",
          "--sigma2", "1", "--eps2", "0.5"), "--periods takes 2 value(s) for theorem2 (G I)"),
        (("theorem3", "--N", "2", "2", "--periods", "8", "2", "--gamma", "0.001", "--L", "1", "--sigma2", "1"),
         "theorem3 needs the global divergence: --eps2"),
        (("theorem1", "--n", "8", "--N", "3", "--periods", "10", "2", "--gamma", "0.001", "--L", "1",
          "--sigma2", "1", "--up-eps2", "0", "--down-eps2", "0"), "--N 3 does not divide --n 8"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.startswith("testbed bound: error: ") and message in err and err.count("\n") == 1
