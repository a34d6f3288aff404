"""Measurement importers (ping series, iperf results), `testbed trace import`, and the
shipped traces derived from the real files (checked against them when present)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from testbed.net import load_trace
from testbed.net.measurements import detect_format, read_iperf_results, read_ping_series
from testbed.net.traces import DEFAULT_TRACE_DIR

PING = """source,dest,size,time,source_region,dest_region
node-10,node-2,64,90.3,EU,US
node-10,node-2,64,90.1,EU,US
node-10,node-2,24,89.0,EU,US
node-2,node-10,64,90.5,US,EU
node-2,node-3,64,0.25,US,US
node-2,node-3,64,0.21,US,US
node-9,node-2,64,90.0,EU,US
"""

IPERF = """timestamp,run_id,from_cloud,from_region,to_cloud,to_region,bitrate_Bps,avgrtt,gcp_vm,aws_vm
2022-02-14T09:00:00Z,b,AWS,us-east-1,AWS,us-east-2,742391808.0,11.338,,t3.nano
2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,800000000.0,11.0,,t3.nano
2022-02-14T08:30:00Z,a,AWS,us-east-2,AWS,us-east-1,759955456.0,11.156,,t3.nano
2022-02-14T08:31:00Z,a,GCP,us-east1,AWS,us-east-1,425721856.0,15.0,e2-small,t3.nano
2022-02-14T08:32:00Z,a,AWS,us-east-1,AWS,eu-central-1,94240768.0,89.308,,t3.nano
"""


def test_ping_series_by_region_and_by_instance(tmp_path):
    path = tmp_path / "ping.csv"
    path.write_text(PING)
    m = read_ping_series(path)  # size 64 by default
    assert m.rows_read == 7 and m.rows_used == 6 and m.skipped == {}
    # a region pair's trace: instance series in natural (source, dest) order, each in file order
    assert m.rtt[("EU", "US")].values.tolist() == [90.0, 90.3, 90.1]  # node-9 before node-10
    assert m.rtt[("EU", "US")].t_s.tolist() == [0.0, 1.0, 2.0]
    assert m.rtt[("US", "EU")].values.tolist() == [90.5]
    both = read_ping_series(path, undirected=True)
    assert both.rtt[("EU", "US")].values.tolist() == [90.5, 90.0, 90.3, 90.1] and ("US", "EU") not in both.rtt
    inst = read_ping_series(path, by="instance", size=None)
    assert inst.rtt[("node-10", "node-2")].values.tolist() == [90.3, 90.1, 89.0]
    assert inst.rtt[("node-2", "node-3")].values.tolist() == [0.25, 0.21]


def test_ping_series_reads_gzip(tmp_path):
    path = tmp_path / "ping.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(PING)
    assert detect_format(path) == "ping-series"
    assert read_ping_series(path).rtt[("US", "US")].values.tolist() == [0.25, 0.21]


def test_iperf_results_per_region_pair(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(IPERF)
    assert detect_format(path) == "iperf"
    m = read_iperf_results(path)  # AWS to AWS only
    assert m.rows_read == 5 and m.rows_used == 4
    rtt, mbps = m.rtt[("us-east-1", "us-east-2")], m.mbps[("us-east-1", "us-east-2")]
    assert rtt.values.tolist() == [11.0, 11.338] and rtt.t_s.tolist() == [0.0, 3600.0]  # time order
    assert mbps.values == pytest.approx([800.0, 742.391808])  # the field holds bits per second
    both = read_iperf_results(path, undirected=True)
    assert both.rtt[("us-east-1", "us-east-2")].values.tolist() == [11.0, 11.156, 11.338]
    every = read_iperf_results(path, clouds=None)
    assert ("GCP:us-east1", "AWS:us-east-1") in every.rtt


@pytest.mark.parametrize(
    "row, reason, needle",
    [
        ("2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,fast,11.0,,t3.nano", "bitrate_Bps not a number",
         "row 2 (line 3), column 'bitrate_Bps': 'fast' is not a number"),
        ("2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,8e8", "too few fields", "row 2 (line 3): too few fields"),
        ("2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,8e8,11,,t3.nano,extra", "too many fields",
         "row 2 (line 3): 11 fields, more than the header's 10"),
        ("yesterday,a,AWS,us-east-1,AWS,us-east-2,8e8,11,,t3.nano", "bad timestamp", "'yesterday' is neither"),
        ("2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,0,11,,t3.nano", "throughput not > 0", "must be > 0"),
        ("2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,8e8,-3,,t3.nano", "negative RTT", "is negative"),
        ("2022-02-14T08:00:00Z,a,AWS,,AWS,us-east-2,8e8,11,,t3.nano", "empty from_region", "'from_region': empty"),
    ],
)
def test_iperf_malformed_rows_refused_or_counted(tmp_path, row, reason, needle):
    lines = IPERF.splitlines()
    path = tmp_path / "results.csv"
    path.write_text("\n".join([lines[0], lines[1], row, *lines[2:]]) + "\n")
    with pytest.raises(ValueError) as err:
        read_iperf_results(path)
    assert str(path) in str(err.value) and needle in str(err.value)
    m = read_iperf_results(path, strict=False)
    assert m.skipped == {reason: 1} and m.rows_read == 6 and m.rows_used == 4
    assert m.summary()["rows_skipped"] == 1 and m.summary()["skipped_by_reason"] == {reason: 1}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty file"),
        ("source,dest,time\n", "missing column(s) ['size', 'source_region', 'dest_region']"),
        ("source,dest,size,time,source_region,dest_region\n", "no usable ping rows of size 64 (0 data rows"),
        ("source,dest,size,time,source_region,dest_region\na,b,64,x,EU,US\n", "row 1 (line 2), column 'time': 'x'"),
        ("source,dest,size,time,source_region,dest_region\na,b,64,-1,EU,US\n", "-1.0 ms is negative"),
        ("source,dest,size,time,source_region,dest_region\na,b,64,nan,EU,US\n", "'nan' is not a finite number"),
    ],
)
def test_ping_series_refusals(tmp_path, text, needle):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_ping_series(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_detect_format_names_both_headers(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="unknown measurement format .* a ping series has source,dest"):
        detect_format(path)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed", "trace", "import", *args], capture_output=True, text=True)


def test_cli_import_writes_traces_and_a_summary(tmp_path):
    src = tmp_path / "results.csv"
    lines = IPERF.splitlines()
    src.write_text("\n".join([*lines, "2022-02-14T08:00:00Z,a,AWS,us-east-1,AWS,us-east-2,oops,11,,t3.nano"]) + "\n")
    out = tmp_path / "out"
    refused = _cli(str(src), "--out-dir", str(out))
    assert refused.returncode == 2 and "column 'bitrate_Bps': 'oops' is not a number" in refused.stderr
    assert not out.exists()  # nothing written on a refusal
    done = _cli(str(src), "--out-dir", str(out), "--skip-bad")
    assert done.returncode == 0, done.stderr
    assert "skipped 1 malformed row" in done.stdout
    assert load_trace(out / "us-east-1__us-east-2.csv").values.tolist() == [11.0, 11.338]
    assert load_trace(out / "us-east-1__us-east-2_mbps.csv").column == "mbps"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == "iperf" and summary["rows_skipped"] == 1
    assert summary["skipped_by_reason"] == {"bitrate_Bps not a number": 1}
    assert {p["file"] for p in summary["traces"]} >= {"us-east-1__us-east-2.csv", "us-east-1__us-east-2_mbps.csv"}


def test_cli_import_sanitises_names_into_the_folder(tmp_path):
    src = tmp_path / "ping.csv"
    src.write_text("source,dest,size,time,source_region,dest_region\n"
                   "../../evil,/etc/passwd,64,1.0,../x,US\n")
    out = tmp_path / "out"
    done = _cli(str(src), "--out-dir", str(out), "--by", "instance")
    assert done.returncode == 0, done.stderr
    written = [p for p in tmp_path.rglob("*.csv") if p != src]
    assert len(written) == 1 and written[0].parent == out
    assert ".." not in written[0].name and "/" not in written[0].name
    assert not (tmp_path.parent / "evil").exists()


def test_cli_import_detects_the_ping_series_format(tmp_path):
    src = tmp_path / "ping.csv"
    src.write_text(PING)
    out = tmp_path / "out"
    done = _cli(str(src), "--out-dir", str(out), "--undirected")
    assert done.returncode == 0, done.stderr
    assert load_trace(out / "EU__US.csv").values.tolist() == [90.5, 90.0, 90.3, 90.1]
    assert json.loads((out / "summary.json").read_text())["format"] == "ping-series"


# ---- the real files and the traces shipped from them -----------------------------------
def _generator():
    spec = importlib.util.spec_from_file_location("trace_generate", DEFAULT_TRACE_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Medians of the size-64 pings as SOURCES.md and the measurement file give them; the
# iperf pair's two runs (11.156, 11.338 ms) and single-stream throughputs (760, 742 Mbit/s)
MEASURED_P50 = {"ec2_intra_us": 0.25, "ec2_intra_eu": 0.196, "ec2_us_eu": 90.1, "ec2_us_ap": 200.0,
                "ec2_eu_ap": 273.0, "aws_use1_use2": 11.247, "aws_use1_use2_mbps": 751.174}


@pytest.mark.parametrize("name", sorted(MEASURED_P50))
def test_shipped_measured_traces_have_the_measured_medians(name):
    trace = load_trace(DEFAULT_TRACE_DIR / f"{name}.csv")
    assert np.median(trace.values) == pytest.approx(MEASURED_P50[name], abs=1e-3)


def test_shipped_measured_traces_match_the_real_files(shared_data):
    net = shared_data / "net"
    if not (net / "ec2_ping_52nodes.csv.gz").is_file():
        pytest.skip(f"no measurement files in {net}")
    gen = _generator()
    built, matrix = gen.build_measured(shared_data)
    for name, tr in built.items():
        shipped = load_trace(DEFAULT_TRACE_DIR / f"{name}.csv")
        np.testing.assert_allclose(shipped.values, tr.values, atol=5e-4)
    # the medians straight from the raw rows, independently of the importer
    import pandas as pd

    raw = pd.read_csv(net / "ec2_ping_52nodes.csv.gz")
    raw = raw[raw["size"] == 64]
    for name, (a, b) in gen.PING_TRACES.items():
        rows = raw[((raw.source_region == a) & (raw.dest_region == b)) | ((raw.source_region == b) & (raw.dest_region == a))]
        assert len(rows) == len(built[name]) and np.median(rows.time) == pytest.approx(np.median(built[name].values))
    shipped = json.loads(gen.MATRIX_FILE.read_text())
    assert shipped == json.loads(json.dumps(matrix))
    assert shipped["rows"] == 334 and len(shipped["regions"]) == 17
    assert 950 < shipped["window_kib_percentiles"]["p50"] < 1100  # ~1 MiB per RTT: window-limited single streams


def test_real_files_import_with_counts(shared_data):
    net = shared_data / "net"
    if not (net / "intercloud_rtt_bitrate_2022-02.csv").is_file():
        pytest.skip(f"no measurement files in {net}")
    iperf = read_iperf_results(net / "intercloud_rtt_bitrate_2022-02.csv", strict=False)
    assert iperf.rows_read == 2138 and iperf.rows_used + sum(iperf.skipped.values()) <= 2138
    assert iperf.rows_used == 334 and len(iperf.rtt) == 228
    assert iperf.rtt[("us-east-1", "us-east-2")].values.tolist() == [11.338]
    assert iperf.mbps[("us-east-1", "eu-central-1")].values[0] == pytest.approx(94.240768)
    ping = read_ping_series(net / "ec2_ping_52nodes.csv.gz", size=None)
    assert ping.rows_read == 224_639 and ping.rows_used == 224_639 and ping.skipped == {}
    assert np.median(ping.rtt[("EU", "US")].values) == pytest.approx(90.1, abs=0.5)
