"""The bad-input corpus: every file under tests/bad_inputs/ is refused the way a user sees it.

Each file is fed to the command line as its entry in ``expected.json`` says. A refusal is:
exit code 2, exactly one line on stderr that names the file (or, for an argument list, the
flag and key) and contains the expected text (the node, edge, row or key and the rule), no
traceback, no log lines, and no run folder under ``--reports``. A few entries run in a
subprocess, exactly as typed in a shell; the rest call ``testbed.cli.main`` in-process,
which is the same code without paying for a Python + torch start each time.
"""

from __future__ import annotations

import json
import logging
import shlex
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
    return out


def _argv(rel: str, feed: str, hosts: dict[str, str], reports: Path) -> list[str]:
    """The command line of one feed: `{file}` is the corpus file, `{args}` its lines."""
    path = CORPUS / rel
    argv: list[str] = []
    for token in shlex.split(feed):
        if token == "{args}":
            argv += [line for line in path.read_text(encoding="utf-8").splitlines() if line]
        else:
            argv.append(token.format(file=path, **hosts))
    if argv[0] == "experiment":
        argv[1:1] = ["--reports", str(reports), *EXPERIMENT_ARGS]
    return argv


def _run_subprocess(argv: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "testbed", *argv], cwd=REPO, capture_output=True, text=True,
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
    assert len(FILES) >= 45
    kinds = {rel.split("/")[0] for rel in FILES}
    assert {"topologies", "traces", "configs"} <= kinds


@pytest.mark.parametrize("rel, k", _cases())
def test_bad_input_is_refused(rel: str, k: int, hosts, tmp_path, capsys, caplog):
    entry = MANIFEST.get(rel)
    if entry is None:
        pytest.fail(f"{rel}: no entry in {MANIFEST_FILE.name}; add its feed and the text its refusal must contain")
    reports = tmp_path / "reports"
    reports.mkdir()
    argv = _argv(rel, entry["feed"][k], hosts, reports)
    if entry.get("subprocess") and k == 0:
        code, out, err = _run_subprocess(argv)
    else:
        code, out, err = _run_in_process(argv, capsys, caplog)
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
