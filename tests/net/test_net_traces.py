"""Trace loading, validation, name resolution, and the samplers."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.net import BootstrapSampler, ReplaySampler, SamplerBank, Trace, load_trace, write_trace
from testbed.net.sampling import BOOTSTRAP_BLOCK
from testbed.net.traces import DEFAULT_TRACE_DIR, resolve_trace_path


def test_load_valid_trace(trace_dir):
    tr = load_trace(trace_dir / "rtt_a.csv")
    assert tr.name == "rtt_a" and tr.column == "rtt_ms" and len(tr) == 4
    np.testing.assert_array_equal(tr.values, [10, 20, 30, 40])
    s = tr.summary()
    assert (s["count"], s["min"], s["max"], s["p50"]) == (4, 10, 40, 25)


def test_write_then_load_round_trip(tmp_path):
    tr = Trace("x", "mbps", np.array([0.0, 1.5]), np.array([3.25, 7.0]))
    write_trace(tr, tmp_path / "x.csv")
    back = load_trace(tmp_path / "x.csv", column="mbps")
    np.testing.assert_array_equal(back.values, tr.values)
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file is gone


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty file"),
        ("t_s,rtt_ms\n", "no data rows"),
        ("rtt_ms\n1\n", "missing column 't_s'"),
        ("t_s\n1\n", "missing value column"),
        ("t_s,rtt_ms,mbps\n0,1,2\n", "missing value column"),  # two value columns: ambiguous
        ("t_s,rtt_ms,note\n0,1,x\n", "unknown column(s) ['note']"),
        ("t_s,rtt_ms,rtt_ms\n0,1,1\n", "duplicate column"),
        ("t_s,rtt_ms\n0,1\n1,fast\n", "row 2 (line 3), column 'rtt_ms': 'fast' is not a number"),
        ("t_s,rtt_ms\n0,1\n1,-3\n", "row 2 (line 3), column 'rtt_ms': -3.0 must be >= 0"),
        ("t_s,rtt_ms\n0,nan\n", "row 1 (line 2), column 'rtt_ms': nan is not a finite number"),
        ("t_s,rtt_ms\n0,inf\n", "is not a finite number"),
        ("t_s,rtt_ms\n0,1\n-1,1\n", "column 't_s': -1.0 is negative"),
        ("t_s,rtt_ms\n5,1\n4,1\n", "row 2 (line 3), column 't_s': 4.0 is before the previous row's 5.0"),
        ("t_s,mbps\n0,0\n", "column 'mbps': 0.0 must be > 0"),
        ("t_s,rtt_ms\n0,1,2\n", "row 1 (line 2) has 3 fields but the header has 2"),
    ],
)
def test_invalid_traces_are_refused_naming_file_row_and_rule(tmp_path, text, needle):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_trace(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_trace_kind_is_checked(trace_dir):
    with pytest.raises(ValueError, match="expected a 'rtt_ms' trace.*value column is 'mbps'"):
        load_trace(trace_dir / "bw_a.csv", column="rtt_ms")


def test_blank_lines_are_skipped(tmp_path):
    (tmp_path / "t.csv").write_text("\nt_s,rtt_ms\n0,1\n\n1,2\n")
    assert list(load_trace(tmp_path / "t.csv").values) == [1, 2]


def test_trace_names_resolve_inside_the_folder_only(trace_dir, tmp_path):
    assert resolve_trace_path("rtt_a", trace_dir=trace_dir) == trace_dir / "rtt_a.csv"
    assert resolve_trace_path("rtt_a.csv", trace_dir=trace_dir) == trace_dir / "rtt_a.csv"
    (tmp_path / "outside.csv").write_text("t_s,rtt_ms\n0,1\n")
    for bad in ("../outside", "../outside.csv", "sub/x", str(tmp_path / "outside.csv"), ".hidden"):
        with pytest.raises(ValueError, match="must be a plain file name inside"):
            resolve_trace_path(bad, trace_dir=trace_dir)
    with pytest.raises(ValueError, match=r"unknown trace 'nope'.*known traces: \['bw_a', 'compute_a', 'rtt_a', 'rtt_b'\]"):
        resolve_trace_path("nope", trace_dir=trace_dir)


def test_trace_override_points_anywhere(trace_dir, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("t_s,rtt_ms\n0,1\n")
    assert resolve_trace_path("rtt_a", trace_dir=trace_dir, overrides={"rtt_a": mine}) == mine
    with pytest.raises(FileNotFoundError, match="trace override 'rtt_a'"):
        resolve_trace_path("rtt_a", trace_dir=trace_dir, overrides={"rtt_a": tmp_path / "missing.csv"})


def test_shipped_traces_are_valid():
    files = sorted(DEFAULT_TRACE_DIR.glob("*.csv"))
    assert {f.stem for f in files} >= {"synth_home_access", "ec2_intra_us", "ec2_intra_eu", "ec2_us_eu",
                                      "ec2_us_ap", "ec2_eu_ap", "aws_use1_use2", "aws_use1_use2_mbps"}
    for f in files:
        tr = load_trace(f)
        # the iperf pair has one row per measured run (2); ping series hold every size-64 ping
        assert (2 if f.stem.startswith("aws_") else 100) <= len(tr) <= 20_000, f.name


# ---- samplers ------------------------------------------------------------------------------
def _trace(values) -> Trace:
    return Trace("t", "rtt_ms", np.arange(len(values), dtype=float), np.asarray(values, dtype=float))


def test_replay_goes_in_order_from_a_random_offset_and_wraps():
    tr = _trace([1, 2, 3, 4, 5])
    s = ReplaySampler(tr, np.random.default_rng(7))
    o = s.offset
    expected = [tr.values[(o + k) % 5] for k in range(12)]
    assert list(s.draw(12)) == expected
    offsets = {ReplaySampler(tr, np.random.default_rng(seed)).offset for seed in range(40)}
    assert len(offsets) > 1  # the offset really is random


@pytest.mark.parametrize("cls", [ReplaySampler, BootstrapSampler])
def test_sampler_streams_do_not_depend_on_chunking(cls):
    tr = _trace(np.arange(37))
    a, b = cls(tr, np.random.default_rng(1)), cls(tr, np.random.default_rng(1))
    chunked = np.concatenate([a.draw(k) for k in (1, 3, 250, 7, 300)])
    single = np.array([b() for _ in range(len(chunked))])
    np.testing.assert_array_equal(chunked, single)


def test_bootstrap_draws_from_the_trace_and_is_seeded():
    tr = _trace([1, 2, 3])
    x = BootstrapSampler(tr, np.random.default_rng(3)).draw(600)
    assert set(np.unique(x)) == {1, 2, 3}
    np.testing.assert_array_equal(x, BootstrapSampler(tr, np.random.default_rng(3)).draw(600))
    assert not np.array_equal(x, BootstrapSampler(tr, np.random.default_rng(4)).draw(600))


@pytest.mark.parametrize("cls", [ReplaySampler, BootstrapSampler])
def test_bank_matches_individual_samplers_even_with_repeats(cls):
    traces = [_trace(np.arange(n) + 100 * n) for n in (3, 5, 7)]
    solo = [cls(t, np.random.default_rng(i)) for i, t in enumerate(traces)]
    solo[1].draw(2)  # a sampler already in use is carried over
    bank_src = [cls(t, np.random.default_rng(i)) for i, t in enumerate(traces)]
    bank_src[1].draw(2)
    bank = SamplerBank(bank_src)
    rng = np.random.default_rng(0)
    for _ in range(2 * BOOTSTRAP_BLOCK // 3):
        members = rng.integers(0, 3, size=int(rng.integers(1, 6)))
        got = bank.draw(members)
        want = [solo[m].draw(1)[0] for m in members]
        np.testing.assert_array_equal(got, want)


def test_bank_refuses_mixed_kinds():
    tr = _trace([1, 2])
    with pytest.raises(ValueError, match="one kind"):
        SamplerBank([ReplaySampler(tr, np.random.default_rng(0)), BootstrapSampler(tr, np.random.default_rng(0))])
