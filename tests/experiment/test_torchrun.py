"""`torchrun -m testbed experiment`: 2 gloo processes write the run folder one process
writes; a killed rank is named in one line, and --resume finishes the run."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from testbed.experiment.runner import resume_experiment

SETTINGS = ["iterations=48", "eval_every=8", "checkpoint_every=16", "participation=0.5", "momentum=0.5",
            "weighting=samples", "algorithms=hsgd,local:4", "divergence_every=0", "seeds=0", "device=cpu", "batch_size=8",
            "budget_s=4.6"]  # local SGD spends the budget at about iteration 43 of 48: rank 0 tells rank 1 to stop
KILLER = Path(__file__).with_name("killrank.py")
# numbers summed in another order on 2 ranks; every other column must be equal
SUMMED = ["worker_loss", "global_train_loss", "test_loss"]


def uneven_topology(path: Path) -> Path:
    """Three server levels over 11 workers in unequal groups (3, 5 | 1, 2): with 2 ranks the
    cut falls inside the 5-worker edge group, so it and its region span both ranks."""
    nodes, edges = [{"id": "cloud", "role": "cloud", "period": 8}], []
    w = 0
    for region, sizes in {"r0": [3, 5], "r1": [1, 2]}.items():
        nodes.append({"id": region, "role": "server", "period": 4, "tier": "regional"})
        edges.append({"source": "cloud", "target": region, "latency_ms": 20.0, "bandwidth_mbps": 100.0})
        for e, size in enumerate(sizes):
            edge = f"{region}e{e}"
            nodes.append({"id": edge, "role": "server", "period": 2, "tier": "edge"})
            edges.append({"source": region, "target": edge, "latency_ms": 5.0, "bandwidth_mbps": 200.0})
            for _ in range(size):
                nodes.append({"id": f"w{w}", "role": "worker", "compute_ms": 3.0 + w})
                edges.append({"source": edge, "target": f"w{w}", "latency_ms": 2.0, "bandwidth_mbps": 50.0})
                w += 1
    graph = {"directed": False, "multigraph": False, "graph": {"name": "uneven3"}, "nodes": nodes, "edges": edges}
    path.write_text(json.dumps(graph))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def experiment_args(topology: Path, reports: Path) -> list:
    return ["experiment", "--topo", topology, "--reports", reports, "--no-progress", *[a for s in SETTINGS for a in ("--set", s)]]


def run_folder(reports: Path) -> Path:
    return next((reports / "uneven3").glob("2*"))


def assert_same_folder(got: Path, want: Path) -> None:
    events = [pd.read_csv(folder / "events.csv") for folder in (got, want)]
    pd.testing.assert_frame_equal(*events, check_exact=True)
    metrics = [pd.read_csv(folder / "metrics.csv") for folder in (got, want)]
    assert set(SUMMED) <= set(metrics[1].columns)
    exact = [c for c in metrics[1].columns if c not in SUMMED]
    pd.testing.assert_frame_equal(metrics[0][exact], metrics[1][exact], check_exact=True)
    pd.testing.assert_frame_equal(metrics[0][SUMMED], metrics[1][SUMMED], check_exact=False, rtol=1e-6)
    assert (got / "schedule.json").read_text() == (want / "schedule.json").read_text()
    assert not list((got / "checkpoints").glob("*.pt")), "finished pairs leave no checkpoint slices"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("torchrun")
    topology = uneven_topology(root / "uneven3.json")
    done = subprocess.run([sys.executable, "-m", "testbed", *map(str, experiment_args(topology, root / "one"))],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    stops = pd.read_csv(run_folder(root / "one") / "metrics.csv").groupby("algorithm")["stop"].last()
    assert stops.fillna("").to_dict() == {"H-SGD (8,4,2)": "", "local SGD P=4": "budget"}  # the budget stops one
    return topology, run_folder(root / "one")


def test_two_processes_write_the_run_folder_of_one(one_process, tmp_path):
    topology, reference = one_process
    done = torchrun("-m", "testbed", *experiment_args(topology, tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("report: ") == 1  # rank 0 speaks for the run
    assert_same_folder(run_folder(tmp_path), reference)


def test_a_killed_rank_is_named_and_the_run_resumes(one_process, tmp_path):
    topology, reference = one_process
    # rank 1 dies in the second pair, after its first checkpoint (iteration 16 of 48)
    killed = torchrun(KILLER, *experiment_args(topology, tmp_path), env={**os.environ, "KILL_RANK": "1", "KILL_STEP": "70"})
    assert killed.returncode != 0
    folder = run_folder(tmp_path)
    lines = [line for line in killed.stderr.splitlines() if line.startswith("testbed experiment: error:")]
    assert lines == [f"testbed experiment: error: rank 0 of 2: lost rank 1 (" + lines[0].split("(", 1)[1]], killed.stderr
    assert lines[0].endswith(f"continue with: torchrun --nproc-per-node 2 -m testbed experiment --resume {folder}")
    assert sorted(p.name for p in (folder / "checkpoints").glob("*.pt")) == ["local_4-seed0.pt", "local_4-seed0.rank1.pt"]

    # one process cannot continue what two wrote
    with pytest.raises(ValueError, match=r"written by 2 process\(es\), this run has 1; resume with the same number: "
                       r"torchrun --nproc-per-node 2 -m testbed experiment --resume RUN"):
        resume_experiment(folder, progress=False)

    resumed = torchrun("-m", "testbed", "experiment", "--resume", folder, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after iteration 16" in resumed.stderr
    assert_same_folder(folder, reference)
