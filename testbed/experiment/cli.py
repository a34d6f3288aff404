"""`testbed experiment`, `testbed config`, `testbed retime` and `testbed sweep`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from testbed.device import device_count, resolve_device
from testbed.experiment.config import PRESETS, ExperimentConfig, preset
from testbed.experiment.configfile import read_config_file
from testbed.experiment.sweep import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="train the configured algorithms on a topology and write a run folder + report")
    add_config_arguments(p)
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a killed run from its last checkpoints")
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

    w = sub.add_parser("sweep", help="a grid of configs, each point a run folder; run here (--jobs K) or on Slurm; "
                       "ends with one comparison report and a time-to-target CSV")
    add_config_arguments(w)
    w.add_argument("--grid", action="append", default=[], metavar="KEY=V1|V2",
                   help="a key and the values to try, separated by '|'; each value as --set takes it (commas "
                        "keep their meaning: 'algorithms=local:5,hsgd:50,5|local:10' is two values); repeatable")
    w.add_argument("--grid-file", type=Path, metavar="FILE", help="grid keys from a JSON or TOML file: key = [values]")
    w.add_argument("--out", type=Path, metavar="DIR",
                   help="the sweep folder (default: <reports>/sweeps/<preset>-<keys>-<hash>); the same command resumes it")
    w.add_argument("--jobs", type=int, default=None, metavar="K",
                   help="points run at once on this machine, each with cores // K torch threads (default 1)")
    w.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local (default): processes here; slurm: a submitit job array; submitit-local: submitit's "
                        "local executor (the Slurm path on this machine)")
    w.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit parameter: timeout_min (default 60), cpus_per_task (default 1: the torch threads of "
                        "each job), mem_gb, gpus_per_node, slurm_partition, slurm_array_parallelism, ...; repeatable")
    w.set_defaults(func=run_sweep_command)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The options that make an experiment's config, shared by experiment and sweep."""
    p.add_argument("--topo", help="topology name under topologies/ or a path to a topology file "
                   "(default: the preset's or config file's topology; the quick preset's is edge3level)")
    p.add_argument("--preset", help=f"one of {', '.join(PRESETS)} (default: quick)")
    p.add_argument("--config", type=Path, metavar="FILE", help="config keys from a JSON or TOML file (applied over the preset, under --set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable; lists comma-separated); `testbed config` lists every key")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where run folders go (default: reports/)")


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
    config, where = config_from_args(args)
    check_against_topology(config, where)
    run_dir = run_experiment(config, reports_root=args.reports, tag=args.preset, progress=not args.no_progress)
    print(f"report: {run_dir / 'report.html'}")
    return 0


def config_from_args(args: argparse.Namespace) -> tuple[ExperimentConfig, Callable[[str], str]]:
    """The config of --preset, --config, --set and --topo (in that order of precedence,
    last wins), and ``where(key)``: the key and where its value came from, for messages."""
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
        if key in set_keys:
            return f"--set {key}"
        return f"{args.config if key in from_file else f'--preset {args.preset}'}: {key}"

    return config, where


def run_sweep_command(args: argparse.Namespace) -> int:
    import importlib.util
    import sys
    import tempfile

    from testbed.cli import one_line
    from testbed.experiment.grid import parse_grid_args, read_grid_file
    from testbed.experiment.sweep import plan, run_sweep, submitit_executor, submitit_params

    if args.jobs is not None and args.executor != "local":
        raise ValueError(f"--jobs applies to --executor local; with {args.executor} the scheduler decides "
                         f"(--slurm slurm_array_parallelism=K caps a Slurm array)")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs: must be >= 1, got {args.jobs}")
    if args.slurm and args.executor == "local":
        raise ValueError("--slurm applies to --executor slurm or submitit-local")
    params = submitit_params(args.slurm) if args.executor != "local" else {}
    if args.executor != "local":
        if importlib.util.find_spec("submitit") is None:
            raise ValueError(f"--executor {args.executor} needs submitit: pip install 'hsgd-testbed[cluster]'")
        with tempfile.TemporaryDirectory() as scratch:  # submitit checks its parameters; nothing is written yet
            submitit_executor(Path(scratch), args.executor.removeprefix("submitit-"), params)
    base, where = config_from_args(args)
    axes = (read_grid_file(args.grid_file, base) if args.grid_file else []) + parse_grid_args(args.grid, base)
    given = {"topology": "--topo"} if args.topo else {}
    given.update({item.partition("=")[0].strip(): "--set" for item in args.overrides})
    clash = next((a for a in axes if a.key in given), None)
    if clash is not None:
        raise ValueError(f"{clash.where}: the key is also given by {given[clash.key]}; give it in one place")
    sweep = plan(base, axes, args.preset, args.reports, args.out)
    grid = {a.key: a.where for a in axes}
    for point in sweep.points:  # the checks that need the topology, before anything is written
        try:
            check_against_topology(point.config, lambda key: grid.get(key) or where(key))
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"sweep: point {point.name}: {one_line(err)}") from None
    try:
        report, table = run_sweep(sweep, args.executor, args.jobs or 1, params)
    except RuntimeError as err:
        print(f"testbed sweep: error: {err}", file=sys.stderr)
        return 1
    print(f"sweep: {sweep.folder}")
    print(f"time to target: {table}")
    print(f"report: {report}")
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
