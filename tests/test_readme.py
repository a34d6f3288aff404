"""The README runs: every command of its fenced ``sh`` blocks, typed as a user would, and
its library example, each on the smoke budget (``TESTBED_SMOKE=1``: 10 iterations, one
seed), in a scratch folder that looks like a checkout with ``make install`` done (its
``.venv/bin`` holds wrappers around this interpreter), so ``reports/`` stays clean.

Commands run in README order (the re-time and the resume use the runs made before them).
About two minutes on one core; the paper preset's command trains VGG-11 on CIFAR-10 and
takes minutes even on the smoke budget, so it alone is marked slow.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Commands the test does not run, and why (the text before any comment, as in the README).
NOT_RUN = {
    "make test": "runs this very suite (it would recurse); tests/test_make_targets.py checks its wiring",
    "make test-slow": "runs the slow tests, tens of minutes; CI runs them on their own",
    "make sweep TOPO=edge3level 'GRID=grouping=group-iid|group-noniid seeds=0|1|2' EXECUTOR=slurm "
    "'SLURM=timeout_min=120 cpus_per_task=4 slurm_partition=cpu'":
        "needs a Slurm cluster; the EXECUTOR=submitit-local line runs the same submission code here",
}
SLOW = {"make experiment PRESET=paper": "VGG-11 on CIFAR-10: minutes on a CPU even on the smoke budget"}
# README placeholders for files a user has and a checkout does not: (file under the shared data, reason to skip)
PLACEHOLDERS = {"/path/to/cifar10.npz": ("cifar10/cifar10.npz", "needs the CIFAR-10 npz of the shared data")}


def fenced_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def readme_commands() -> list[str]:
    return [line.strip() for block in fenced_blocks("sh") for line in block.splitlines() if line.strip()]


def command_part(line: str) -> str:
    """The command without its trailing comment."""
    return shlex.join(shlex.split(line, comments=True))


def shared_data() -> Path:
    env = os.environ.get("TESTBED_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _case(line: str):
    command = command_part(line)
    marks = [pytest.mark.slow for prefix in SLOW if command.startswith(prefix)]
    return pytest.param(line, marks=marks, id=command[:80])


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A scratch folder with the repo's Makefile, topologies, traces and bench, and a
    `.venv` whose testbed/python/pytest run this interpreter on this source tree."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path_factory.mktemp("checkout")
    for name in ("Makefile", "pyproject.toml", "topologies", "traces", "bench"):
        (root / name).symlink_to(REPO / name)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, run in (("python", ""), ("testbed", "-m testbed"), ("pytest", "-m pytest"), ("torchrun", "-m torch.distributed.run")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" {run} "$@"\n')
        (bin_dir / name).chmod(0o755)
    (root / ".venv" / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    return root


def run_in(checkout: Path, command: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TESTBED_SMOKE": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_readme_has_commands_to_run():
    commands = [command_part(line) for line in readme_commands()]
    assert commands[:2] == ["make experiment TOPO=edge3level", "make test"]  # the first two lines a user types
    assert any(c.startswith("make retime") for c in commands) and len(fenced_blocks("python")) == 1
    for skipped in NOT_RUN:
        assert skipped in commands, f"NOT_RUN lists {skipped!r}, no longer in the README"


@pytest.mark.parametrize("line", [_case(line) for line in readme_commands()])
def test_readme_command(checkout, line):
    command = command_part(line)
    if command in NOT_RUN:
        pytest.skip(NOT_RUN[command])
    for placeholder, (relative, reason) in PLACEHOLDERS.items():
        if placeholder in line:
            if not (shared_data() / relative).is_file():
                pytest.skip(f"{reason} ({shared_data() / relative})")
            line = line.replace(placeholder, str(shared_data() / relative))
    out = run_in(checkout, line)
    assert out.returncode == 0, f"{line}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr
    if command.startswith(("make experiment", "make retime")):
        report = next(l for l in out.stdout.splitlines() if l.startswith("report: ")).removeprefix("report: ")
        assert (checkout / report).is_file()
    if command.startswith("make experiment TOPO="):  # the topology asked for, on the smoke budget
        topology = Path(shlex.split(command)[2].removeprefix("TOPO=")).stem
        runs = sorted((checkout / "reports" / topology).glob("*-quick-*"))
        assert runs and '"iterations": 10' in (runs[-1] / "config.json").read_text()


def test_readme_library_example_prints_simulated_wall_clock_and_is_reproducible(checkout):
    (example,) = fenced_blocks("python")
    (checkout / "example.py").write_text(example)
    first, second = (run_in(checkout, ".venv/bin/python example.py") for _ in range(2))
    assert first.returncode == 0, first.stderr[-3000:]
    table = first.stdout.splitlines()
    assert table[0].split() == ["iteration", "sim_time_s", "comm_s", "test_acc"]
    assert [int(line.split()[0]) for line in table[1:4]] == [320, 360, 400]
    assert float(table[3].split()[1]) > 0  # simulated seconds
    run_folder = re.compile(r"\S*reports/star/\S+")
    assert run_folder.search(first.stdout), first.stdout
    assert run_folder.sub("RUN", first.stdout) == run_folder.sub("RUN", second.stdout)  # same seed, same numbers
