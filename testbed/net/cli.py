"""`testbed trace ...` and `testbed topo ...` subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `trace` and `topo` commands to the top-level parser."""
    trace = subparsers.add_parser("trace", help="record, inspect and import RTT traces")
    tsub = trace.add_subparsers(dest="trace_command", metavar="ACTION")

    rec = tsub.add_parser("record", help="measure an RTT trace over TCP against HOST:PORT")
    rec.add_argument("target", metavar="HOST:PORT")
    rec.add_argument("--count", type=int, required=True, help="number of probes")
    rec.add_argument("--interval-s", type=float, default=1.0, help="seconds between probes (default 1)")
    rec.add_argument("--mode", choices=("connect", "echo"), default="connect",
                     help="connect: time the TCP handshake; echo: time a payload round trip (needs an echo server)")
    rec.add_argument("--timeout-s", type=float, default=5.0, help="per-probe timeout (default 5)")
    rec.add_argument("--out", type=Path, help="CSV file to write (default: print the CSV)")
    rec.set_defaults(func=_record)

    show = tsub.add_parser("show", help="count, min, p50, p90, p99, max of a trace file")
    show.add_argument("file", type=Path)
    show.set_defaults(func=_show)

    imp = tsub.add_parser("import", help="convert a latency matrix JSON or a ping table CSV into trace files")
    imp.add_argument("file", type=Path)
    imp.add_argument("--out-dir", type=Path, required=True)
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
    trace = record_rtt(host, port, count=args.count, interval_s=args.interval_s, mode=args.mode,
                       timeout_s=args.timeout_s)
    if args.out:
        write_trace(trace, args.out, precision=6)
        print(f"wrote {len(trace)} samples to {args.out}: " + _fmt(trace.summary()))
    else:
        sys.stdout.write("t_s,rtt_ms\n" + "".join(f"{t:.6f},{v:.6f}\n" for t, v in zip(trace.t_s, trace.values)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from .traces import load_trace

    trace = load_trace(args.file)
    print(f"{args.file} ({trace.column}): " + _fmt(trace.summary()))
    return 0


def _fmt(s: dict[str, float]) -> str:
    return f"count={int(s['count'])} " + " ".join(f"{k}={s[k]:.3f}" for k in ("min", "p50", "p90", "p99", "max"))


def _import(args: argparse.Namespace) -> int:
    from .importers import read_latency_matrix, read_ping_table, synthesize_rtt_trace
    from .traces import Trace, write_trace

    if args.file.suffix.lower() == ".json":
        matrix = read_latency_matrix(args.file)
        root = np.random.SeedSequence(args.seed)
        traces = {}
        for (src, dst), child in zip(sorted(matrix), root.spawn(len(matrix))):
            traces[(src, dst)] = synthesize_rtt_trace(matrix[(src, dst)], args.samples, np.random.default_rng(child),
                                                      floor_frac=0.95, sigma=0.5, name=f"{src}__{dst}")
    else:
        traces = read_ping_table(args.file)
    for (src, dst), tr in sorted(traces.items()):
        out = args.out_dir / f"{src}__{dst}.csv"
        write_trace(Trace(tr.name, tr.column, tr.t_s, tr.values), out)
        print(f"{out}: " + _fmt(tr.summary()))
    return 0


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
