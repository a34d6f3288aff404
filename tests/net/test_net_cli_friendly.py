"""The light commands start fast (no torch), find traces by name, and say what they do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.cli import main
from testbed.net import load_topology

REPO = Path(__file__).resolve().parents[2]
LIGHT_COMMANDS = [
    ["topo", "show", "edge3level"],
    ["trace", "show", "ec2_us_eu"],
    ["bound", "theorem2", "--n", "8", "--N", "2", "--periods", "10", "2", "--gamma", "0.005", "--L", "1",
     "--sigma2", "1", "--eps2", "0.5"],
]


@pytest.mark.parametrize("argv", LIGHT_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_light_commands_never_import_torch(argv):
    code = ("import sys; from testbed.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_the_package_exports_load_on_first_use():
    code = ("import sys, testbed; assert 'torch' not in sys.modules; import testbed.simulate; "
            "assert callable(testbed.simulate) and testbed.simulate.__module__ == 'testbed.simulate'; "
            "assert testbed.AggregationTree.__name__ == 'AggregationTree'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr


def test_trace_show_takes_the_name_a_topology_gives(capsys):
    assert main(["trace", "show", "ec2_us_eu"]) == 0
    assert "ec2_us_eu.csv (rtt_ms): count=" in capsys.readouterr().out
    assert main(["trace", "show", "ec2_nowhere"]) == 2
    err = capsys.readouterr().err
    assert "unknown trace 'ec2_nowhere'" in err and "ec2_us_eu" in err  # lists the known names


def test_a_trace_next_to_the_users_topology_file_is_found(tmp_path, capsys):
    (tmp_path / "my_link.csv").write_text("t_s,rtt_ms\n0,30\n1,32\n2,31\n")
    graph = {"directed": False, "multigraph": False, "graph": {"name": "mine"},
             "nodes": [{"id": "cloud", "role": "cloud", "period": 4}, {"id": "w0", "role": "worker", "compute_ms": 1.0},
                       {"id": "w1", "role": "worker", "compute_ms": 1.0}],
             "links": [{"source": "cloud", "target": "w0", "rtt_trace": "my_link", "bandwidth_mbps": 100.0},
                       {"source": "cloud", "target": "w1", "rtt_trace": "ec2_us_eu", "bandwidth_mbps": 100.0}]}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(graph))
    topo = load_topology(path)
    assert Path(topo.traces["my_link"].source).parent == tmp_path  # next to the file
    assert Path(topo.traces["ec2_us_eu"].source).parent == REPO / "traces"  # shipped ones still found
    assert main(["topo", "show", str(path)]) == 0
    assert "my_link (rtt_ms, 3 rows)" in capsys.readouterr().out


def test_trace_record_states_its_interval_and_reports_progress(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:  # a listening port: connect probes succeed
        port = server.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "testbed", "trace", "record", f"127.0.0.1:{port}", "--count", "3",
                              "--interval-s", "0.01", "--out", str(tmp_path / "t.csv")],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "3 TCP handshake probes, one every 0.01 s" in out.stderr
    assert "probe 3/3: " in out.stderr and " ms" in out.stderr


@pytest.mark.parametrize("argv", LIGHT_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_closed_pipe_stops_the_command_quietly(argv):
    """`testbed topo show X | head -1`: the reader leaves early; no traceback, no error line."""
    proc = subprocess.Popen([sys.executable, "-m", "testbed", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # gone before the command writes its first line
    _, err = proc.communicate(timeout=120)
    assert err.decode() == "" and proc.returncode in (0, 1)
