"""Golden runs: every shipped preset on a small budget, kept so a refactor can be shown
byte-identical (metrics.csv, events.csv, checkpoints; schedule.json is kept to be read).

    python bench/golden_runs.py --out /work/golden15/base          # at the starting commit
    python bench/golden_runs.py --out /work/golden15/sched         # after the change
    python bench/golden_runs.py --compare /work/golden15/base /work/golden15/sched

Every config key is given explicitly (``--preset quick`` plus a complete JSON config), so
a preset whose defaults change later does not change these runs. Checkpoints are deleted
when a pair finishes, so each run's last checkpoint is hashed just before that (its SHA-256
kept in checkpoints.sha256: FEMNIST's are 600 MB each).
Each run takes about a minute on one CPU core.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DATA = Path(os.environ.get("TESTBED_SHARED_DATA", "/work/shared/data"))
KEPT = ("metrics.csv", "events.csv", "schedule.json")
COMPARED = (*KEPT, "checkpoints.sha256")

# every key the starting commit knows, at its quick-preset value
BASE = {
    "topology": "edge3level", "algorithms": ["auto"], "seeds": [0], "dataset": "synthetic", "data_root": "",
    "partition": "natural", "shards_per_worker": 2, "dirichlet_alpha": 0.5, "synthetic_alpha": 1.0,
    "synthetic_beta": 1.0, "grouping": "as-given", "model": "mlp", "iterations": 120, "lr": 0.05, "batch_size": 16,
    "momentum": 0.0, "weight_decay": 0.0, "weighting": "uniform", "participation": 1.0, "eval_every": 20,
    "target_acc": 0.8, "compute_ms": -1.0, "model_bytes_per_param": 4, "priced_params": 0, "window_kib": 4096,
    "tcp_model": "tcp", "tcp_idle": "restart", "tcp_initial_window": 10, "tcp_mss_bytes": 1448,
    "tcp_header_bytes": 52, "tcp_rto_min_ms": 200.0, "events": "all", "traces": [], "device": "cpu",
    "engine": "batched", "precision": "fp32", "threads": 1, "deterministic": False, "checkpoint_every": 40,
    "divergence_every": 5,
}

RUNS: dict[str, dict] = {
    # quick: edge3level, every 'auto' algorithm, full participation
    "quick_edge3level": {},
    # quick on the star with partial participation (the participation stream and non-participants)
    "quick_star_partial": {"topology": "star", "participation": 0.5, "algorithms": ["local:5", "local:20"]},
    # paper: paper_table2 priced as ImageNet VGG-11, trained as a small CNN on CIFAR-10
    "paper": {
        "topology": "paper_table2", "dataset": "npz", "data_root": str(DATA / "cifar10" / "cifar10.npz"),
        "partition": "shards", "shards_per_worker": 1, "model": "cifar_cnn", "priced_params": 132_863_336,
        "window_kib": 1024, "algorithms": ["local:5", "local:50", "hsgd:50,5"], "iterations": 100, "batch_size": 32,
        "eval_every": 50, "target_acc": 0.5, "compute_ms": 4.0, "divergence_every": 0, "checkpoint_every": 50,
    },
    # femnist: LEAF FEMNIST by writer, the LEAF CNN (10 workers: the machine's memory is shared)
    "femnist": {
        "topology": "paper2level", "dataset": "femnist", "data_root": str(DATA / "femnist"), "model": "femnist_cnn", "iterations": 60,
        "batch_size": 20, "eval_every": 20, "target_acc": 0.6, "divergence_every": 0, "checkpoint_every": 20,
        "algorithms": ["hsgd"],
    },
}


def run_one(name: str, out: Path) -> None:
    """One golden run in this process (called in a fresh subprocess per run)."""
    from testbed.cli import main

    out.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, str] = {}
    unlink = Path.unlink

    def keep_checkpoint(path: Path, missing_ok: bool = False) -> None:  # the runner deletes it when a pair ends
        if path.parent.name == "checkpoints" and path.suffix == ".pt" and path.exists():
            with open(path, "rb") as f:
                hashes[path.name] = hashlib.file_digest(f, "sha256").hexdigest()
        unlink(path, missing_ok=missing_ok)

    Path.unlink = keep_checkpoint  # type: ignore[method-assign]
    config = out / "config_in.json"
    config.write_text(json.dumps({**BASE, **RUNS[name]}, indent=1) + "\n")
    reports = out / "reports"
    rc = main(["experiment", "--preset", "quick", "--config", str(config), "--reports", str(reports), "--no-progress"])
    if rc:
        raise SystemExit(f"{name}: testbed experiment exited {rc}")
    (run_dir,) = {p.parent.resolve() for p in reports.glob("*/*/metrics.csv")}  # the folder and its `latest` link
    for file in KEPT:
        shutil.copyfile(run_dir / file, out / file)
    (out / "checkpoints.sha256").write_text("".join(f"{h}  {n}\n" for n, h in sorted(hashes.items())))
    shutil.rmtree(reports)  # the report and config.json name the host and commit: not compared


def compare(a: Path, b: Path) -> int:
    """Print identical / differing / missing per kept file; 1 when a byte-compared file differs."""
    bad = 0
    for run in sorted(RUNS):
        for rel in (f"{run}/{f}" for f in COMPARED):
            if not (a / rel).exists() or not (b / rel).exists():
                verdict = "missing in " + (str(a) if not (a / rel).exists() else str(b))
            else:
                verdict = "identical" if filecmp.cmp(a / rel, b / rel, shallow=False) else "DIFFERING"
            by_design = rel.endswith("schedule.json")  # its format is allowed to change, not its content
            if by_design and verdict == "DIFFERING":
                same = _schedule_content(a / rel) == _schedule_content(b / rel)
                verdict = "format differs, same participants and drops" if same else "DIFFERING participants or drops"
                by_design = same
            bad += verdict != "identical" and not by_design
            print(f"{rel:60s} {verdict}")
    return int(bad > 0)


def _schedule_content(path: Path) -> dict:
    """Per pair: participants per round start and the drops, whichever format wrote the file."""
    from testbed.experiment.rundir import read_schedules

    return {pair: ({int(r["start"]): sorted(r["participants"]) for r in s["rounds"]}, s.get("drops", []))
            for pair, s in read_schedules(path).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write every golden run under this folder")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("DIR1", "DIR2"))
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="run only these")
    parser.add_argument("--run-one", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(args.run_one[0], Path(args.run_one[1]))
        return 0
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        parser.error("give --out DIR or --compare DIR1 DIR2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in args.only or RUNS:
        target = args.out / name
        if target.exists():
            shutil.rmtree(target)
        print(f"{name} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--run-one", name, str(target)], check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
