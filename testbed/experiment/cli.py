"""`testbed experiment` and `testbed retime`."""

from __future__ import annotations

import argparse
from pathlib import Path

from testbed.experiment.config import PRESETS, ExperimentConfig, preset, read_config_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="train the configured algorithms on a topology and write a run folder + report")
    p.add_argument("--topo", help="topology name under topologies/ or a path to a topology file")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a killed run from its last checkpoints")
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default: quick)")
    p.add_argument("--config", type=Path, metavar="FILE.json", help="config keys from a JSON file (applied over the preset, under --set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable; lists comma-separated)")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where run folders go (default: reports/)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=run_experiment_command)

    r = sub.add_parser("retime", help="re-price a finished run under other traces or another topology, without retraining")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--trace", action="append", default=[], metavar="NAME=PATH", help="replace trace NAME by the CSV at PATH (repeatable)")
    r.add_argument("--topo", default=None, help="price on another topology with the same number of workers")
    r.set_defaults(func=run_retime_command)


def run_experiment_command(args: argparse.Namespace) -> int:
    from testbed.experiment.runner import resume_experiment, run_experiment

    if args.resume:
        run_dir = resume_experiment(args.resume, progress=not args.no_progress)
        print(f"report: {run_dir / 'report.html'}")
        return 0
    if not args.topo:
        raise ValueError("--topo: required (or --resume RUN_DIR)")
    config = preset(args.preset)
    if args.config:
        values = {**config.to_dict(), **read_config_file(args.config)}
        config = ExperimentConfig.from_dict(values, where=str(args.config))
    overrides = [f"topology={args.topo}"] + [item for item in args.overrides if item.strip()]
    config = config.with_overrides(overrides)
    run_dir = run_experiment(config, reports_root=args.reports, tag=args.preset, progress=not args.no_progress)
    print(f"report: {run_dir / 'report.html'}")
    return 0


def run_retime_command(args: argparse.Namespace) -> int:
    from testbed.experiment.retime import retime

    traces = {}
    for item in args.trace:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--trace {item!r}: expected NAME=path.csv")
        traces[name] = path
    run_dir = retime(args.run_dir, traces, args.topo)
    print(f"report: {run_dir / 'report.html'}")
    return 0
