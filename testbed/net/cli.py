"""`testbed trace ...` and `testbed topo ...` subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
IMPORT_FORMATS = ("auto", "ping-series", "iperf", "ping-table", "matrix")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `trace` and `topo` commands to the top-level parser."""
    trace = subparsers.add_parser("trace", help="record, inspect and import RTT traces")
    tsub = trace.add_subparsers(dest="trace_command", metavar="ACTION")

    rec = tsub.add_parser("record", help="measure an RTT trace over TCP against HOST:PORT")
    rec.add_argument("target", metavar="HOST:PORT")
    rec.add_argument("--count", type=int, required=True, help="number of probes")
    rec.add_argument("--interval-s", type=float, default=1.0, help="seconds between probes (default 1; the trace's t_s step)")
    rec.add_argument("--mode", choices=("connect", "echo"), default="connect",
                     help="connect: time the TCP handshake; echo: time a payload round trip (needs an echo server)")
    rec.add_argument("--timeout-s", type=float, default=5.0, help="per-probe timeout (default 5)")
    rec.add_argument("--out", type=Path, help="CSV file to write (default: print the CSV)")
    rec.set_defaults(func=_record)

    show = tsub.add_parser("show", help="count, min, p50, p90, p99, max of a trace (a file, or a name under traces/)")
    show.add_argument("trace", metavar="NAME|FILE", help="a trace name as topologies give it (ec2_us_eu) or a CSV file")
    show.set_defaults(func=_show)

    imp = tsub.add_parser("import", help="convert measurements (ping series, iperf results, ping table, "
                          "latency matrix) into trace files and a summary.json")
    imp.add_argument("file", type=Path, help="the measurement file (.gz accepted for ping series)")
    imp.add_argument("--out-dir", type=Path, required=True, help="folder for NAME.csv traces and summary.json")
    imp.add_argument("--format", choices=IMPORT_FORMATS, default="auto",
                     help="auto (default: from the header, .json = matrix), ping-series, iperf, ping-table, matrix")
    imp.add_argument("--by", choices=("region", "instance"), default="region",
                     help="ping series: one trace per region pair (default) or per instance pair")
    imp.add_argument("--size", default="64", help="ping series: packet size to keep (default 64; 'all' keeps every size)")
    imp.add_argument("--undirected", action="store_true", help="ping series, iperf: one trace per unordered pair, both directions")
    imp.add_argument("--cloud", default="AWS,AWS", help="iperf: FROM,TO clouds to keep (default AWS,AWS; 'all' keeps every row)")
    imp.add_argument("--skip-bad", action="store_true",
                     help="ping series, iperf: skip malformed rows and count them (default: refuse the file)")
    imp.add_argument("--samples", type=int, default=1000, help="matrix: rows per synthesised trace (default 1000)")
    imp.add_argument("--seed", type=int, default=0, help="matrix: seed of the synthesis (default 0)")
    imp.set_defaults(func=_import)

    topo = subparsers.add_parser("topo", help="inspect and import topologies")
    psub = topo.add_subparsers(dest="topo_command", metavar="ACTION")
    tshow = psub.add_parser("show", help="summary of a topology (shipped name or file)")
    tshow.add_argument("name")
    tshow.add_argument("--json", action="store_true", help="print the summary as JSON")
    tshow.set_defaults(func=_topo_show)
    zoo = psub.add_parser("import-zoo", help="convert a Topology Zoo GraphML file into a topology")
    zoo.add_argument("file", type=Path)
    zoo.add_argument("--cloud", required=True, help="label of the PoP hosting the cloud")
    zoo.add_argument("--servers", required=True, help="comma-separated labels of the PoPs hosting edge servers")
    zoo.add_argument("--cloud-period", type=int, default=20)
    zoo.add_argument("--server-period", type=int, default=5)
    zoo.add_argument("--workers-per-server", type=int, default=2)
    zoo.add_argument("--out", type=Path, required=True, help="node-link JSON to write")
    zoo.set_defaults(func=_import_zoo)


