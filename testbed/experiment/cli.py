"""`testbed experiment` and `testbed retime`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from testbed.device import device_count, resolve_device
from testbed.experiment.config import PRESETS, ExperimentConfig, preset
from testbed.experiment.configfile import read_config_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="train the configured algorithms on a topology and write a run folder + report")
    p.add_argument("--topo", help="topology name under topologies/ or a path to a topology file "
                   "(default: the preset's or config file's topology; the quick preset's is edge3level)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a killed run from its last checkpoints")
    p.add_argument("--preset", help=f"one of {', '.join(PRESETS)} (default: quick)")
    p.add_argument("--config", type=Path, metavar="FILE", help="config keys from a JSON or TOML file (applied over the preset, under --set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable; lists comma-separated); `testbed config` lists every key")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where run folders go (default: reports/)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=run_experiment_command)

    c = sub.add_parser("config", help="list every experiment config key with its type, default and meaning")
    c.add_argument("--preset", default=None, help="show this preset's values as the defaults")
    c.set_defaults(func=run_config_command)

    r = sub.add_parser("retime", help="re-price a finished run under other traces or another topology, without retraining")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--trace", action="append", default=[], metavar="NAME=PATH", help="replace trace NAME by the CSV at PATH (repeatable)")
    r.add_argument("--topo", default=None, help="price on another topology with the same number of workers")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="price under other network settings: tcp_model, tcp_idle, tcp_* keys, window_kib, events (repeatable)")
    r.set_defaults(func=run_retime_command)


def run_experiment_command(args: argparse.Namespace) -> int:
    from testbed.experiment.runner import resume_experiment, run_experiment

    if args.resume:
        given = [flag for flag, value in (("--topo", args.topo), ("--preset", args.preset), ("--config", args.config),
                                          ("--set", args.overrides)) if value]
        if given:  # a resumed run continues with its own config.json: anything else would mix two runs
            raise ValueError(f"--resume {args.resume}: {given[0]} cannot be combined with --resume; a resumed run "
                             f"keeps its config.json (start a new run to change it)")
        run_dir = resume_experiment(args.resume, progress=not args.no_progress)
        print(f"report: {run_dir / 'report.html'}")
        return 0
    args.preset = args.preset or "quick"
    config = preset(args.preset)
    from_file: dict = {}
    if args.config:
        from_file = read_config_file(args.config)
        config = ExperimentConfig.from_dict({**config.to_dict(), **from_file}, where=str(args.config))
    overrides = ([f"topology={args.topo}"] if args.topo else []) + [item for item in args.overrides if item.strip()]
    config = config.with_overrides(overrides)
    set_keys = {item.partition("=")[0].strip() for item in args.overrides}

    def where(key: str) -> str:
        """The key and where its value came from, for messages."""
        if key in set_keys:
            return f"--set {key}"
        return f"{args.config if key in from_file else f'--preset {args.preset}'}: {key}"

    check_against_topology(config, where)
    run_dir = run_experiment(config, reports_root=args.reports, tag=args.preset, progress=not args.no_progress)
    print(f"report: {run_dir / 'report.html'}")
    return 0


def check_against_topology(config: ExperimentConfig, where: Callable[[str], str]) -> None:
    """The checks that need the topology or the machine, with refusals naming the key and
    where its value came from (``where(key)``: the config file, --set or the preset). The
    runner checks again, without that provenance, before it creates the run folder."""
    from testbed.experiment.algorithms import resolve_all
    from testbed.net import load_topology

    overrides = config.trace_overrides
    for name, path in overrides.items():
        if not Path(path).is_file():
            problem = "not a regular file (a pipe or device)" if Path(path).exists() else "no such file"
            raise ValueError(f"{where('traces')}: {name}={path}: {problem}; give NAME=path of a trace CSV")
    topology = load_topology(config.topology, trace_overrides=overrides)
    unused = sorted(set(overrides) - set(topology.traces))
    if unused:
        raise ValueError(
            f"{where('traces')}: {unused[0]!r} is not a trace of {topology.source}; "
            f"it uses {sorted(topology.traces) or 'no traces'}"
        )
    try:
        resolve_all(config.algorithms, topology.tree)
    except ValueError as err:
        raise ValueError(f"{where('algorithms')}: {err} (on {topology.source}, periods {topology.periods})") from None
    check_deadlines(config.deadline_s, topology, where("deadline_s"))
    if config.device != "auto":
        device = resolve_device(config.device)
        available = device_count(device)
        if (device.index or 0) >= available:
            raise ValueError(
                f"{where('device')}: {config.device!r} is not available on this machine "
                f"({available} {device.type} device(s)); use auto or cpu"
            )


def check_deadlines(deadline_s: tuple[float, ...], topology, where: str) -> None:
    """One deadline per topology server level at most."""
    if len(deadline_s) > topology.tree.n_levels:
        raise ValueError(f"{where}: {len(deadline_s)} deadlines but {topology.source} has {topology.tree.n_levels} "
                         f"server level(s) ({', '.join(topology.tiers)}); give one per level, top first")


def run_config_command(args: argparse.Namespace) -> int:
    from testbed.experiment.keys import format_keys

    print(format_keys(base=preset(args.preset) if args.preset else ExperimentConfig()))
    return 0


def run_retime_command(args: argparse.Namespace) -> int:
    from testbed.experiment.retime import retime

    traces = {}
    for item in args.trace:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--trace {item!r}: expected NAME=path.csv")
        traces[name] = path
    run_dir = retime(args.run_dir, traces, args.topo, network=[o for o in args.overrides if o.strip()])
    print(f"report: {run_dir / 'report.html'}")
    return 0
