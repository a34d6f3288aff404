"""Regenerate the shipped traces: `python traces/generate.py [--data DIR]` (repo root).

Measured traces are derived from the two measurement files described in
`../shared/data/net/SOURCES.md` (found with --data, $TESTBED_SHARED_DATA or
`<repo>/../shared/data`); the one synthesized trace (home access, for which no
measurement exists) from a fixed seed. Deterministic. Provenance of every number, and
exactly which rows became which trace, is in traces/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from testbed.files import atomic_write_text
from testbed.net.importers import synthesize_rtt_trace
from testbed.net.measurements import read_iperf_results, read_ping_series
from testbed.net.traces import Trace, write_trace

HERE = Path(__file__).resolve().parent
PING_FILE = "net/ec2_ping_52nodes.csv.gz"  # ouroboros-leios data/BenchTopology/latency.csv.gz
IPERF_FILE = "net/intercloud_rtt_bitrate_2022-02.csv"  # doitintl/intercloud-throughput results_202202
PING_SIZE = 64  # bytes: ping's default packet size, one of the three sizes measured

# trace name -> the (unordered) region pair of the ping series whose size-64 rows it
# holds: every instance series between the two regions, both directions, one after the
# other in (source, dest) order (node-2 before node-10), each in measurement order
PING_TRACES = {
    "ec2_intra_us": ("US", "US"),
    "ec2_intra_eu": ("EU", "EU"),
    "ec2_us_eu": ("EU", "US"),
    "ec2_us_ap": ("AP", "US"),
    "ec2_eu_ap": ("AP", "EU"),
}
# trace name -> the (unordered) AWS region pair of the iperf/ping results whose runs it
# holds, both directions merged in timestamp order; NAME_mbps holds the same runs' throughput
IPERF_TRACES = {
    "aws_use1_use2": ("us-east-1", "us-east-2"),
}
MATRIX_FILE = HERE / "sources" / "aws_interregion_2022-02.json"

# Home access: no measurement in the data above. Median RTT 14 ms, as quoted in issue 3
# ("published home-broadband medians of roughly 150-200 Mbit/s down, 20 Mbit/s up, 14 ms
# latency"); the jitter model and its parameters are assumptions (traces/README.md).
SYNTH_SEED = 3
SYNTH_ROWS = 1000
HOME_P50_MS = 14.0
HOME_JITTER = dict(floor_frac=0.7, sigma=0.6, rho=0.9)
SYNTH_TRACES = {"synth_home_access": HOME_P50_MS}


def default_data_dir() -> Path:
    env = os.environ.get("TESTBED_SHARED_DATA")
    return Path(env) if env else HERE.parent.parent / "shared" / "data"


def build_synthesized() -> dict[str, Trace]:
    gens = [np.random.default_rng(s) for s in np.random.SeedSequence(SYNTH_SEED).spawn(len(SYNTH_TRACES))]
    return {name: synthesize_rtt_trace(p50, SYNTH_ROWS, rng, name=name, **HOME_JITTER)
            for (name, p50), rng in zip(SYNTH_TRACES.items(), gens, strict=True)}


def build_measured(data_dir: Path) -> tuple[dict[str, Trace], dict]:
    """The measured traces and the AWS region-pair matrix (medians per pair)."""
    out: dict[str, Trace] = {}
    ping = read_ping_series(data_dir / PING_FILE, by="region", size=PING_SIZE, undirected=True)
    for name, pair in PING_TRACES.items():
        out[name] = _renamed(ping.rtt[pair], name)
    pairs = read_iperf_results(data_dir / IPERF_FILE, clouds=("AWS", "AWS"), undirected=True)
    for name, pair in IPERF_TRACES.items():
        out[name] = _renamed(pairs.rtt[pair], name)
        out[f"{name}_mbps"] = _renamed(pairs.mbps[pair], f"{name}_mbps")
    return out, _matrix(read_iperf_results(data_dir / IPERF_FILE, clouds=("AWS", "AWS")))


def _renamed(tr: Trace, name: str) -> Trace:
    return Trace(name, tr.column, tr.t_s, tr.values, source=tr.source)


def _matrix(iperf) -> dict:
    """Per AWS region pair: runs, median RTT (ms), median throughput (Mbit/s), and the
    median of throughput x RTT (KiB), the effective TCP window of one iperf stream."""
    pairs = []
    for key in sorted(iperf.rtt):
        rtt, mbps = iperf.rtt[key].values, iperf.mbps[key].values
        pairs.append({"from": key[0], "to": key[1], "runs": int(len(rtt)),
                      "rtt_ms_p50": round(float(np.median(rtt)), 3), "mbps_p50": round(float(np.median(mbps)), 3),
                      "window_kib_p50": round(float(np.median(mbps * 1e6 / 8 * rtt / 1e3 / 1024)), 1)})
    bdp = np.concatenate([iperf.mbps[k].values * 1e6 / 8 * iperf.rtt[k].values / 1e3 / 1024 for k in sorted(iperf.rtt)])
    return {
        "source": "doitintl/intercloud-throughput @ 4046e3d6af0ee3c37c0fb13ca66baa932425a6ca, "
                  "results_202202/results.csv (Apache-2.0): AWS-to-AWS rows only",
        "derived_by": "traces/generate.py",
        "rows": int(len(bdp)),
        "regions": sorted({k[0] for k in iperf.rtt} | {k[1] for k in iperf.rtt}),
        "window_kib_percentiles": {f"p{q}": round(float(np.percentile(bdp, q)), 1) for q in (5, 25, 50, 75, 95)},
        "pairs": pairs,
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder (holds net/...)")
    parser.add_argument("--synthesized-only", action="store_true", help="only the synthesized traces")
    args = parser.parse_args(argv)
    traces = build_synthesized()
    if not args.synthesized_only:
        data = args.data or default_data_dir()
        if not (data / PING_FILE).is_file() or not (data / IPERF_FILE).is_file():
            print(f"error: {data / PING_FILE} or {data / IPERF_FILE} not found; give --data DIR "
                  f"(the folder SOURCES.md describes) or --synthesized-only", file=sys.stderr)
            return 2
        measured, matrix = build_measured(data)
        traces.update(measured)
        atomic_write_text(MATRIX_FILE, json.dumps(matrix, indent=1) + "\n")
        logging.info("%s: %d AWS pairs; throughput x RTT p50 %.0f KiB", MATRIX_FILE.name, len(matrix["pairs"]),
                     matrix["window_kib_percentiles"]["p50"])
    for name, tr in traces.items():
        write_trace(tr, HERE / f"{name}.csv")
        s = tr.summary()
        logging.info("%s.csv (%s): %d rows, p50 %.3f, p90 %.3f, p99 %.3f, min %.3f, max %.3f",
                     name, tr.column, len(tr), s["p50"], s["p90"], s["p99"], s["min"], s["max"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
