"""The bad-input corpus: every file under tests/bad_inputs/ is refused the way a user sees it.

Each file is fed to the command line as its entry in ``expected.json`` says. A refusal is:
exit code 2, exactly one line on stderr that names the file (or, for an argument list, the
flag and key) and contains the expected text (the node, edge, row or key and the rule), no
traceback, no log lines, no run folder under ``--reports``, and nothing written anywhere
else: not in the case's own folder (no staged folder, no temporary file), not next to a run
folder handed in, not in the corpus or the repository. A few entries run in a
subprocess, exactly as typed in a shell; the rest call ``testbed.cli.main`` in-process,
which is the same code without paying for a Python + torch start each time.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.cli import main

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "bad_inputs"
MANIFEST_FILE = CORPUS / "expected.json"
NOT_CORPUS = {"expected.json", "README.md"}
MANIFEST: dict[str, dict] = json.loads(MANIFEST_FILE.read_text(encoding="utf-8"))
FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file() and p.name not in NOT_CORPUS)
# every experiment gets these first, so a file's own --set wins over them; 2 iterations keep
# a run short should an input ever get through
EXPERIMENT_ARGS = ["--no-progress", "--set", "iterations=2"]

# small valid topologies that hand one trace name, 'bad', to each kind of trace slot; a
# corpus trace is fed as `--set traces=bad=FILE`
_HOSTS = {
    "rtt_ms": ({"rtt_trace": "bad", "bandwidth_mbps": 10.0}, {"compute_ms": 1.0}),
    "mbps": ({"latency_ms": 1.0, "bandwidth_trace": "bad"}, {"compute_ms": 1.0}),
    "compute_ms": ({"latency_ms": 1.0, "bandwidth_mbps": 10.0}, {"compute_trace": "bad"}),
}


def _cases() -> list:
    cases = []
    for rel in FILES:
        feeds = MANIFEST.get(rel, {}).get("feed") or [None]  # no entry: one case that fails
        cases += [pytest.param(rel, k, id=f"{rel}[{k}]") for k in range(len(feeds))]
    return cases


# a topology with fixed link values and two workers, for the dataset cases
_TINY = {
    "directed": False, "multigraph": False, "graph": {"name": "host_tiny"},
    "nodes": [{"id": "cloud", "role": "cloud", "period": 2}, {"id": "w0", "role": "worker", "compute_ms": 1.0},
              {"id": "w1", "role": "worker", "compute_ms": 1.0}],
    "edges": [{"source": "cloud", "target": w, "latency_ms": 1.0, "bandwidth_mbps": 10.0} for w in ("w0", "w1")],
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished run folder; `runs/` cases are copies of it with one file replaced."""
    reports = tmp_path_factory.mktemp("finished")
    code = main(["experiment", "--topo", "star", "--reports", str(reports), "--no-progress", "--set", "iterations=4",
                 "--set", "eval_every=2", "--set", "seeds=0", "--set", "algorithms=local:2", "--set", "divergence_every=1"])
    assert code == 0
    return next((reports / "star").glob("2*"))


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("hosts")
    out = {}
    for kind, (link, worker) in _HOSTS.items():
        graph = {
            "directed": False, "multigraph": False, "graph": {"name": f"host_{kind}"},
            "nodes": [{"id": "cloud", "role": "cloud", "period": 2}, {"id": "w0", "role": "worker", **worker}],
            "edges": [{"source": "cloud", "target": "w0", **link}],
        }
        path = folder / f"host_{kind}.json"
        path.write_text(json.dumps(graph), encoding="utf-8")
        out[f"host_{kind}"] = str(path)
    (folder / "host_tiny.json").write_text(json.dumps(_TINY), encoding="utf-8")
    out["host_tiny"] = str(folder / "host_tiny.json")
    return out