def _record(args: argparse.Namespace) -> int:
    from .record import parse_host_port, record_rtt
    from .traces import write_trace

    host, port = parse_host_port(args.target)
    probe = {"connect": "TCP handshake", "echo": "payload echo"}[args.mode]
    log.info("probing %s:%d: %d %s probes, one every %g s (about %s)", host, port, args.count, probe,
             args.interval_s, _duration(args.interval_s * (args.count - 1)))
    every = max(1, args.count // 10)  # about ten progress lines, whatever the count

    def progress(k: int, rtt_ms: float | None) -> None:
        if k % every == 0 or k == args.count:
            log.info("probe %d/%d: %s", k, args.count, "failed" if rtt_ms is None else f"{rtt_ms:.3f} ms")

    trace = record_rtt(host, port, count=args.count, interval_s=args.interval_s, mode=args.mode,
                       timeout_s=args.timeout_s, on_probe=progress)
    if args.out:
        write_trace(trace, args.out, precision=6)
        print(f"wrote {len(trace)} samples to {args.out}: " + _fmt(trace.summary()))
    else:
        sys.stdout.write("t_s,rtt_ms\n" + "".join(f"{t:.6f},{v:.6f}\n" for t, v in zip(trace.t_s, trace.values)))
    return 0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _show(args: argparse.Namespace) -> int:
    from .traces import load_trace, resolve_trace_path

    path = Path(args.trace)
    if not path.is_file() and path.suffix != ".csv" and len(path.parts) == 1:
        path = resolve_trace_path(args.trace, where="trace show")  # a name, as topologies give it
    trace = load_trace(path)
    print(f"{path} ({trace.column}): " + _fmt(trace.summary()))
    return 0


def _fmt(s: dict[str, float]) -> str:
    return f"count={int(s['count'])} " + " ".join(f"{k}={s[k]:.3f}" for k in ("min", "p50", "p90", "p99", "max"))


def _import(args: argparse.Namespace) -> int:
    from .importers import read_latency_matrix, read_ping_table, synthesize_rtt_trace
    from .measurements import detect_format, read_iperf_results, read_ping_series

    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise ValueError(f"--out-dir {args.out_dir}: is a file; give a folder (it is created if missing)")
    if not 1 <= args.samples <= 10_000_000:
        raise ValueError(f"--samples {args.samples}: rows per synthesised trace must be from 1 to 10_000_000")
    fmt = args.format
    if fmt == "auto":
        fmt = "matrix" if args.file.suffix.lower() == ".json" else _detect(args.file, detect_format)
    traces: list = []  # Trace objects, in file order
    summary: dict = {"source": str(args.file), "format": fmt}
    if fmt == "matrix":
        matrix = read_latency_matrix(args.file)
        root = np.random.SeedSequence(args.seed)
        for (src, dst), child in zip(sorted(matrix), root.spawn(len(matrix))):
            traces.append(synthesize_rtt_trace(matrix[(src, dst)], args.samples, np.random.default_rng(child),
                                               floor_frac=0.95, sigma=0.5, name=f"{src}__{dst}"))
        summary["note"] = "synthesized from one median per pair (traces/README.md: jitter model)"
    elif fmt == "ping-table":
        traces = [tr for _, tr in sorted(read_ping_table(args.file).items())]
    elif fmt == "ping-series":
        size = None if args.size == "all" else _int_arg("--size", args.size)
        m = read_ping_series(args.file, by=args.by, size=size, undirected=args.undirected, strict=not args.skip_bad)
        traces, summary = list(m.rtt.values()), m.summary()
    else:
        clouds = None if args.cloud == "all" else tuple(c.strip() for c in args.cloud.split(","))
        if clouds is not None and (len(clouds) != 2 or not all(clouds)):
            raise ValueError(f"--cloud {args.cloud!r}: expected FROM,TO (e.g. AWS,AWS) or all")
        m = read_iperf_results(args.file, clouds=clouds, undirected=args.undirected, strict=not args.skip_bad)
        traces = list(m.rtt.values()) + [_suffixed(tr, "_mbps") for tr in m.mbps.values()]
        summary = m.summary()
    written = _write_traces(traces, args.out_dir)
    summary["traces"] = written
    from testbed.files import atomic_write_text

    atomic_write_text(args.out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    skipped = summary.get("rows_skipped", 0)
    for entry in written:
        print(f"{args.out_dir / entry['file']}: {entry['column']} " + _fmt(entry["summary"]))
    if "rows_read" in summary:
        print(f"{summary['rows_read']} rows read, {summary['rows_used']} used, skipped {skipped} malformed row(s)"
              + (f" {summary['skipped_by_reason']}" if skipped else ""))
    print(f"summary: {args.out_dir / 'summary.json'}")
    return 0


def _detect(path: Path, detect) -> str:
    try:
        return detect(path)
    except ValueError:
        from .importers import PING_COLUMNS

        header = ""
        if path.is_file():
            with path.open(encoding="utf-8-sig", errors="replace") as f:
                header = f.readline()
        if all(c in header for c in PING_COLUMNS):
            return "ping-table"
        raise


def _int_arg(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected an integer or 'all'") from None


def _suffixed(trace, suffix: str):
    from .traces import Trace

    return Trace(trace.name + suffix, trace.column, trace.t_s, trace.values, source=trace.source)


def _write_traces(traces: list, out_dir: Path) -> list[dict]:
    """Write each trace as out_dir/NAME.csv (names sanitised, never outside out_dir, never
    two traces to one file); returns one summary entry per file."""
    from testbed.paths import check_inside, safe_name

    from .traces import write_trace

    used: dict[str, int] = {}
    out = []
    for tr in traces:
        base = safe_name(tr.name, default="trace", limit=120)
        used[base] = used.get(base, 0) + 1
        fname = f"{base}.csv" if used[base] == 1 else f"{base}_{used[base]}.csv"
        path = out_dir / fname
        check_inside(out_dir, path)  # belt and braces: a sanitised name cannot leave the folder
        write_trace(tr, path)
        out.append({"file": fname, "name": tr.name, "column": tr.column, "summary": tr.summary()})
    return out


def _topo_show(args: argparse.Namespace) -> int:
    from .topology import load_topology

    topo = load_topology(args.name)
    s = topo.summary()
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"{s['name']}  ({s['source']})")
    print("  nodes: " + ", ".join(f"{n} {role}" for role, n in s["nodes"].items()))
    print(f"  aggregation levels: {s['server_levels']}; periods, top first: "
          + " | ".join(", ".join(map(str, p)) for p in s["periods"]))
    print("  workers per bottom server: " + ", ".join(map(str, s["workers_per_bottom_server"])))
    print(f"  links: {s['links']}; traces: " + (", ".join(f"{k} ({v})" for k, v in s["traces"].items()) or "none"))
    return 0


def _import_zoo(args: argparse.Namespace) -> int:
    from .topology import load_topology, write_graph
    from .zoo import ZooImport, import_zoo

    opts = ZooImport(cloud=args.cloud, servers=tuple(s.strip() for s in args.servers.split(",") if s.strip()),
                     cloud_period=args.cloud_period, server_period=args.server_period,
                     workers_per_server=args.workers_per_server)
    graph = import_zoo(args.file, opts)
    topo = load_topology(graph)  # validate before writing
    write_graph(graph, args.out)
    print(f"wrote {args.out}: {topo!r}")
    return 0
