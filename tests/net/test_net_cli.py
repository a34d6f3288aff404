"""`testbed trace ...` / `testbed topo ...`, and RTT recording against a loopback echo server."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading

import pytest

from testbed.cli import main
from testbed.net import load_topology, load_trace
from testbed.net.record import parse_host_port, record_rtt


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_server():
    """An echo server on 127.0.0.1 (an ephemeral port), for the test's duration."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", ["connect", "echo"])
def test_record_rtt_against_loopback(echo_server, mode):
    host, port = echo_server
    trace = record_rtt(host, port, count=5, interval_s=0.0, mode=mode)
    assert len(trace) == 5 and trace.column == "rtt_ms"
    assert (trace.values > 0).all() and (trace.values < 1000).all()  # loopback: well under a second
    assert (trace.t_s[1:] >= trace.t_s[:-1]).all()


def test_record_refusals(echo_server):
    host, port = echo_server
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        record_rtt(host, port, count=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        record_rtt(host, port, count=1, mode="icmp")
    for bad in ("localhost", "host:", ":80", "h:99999", "h:x"):
        with pytest.raises(ValueError, match="HOST:PORT|port must be"):
            parse_host_port(bad)
    assert parse_host_port("[::1]:7000") == ("::1", 7000)


def test_record_fails_clearly_when_nothing_listens():
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match=f"127.0.0.1:{port}: all 2 probes failed"):
        record_rtt("127.0.0.1", port, count=2, interval_s=0.0, timeout_s=1.0)


def test_cli_trace_record_then_show(echo_server, tmp_path, capsys):
    host, port = echo_server
    out = tmp_path / "mine.csv"
    assert main(["trace", "record", f"{host}:{port}", "--count", "4", "--interval-s", "0", "--mode", "echo",
                 "--out", str(out)]) == 0
    assert "wrote 4 samples" in capsys.readouterr().out
    assert len(load_trace(out)) == 4
    assert main(["trace", "show", str(out)]) == 0
    line = capsys.readouterr().out
    for key in ("count=4", "min=", "p50=", "p90=", "p99=", "max="):
        assert key in line


def test_cli_trace_record_in_a_subprocess(echo_server, tmp_path):
    host, port = echo_server
    out = tmp_path / "sub.csv"
    subprocess.run([sys.executable, "-m", "testbed", "trace", "record", f"{host}:{port}", "--count", "3",
                    "--interval-s", "0", "--out", str(out)], check=True, timeout=60, capture_output=True)
    assert len(load_trace(out)) == 3


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,rtt_ms\n0,-1\n")
    assert main(["trace", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 1 (line 2)" in err and str(bad) in err
    assert main(["topo", "show", "no_such_topology"]) == 2
    assert "known topologies" in capsys.readouterr().err
    assert main(["trace", "record", "nowhere", "--count", "1"]) == 2


def test_cli_topo_show(capsys):
    assert main(["topo", "show", "edge3level", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["server_levels"] == 3 and summary["nodes"]["worker"] == 24
    assert main(["topo", "show", "edge3level"]) == 0
    text = capsys.readouterr().out
    assert "24 worker" in text and "periods, top first: 40 | 10, 10, 10 | 2, 2, 2, 2, 2, 2" in text


def test_cli_trace_import_both_formats(tmp_path, capsys):
    matrix = tmp_path / "m.json"
    matrix.write_text(json.dumps({"data": {"a": {"b": 20.0}}}))
    assert main(["trace", "import", str(matrix), "--out-dir", str(tmp_path / "out"), "--samples", "50"]) == 0
    assert len(load_trace(tmp_path / "out" / "a__b.csv")) == 50
    table = tmp_path / "p.csv"
    table.write_text("source,destination,timestamp,min,avg,max,mdev\nx,y,0,1,2,3,0\nx,y,1,1,2.5,3,0\n")
    assert main(["trace", "import", str(table), "--out-dir", str(tmp_path / "out")]) == 0
    assert load_trace(tmp_path / "out" / "x__y.csv").values.tolist() == [2.0, 2.5]


def test_cli_topo_import_zoo(tmp_path, capsys):
    from testbed.net.topology import DEFAULT_TOPOLOGY_DIR

    out = tmp_path / "usb.json"
    assert main(["topo", "import-zoo", str(DEFAULT_TOPOLOGY_DIR / "zoo" / "usbackbone.graphml"),
                 "--cloud", "Chicago", "--servers", "Seattle,New York", "--out", str(out)]) == 0
    topo = load_topology(out)
    assert topo.n_workers == 4 and topo.periods == [[20], [5, 5]]