def _case_inputs(rel: str, entry: dict, case: Path, finished_run: Path) -> dict[str, str]:
    """The placeholders a case may use, made inside its own folder: ``{leaf}`` a LEAF root whose
    train/ holds the corpus file, ``{run}`` a copy of a finished run with the corpus file in place
    of ``entry['replaces']``, ``{fifo}`` a named pipe (an input that would block forever)."""
    path = CORPUS / rel
    uses = entry["feed"][0] + " ".join(entry["feed"]) + (path.read_text(encoding="utf-8", errors="replace") if rel.startswith("args/") else "")
    inputs = {"file": str(path), "repo": str(REPO)}
    if "{leaf}" in uses:
        for split in ("train", "test"):  # a test split too: its absence would be a warning line
            (case / "leaf" / split).mkdir(parents=True)
            shutil.copy(path, case / "leaf" / split / path.name)
        inputs["leaf"] = str(case / "leaf")
    if "{run}" in uses:
        run = case / "runs" / "star" / finished_run.name
        shutil.copytree(finished_run, run)
        if entry.get("replaces"):
            shutil.copy(path, run / entry["replaces"])
        inputs["run"] = str(run)
    if "{fifo}" in uses:
        os.mkfifo(case / "fifo")
        inputs["fifo"] = str(case / "fifo")
    return inputs


def _argv(rel: str, feed: str, hosts: dict[str, str], inputs: dict[str, str], reports: Path) -> list[str]:
    """The command line of one feed: `{file}` is the corpus file, `{args}` its lines (which
    may use the placeholders too)."""
    path = CORPUS / rel
    argv: list[str] = []
    for token in shlex.split(feed):
        if token == "{args}":
            argv += [line.format(**inputs, **hosts) for line in path.read_text(encoding="utf-8").splitlines() if line]
        else:
            argv.append(token.format(**inputs, **hosts))
    if argv[0] == "experiment" and "--resume" not in argv:
        argv[1:1] = ["--reports", str(reports), *EXPERIMENT_ARGS]
    return argv


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every path under the roots, with its size and modification time."""
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            st = p.lstat()
            out[str(p)] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def _run_subprocess(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "testbed", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def _run_in_process(argv: list[str], capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    out, err = capsys.readouterr()
    # the CLI logs INFO to stderr: any record here would be one more line there
    err += "".join(f"{r.levelname}: {r.getMessage()}\n" for r in caplog.records if r.levelno >= logging.INFO)
    return code, out, err


def test_manifest_and_corpus_agree():
    """Every entry has its file (the other direction fails per file, below), and the corpus
    keeps its size and its categories."""
    stale = sorted(set(MANIFEST) - set(FILES))
    assert not stale, f"expected.json lists files that are not in {CORPUS}: {stale}"
    assert len(FILES) >= 198  # 138 before issue #13, which added at least 60
    kinds = {rel.split("/")[0] for rel in FILES}
    assert {"topologies", "traces", "configs", "args", "data", "leaf", "runs"} <= kinds


@pytest.mark.parametrize("rel, k", _cases())
def test_bad_input_is_refused(rel: str, k: int, hosts, finished_run, tmp_path, capsys, caplog, monkeypatch):
    entry = MANIFEST.get(rel)
    if entry is None:
        pytest.fail(f"{rel}: no entry in {MANIFEST_FILE.name}; add its feed and the text its refusal must contain")
    case = tmp_path / "case"
    case.mkdir()
    monkeypatch.chdir(case)  # a relative path written by mistake lands here, and is seen
    reports = case / "reports"
    reports.mkdir()
    inputs = _case_inputs(rel, entry, case, finished_run)
    argv = _argv(rel, entry["feed"][k], hosts, inputs, reports)
    watched = (case, CORPUS, Path(hosts["host_tiny"]).parent, finished_run.parent.parent)
    before = _snapshot(*watched)
    if entry.get("subprocess") and k == 0:
        code, out, err = _run_subprocess(argv, case)
    else:
        code, out, err = _run_in_process(argv, capsys, caplog)
    after = _snapshot(*watched)
    shown = f"\n$ testbed {shlex.join(argv)}\nexit {code}\nstdout: {out!r}\nstderr: {err!r}"

    assert "Traceback" not in out + err, shown
    assert code == 2, shown
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr must be exactly one line{shown}"
    assert lines[0].startswith(f"testbed {argv[0]}: error: "), shown
    name = entry.get("names", Path(rel).name)
    assert name in lines[0], f"the message must name {name!r}{shown}"
    assert entry["expect"] in lines[0], f"the message must contain {entry['expect']!r}{shown}"
    assert list(reports.iterdir()) == [], f"a refused input left a run folder behind{shown}"
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert not changed, f"a refused input wrote {changed}{shown}"
