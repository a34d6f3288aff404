"""Measure a real RTT trace over TCP, so users can model their own network.

Two probes:

* ``connect``: time the TCP handshake (``connect()`` returns after SYN / SYN-ACK, one
  round trip), then close. Works against any listening TCP port.
* ``echo``: one connection; send a small payload and time until it comes back. Needs an
  echo service (e.g. port 7, or ``socat TCP-LISTEN:7000,fork EXEC:cat``).

This is the one place the host clock is read: it measures a real network.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable

import numpy as np

from .traces import Trace

log = logging.getLogger(__name__)
MODES = ("connect", "echo")


def parse_host_port(text: str) -> tuple[str, int]:
    """'host:port' or '[v6addr]:port' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected HOST:PORT (e.g. 127.0.0.1:7000 or [::1]:7000)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: port must be an integer in 1..65535, got {port!r}")
    return host, int(port)


def record_rtt(
    host: str,
    port: int,
    *,
    count: int,
    interval_s: float = 1.0,
    mode: str = "connect",
    timeout_s: float = 5.0,
    payload_bytes: int = 32,
    sleep: Callable[[float], None] = time.sleep,
    on_probe: Callable[[int, float | None], None] | None = None,
) -> Trace:
    """``count`` RTT probes to host:port, ``interval_s`` apart, as a ``t_s,rtt_ms`` trace.
    Failed probes are logged and skipped; if none succeeds the call fails.
    ``on_probe(k, rtt_ms)`` after probe k (1-based; rtt_ms None if it failed): progress."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    if not interval_s >= 0 or not timeout_s > 0:
        raise ValueError(f"interval_s must be >= 0 and timeout_s > 0, got {interval_s}, {timeout_s}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    where = f"{host}:{port}"
    t_s: list[float] = []
    rtt_ms: list[float] = []
    sock = _connect(host, port, timeout_s, where) if mode == "echo" else None
    payload = b"\xa5" * payload_bytes
    start = time.perf_counter()
    try:
        for k in range(count):
            if k:
                sleep(interval_s)
            t0 = time.perf_counter()
            try:
                if sock is None:
                    _connect(host, port, timeout_s, where).close()
                else:
                    sock.sendall(payload)
                    got = 0
                    while got < payload_bytes:
                        chunk = sock.recv(payload_bytes - got)
                        if not chunk:
                            raise ConnectionError("the echo server closed the connection")
                        got += len(chunk)
            except (OSError, ValueError) as err:
                log.warning("probe %d to %s failed: %s", k + 1, where, err)
                if sock is not None:  # an echo stream is out of step after a failure
                    sock.close()
                    sock = _connect(host, port, timeout_s, where)
                if on_probe is not None:
                    on_probe(k + 1, None)
                continue
            t1 = time.perf_counter()
            t_s.append(t0 - start)
            rtt_ms.append((t1 - t0) * 1e3)
            if on_probe is not None:
                on_probe(k + 1, rtt_ms[-1])
    finally:
        if sock is not None:
            sock.close()
    if not rtt_ms:
        raise ValueError(f"{where}: all {count} probes failed; is a TCP server listening there?")
    log.info("%s: %d of %d probes answered", where, len(rtt_ms), count)
    return Trace(f"{host}_{port}", "rtt_ms", np.array(t_s), np.array(rtt_ms), source=f"tcp-{mode}://{where}")


def _connect(host: str, port: int, timeout_s: float, where: str) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as err:
        raise ValueError(f"{where}: cannot connect: {err}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on tiny probes
    return sock
