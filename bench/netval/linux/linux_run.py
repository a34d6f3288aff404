"""Run the netval `single` / `shared` scenarios on the real Linux TCP stack (network namespaces).

    python3 bench/netval/linux/linux_run.py                      # single, then shared (resumes)
    python3 bench/netval/linux/linux_run.py --only single --limit 3
    python3 bench/netval/linux/linux_run.py --match n10/10MB --rerun
    python3 bench/netval/linux/linux_run.py --selftest           # emulation checks (rate, RTT)
    python3 bench/netval/linux/linux_run.py --list

Needs root (ip netns, /dev/net/tun, setns). Every scenario dict comes from
../reference.json (the ns-3 reference), with that entry's `queues_pkts`. One network
namespace per node (prefix `nvl<pid>n`), every link emulated by `build/wire` (wire.c, built
here with gcc): a userspace drop-tail queue + serialiser + constant delay between two TUN
devices, because this kernel has no netem. Each transfer is a real TCP connection between
sockets created inside the namespaces (setns per thread), CUBIC, established before the
timed phase. See README.md. Results go to linux_reference.json (atomic rewrite after each
scenario; scenarios already there with the same scenario dict and settings are skipped).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import hashlib
import json
import os
import platform
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from ns3run import write_atomic  # noqa: E402  (one atomic JSON writer for both references)
from scenarios import tree_path  # noqa: E402
NETVAL = HERE.parent
REFERENCE = NETVAL / "reference.json"
OUT = HERE / "linux_reference.json"
BUILD = HERE / "build"
WIRE_SRC = HERE / "wire.c"
WIRE = BUILD / "wire"
FORMAT = 1

CLONE_NEWNET = 0x40000000
TCP_INFO, TCP_WINDOW_CLAMP, TCP_CONGESTION = 11, 10, 13
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
BUF_BYTES = 4 * 1024 * 1024
# Receiver: this kernel recomputes window_clamp from sk_rcvbuf x scaling_ratio once data arrives
# (the ratio of payload to skb truesize, 141/256 for these TUN-received segments), which
# overrides TCP_WINDOW_CLAMP. SO_RCVBUFFORCE(RCV_BUF_BYTES) -> sk_rcvbuf = 2 x 3,810,000 =
# 7,620,000 B -> max window 7,620,000 x 141 / 256 = 4,196,953 B = 4 MiB + 0.06 %.
RCV_BUF_BYTES = 3_810_000
PORT0 = 5001
NS_PREFIX = "nvl"

NS_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
    "net.ipv4.tcp_no_metrics_save": "1",
    "net.ipv4.tcp_wmem": "4096 16384 4194304",
    "net.ipv4.tcp_rmem": "4096 131072 6291456",
    "net.ipv4.tcp_sack": "1",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_window_scaling": "1",
    "net.ipv4.tcp_ecn": "2",
    "net.ipv4.tcp_recovery": "1",
    "net.ipv4.tcp_early_retrans": "3",
}
# recorded, not set (kernel defaults in the fresh namespaces)
NS_SYSCTLS_READ = ["net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_frto", "net.ipv4.tcp_reordering",
                   "net.ipv4.tcp_limit_output_bytes", "net.ipv4.tcp_autocorking", "net.ipv4.tcp_thin_linear_timeouts",
                   "net.ipv4.tcp_mtu_probing", "net.ipv4.tcp_notsent_lowat", "net.ipv4.tcp_pacing_ss_ratio",
                   "net.ipv4.tcp_pacing_ca_ratio", "net.ipv4.tcp_min_tso_segs", "net.ipv4.tcp_rto_min_us",
                   "net.ipv4.tcp_rto_max_ms", "net.core.netdev_max_backlog"]

SETTINGS = {
    "congestion_control": "cubic, set with setsockopt TCP_CONGESTION on every socket (listener, client) and "
                          "checked after connect. The namespaces inherit the host default bbr, and setting their "
                          "net.ipv4.tcp_congestion_control to cubic is refused (EPERM: cubic is not in the host's "
                          "tcp_allowed_congestion_control 'reno bbr'; root may still pick it per socket). The host "
                          "settings are untouched.",
    "ns_sysctls": NS_SYSCTLS,
    "initial_cwnd_segments": "10 (Linux default, no route initcwnd)",
    "mss": "1448 (tun MTU 1500, 20 IP + 20 TCP + 12 timestamp option)",
    "send_buffer": "SO_SNDBUFFORCE 4 MiB on the sender (the kernel doubles it: sk_sndbuf = 8 MiB of skb memory, "
                   "~5 MB of payload; autotuning off for this socket)",
    "receive_buffer": "SO_RCVBUFFORCE 3,810,000 on the listener (doubled: sk_rcvbuf = 7,620,000 B, autotuning "
                      "off) plus TCP_WINDOW_CLAMP 4194304. This kernel resets the clamp to sk_rcvbuf x "
                      "scaling_ratio (141/256 here) when data arrives, so the buffer is sized for a maximum "
                      "advertised window of 4,196,953 B = ns-3's 4 MiB RcvBufSize (with a 4 MiB SO_RCVBUF the "
                      "window was 4,627,840 B); it opens from ~10 segments as Linux grows rcv_ssthresh. "
                      "tcp_info.snd_wnd of every sender is recorded",
    "tcp_nodelay": 1,
    "tcp_metrics": "net.ipv4.tcp_no_metrics_save=1 and `ip tcp_metrics flush` before every repetition, so no "
                   "cached ssthresh/RTT carries from one repetition to the next",
    "offloads": "none: TUN devices without IFF_VNET_HDR have no TSO/GSO/GRO/checksum offload; every segment is "
                "one 1500 B packet",
    "link_emulation": "build/wire (wire.c): per link direction a drop-tail queue (waiting packets <= Q + 1, "
                      "Q = reference.json queues_pkts, as ns-3's FifoQueueDisc Q + 1-packet device queue), a "
                      "serialiser at the direction's rate counting ip_len + 2 B (= ns-3's 1502 B wire packet), "
                      "then the one-way delay; between a TUN device in the child namespace and one in the parent "
                      "namespace; SCHED_FIFO priority 20 when allowed",
    "why_not_netem": "CONFIG_NET_SCH_NETEM is not set in this kernel (no netem, no fq/etf, no modules)",
    "addressing": "node i has 10.200.x.y/32 on lo; /32 routes along the tree via the TUN devices; "
                  "ip_forward=1 everywhere, rp_filter 0, IPv6 off",
    "connections": "one TCP connection per transfer, established (connect + accept) >= max(0.3 s, 3 RTT) "
                   "before the start signal; a fresh connection (and fresh listener) per repetition",
    "application": "sender thread: sendall(bytes) after a shared start event; receiver thread: recv_into with "
                   "MSG_WAITALL in 1 MiB chunks; one Python process, one thread per socket",
    "start_s": "time the sender thread passed the start event, minus the start signal",
    "end_s": "time the receiver thread had read the last byte, minus the start signal",
    "completion_s": "max end_s of the scenario's transfers; median over the repetitions",
    "counters": "per transfer from the sender's TCP_INFO after the run (tcpi_total_retrans, tcpi_total_rto, "
                "tcpi_total_rto_recoveries, tcpi_snd_wnd, ...); per sending namespace from /proc/net/netstat "
                "and /proc/net/snmp (deltas: RetransSegs, TCPTimeouts, TCPLossProbes, ...)",
}

_libc = ctypes.CDLL(None, use_errno=True)
_HOME_NS = os.open("/proc/self/ns/net", os.O_RDONLY)


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class InNs:
    """Context manager: the calling thread is in namespace `name` inside the block."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        setns(self.fd)
        return self

    def __exit__(self, *exc):
        setns(_HOME_NS)
        os.close(self.fd)


def sh(cmd: list[str], input: str | None = None, check: bool = True) -> str:
    p = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p.stdout


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ---- namespaces -------------------------------------------------------------------------

_live_ns: list[str] = []


def cleanup_ns() -> None:
    for name in list(_live_ns):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        _live_ns.remove(name)


def cleanup_stale() -> None:
    """Delete namespaces left by a killed earlier run of this script (its pid is gone)."""
    for line in sh(["ip", "netns", "list"]).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(NS_PREFIX) and "n" in name[len(NS_PREFIX):]:
            pid = name[len(NS_PREFIX):].split("n", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


class Topology:
    """Namespaces, TUN links (the wire process), addresses and routes for one scenario."""

    def __init__(self, scn: dict, queues: list[list[int]]):
        self.scn = scn
        self.nodes = [n["id"] for n in scn["nodes"]]
        self.idx = {n: i for i, n in enumerate(self.nodes)}
        self.ns = {n: f"{NS_PREFIX}{os.getpid()}n{i}" for n, i in self.idx.items()}
        self.addr = {n: f"10.200.{i // 250}.{i % 250 + 1}" for n, i in self.idx.items()}
        self.queues = queues
        self.wire = None
        self.adj: dict[str, list[tuple[str, str]]] = {n: [] for n in self.nodes}  # node -> [(neighbour, dev)]
        for k, l in enumerate(scn["links"]):
            self.adj[l["child"]].append((l["parent"], f"l{k}p"))
            self.adj[l["parent"]].append((l["child"], f"l{k}c"))

    def up(self) -> None:
        for n in self.nodes:
            name = self.ns[n]
            sh(["ip", "netns", "add", name])
            _live_ns.append(name)
            sh(["ip", "-n", name, "link", "set", "lo", "up"])
            sh(["ip", "netns", "exec", name, "sysctl", "-q", "-w"] + [f"{k}={v}" for k, v in NS_SYSCTLS.items()])
            sh(["ip", "-n", name, "addr", "add", f"{self.addr[n]}/32", "dev", "lo"])
        cfg = []
        for k, (l, (qu, qd)) in enumerate(zip(self.scn["links"], self.queues)):
            cfg.append(f"link {self.ns[l['child']]} l{k}p {self.ns[l['parent']]} l{k}c "
                       f"{l['up_mbps'] * 1e6:.0f} {l['down_mbps'] * 1e6:.0f} {round(l['delay_ms'] * 1e6)} {qu} {qd}")
        self.cfg = tempfile.NamedTemporaryFile("w", prefix="wire-", suffix=".cfg", delete=False)
        self.cfg.write("\n".join(cfg) + "\n")
        self.cfg.close()
        self.wire = subprocess.Popen([str(WIRE), self.cfg.name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        ready = self.wire.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError(f"wire did not start: {ready!r}")
        self.wire_mode = ready.split(",", 1)[1].strip()
        for n in self.nodes:
            batch = []
            for _, dev in self.adj[n]:
                batch.append(f"link set dev {dev} txqueuelen 20000 up")
            for m in self.nodes:
                if m != n:
                    batch.append(f"route add {self.addr[m]}/32 dev {self.next_dev(n, m)}")
            sh(["ip", "-n", self.ns[n], "-batch", "-"], input="\n".join(batch) + "\n")

    def next_dev(self, n: str, m: str) -> str:
        """The device of n on the tree path towards m (BFS from m)."""
        prev = {m: None}
        todo = [m]
        while todo:
            x = todo.pop()
            for y, _ in self.adj[x]:
                if y not in prev:
                    prev[y] = x
                    todo.append(y)
        hop = prev[n]
        return next(dev for y, dev in self.adj[n] if y == hop)

    def wire_stats(self) -> list[dict]:
        self.wire.stdin.write("s\n")
        self.wire.stdin.flush()
        return json.loads(self.wire.stdout.readline())["dirs"]

    def tun_drops(self) -> int:
        """tx drops of the TUN rings (packets the wire did not read in time), all devices."""
        total = 0
        for n in self.nodes:
            for _, dev in self.adj[n]:
                st = sh(["ip", "-n", self.ns[n], "-j", "-s", "link", "show", "dev", dev])
                total += json.loads(st)[0]["stats64"]["tx"]["dropped"]
        return total

    def down(self) -> None:
        if self.wire is not None:
            try:
                self.wire.stdin.write("q\n")
                self.wire.stdin.flush()
                self.wire.wait(timeout=5)
            except Exception:
                self.wire.kill()
                self.wire.wait()
            self.wire = None
            os.unlink(self.cfg.name)
        for n in self.nodes:
            name = self.ns[n]
            if name in _live_ns:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
                _live_ns.remove(name)


# ---- counters -----------------------------------------------------------------------------

NSTAT_KEYS = {"Tcp": ["RetransSegs", "OutSegs", "InSegs"],
              "TcpExt": ["TCPTimeouts", "TCPLossProbes", "TCPLossProbeRecovery", "TCPSackRecovery",
                         "TCPSACKReorder", "TCPSpuriousRTOs", "TCPFastRetrans", "TCPSlowStartRetrans",
                         "TCPLostRetransmit", "TCPDSACKRecv", "TCPSackRecoveryFail", "TCPRenoRecovery",
                         "TCPDelivered"]}


def read_mib(ns: str) -> dict[str, int]:
    out = {}
    with InNs(ns):
        for f in ("/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"):
            lines = Path(f).read_text().splitlines()
            for head, vals in zip(lines[::2], lines[1::2]):
                proto, keys = head.split(":", 1)
                values = vals.split(":", 1)[1].split()
                for k, v in zip(keys.split(), values):
                    if k in NSTAT_KEYS.get(proto, ()):
                        out[k] = int(v)
    return out


def tcp_info(sock: socket.socket) -> dict:
    b = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 256)
    u32 = lambda off: struct.unpack_from("I", b, off)[0]  # noqa: E731
    d = {"snd_mss": u32(16), "rto_us": u32(8), "lost": u32(32), "rtt_us": u32(68), "snd_ssthresh": u32(76),
         "snd_cwnd": u32(80), "total_retrans": u32(100), "min_rtt_us": u32(148) if len(b) > 151 else None}
    if len(b) >= 248:
        d.update({"data_segs_out": u32(156), "rwnd_limited_us": struct.unpack_from("Q", b, 176)[0],
                  "sndbuf_limited_us": struct.unpack_from("Q", b, 184)[0],
                  "bytes_retrans": struct.unpack_from("Q", b, 208)[0], "dsack_dups": u32(216),
                  "snd_wnd": u32(228), "total_rto": struct.unpack_from("H", b, 240)[0],
                  "total_rto_recoveries": struct.unpack_from("H", b, 242)[0], "total_rto_time_ms": u32(244)})
    return d


# ---- one repetition -------------------------------------------------------------------------

PAYLOAD = memoryview(bytes(40_000_000))


def run_rep(topo: Topology, scn: dict, port0: int, timeout_s: float) -> dict:
    transfers = scn["transfers"]
    assert all(not t["after"] and t["start_s"] == 0.0 for t in transfers), "only simultaneous transfers"
    rtt = max(2 * sum(scn["links"][k]["delay_ms"] for k, _ in tree_path(scn, t["src"], t["dst"])) for t in transfers)
    for n in topo.nodes:
        sh(["ip", "-n", topo.ns[n], "tcp_metrics", "flush", "all"], check=False)
    listeners, clients, conns = [], [], []
    try:
        for i, t in enumerate(transfers):
            with InNs(topo.ns[t["dst"]]):
                ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCV_BUF_BYTES)
            ls.setsockopt(socket.IPPROTO_TCP, TCP_WINDOW_CLAMP, BUF_BYTES)
            ls.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
            ls.bind((topo.addr[t["dst"]], port0 + i))
            ls.listen(4)
            listeners.append(ls)
        for i, t in enumerate(transfers):
            with InNs(topo.ns[t["src"]]):
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
            c.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, BUF_BYTES)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.bind((topo.addr[t["src"]], 0))
            c.settimeout(10)
            c.connect((topo.addr[t["dst"]], port0 + i))
            c.settimeout(None)
            clients.append(c)
            a, _ = listeners[i].accept()
            conns.append(a)
        for c in clients:
            assert c.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).rstrip(b"\0") == b"cubic"
        time.sleep(max(0.3, 3 * rtt / 1e3))
        senders = sorted({t["src"] for t in transfers})
        mib0 = {n: read_mib(topo.ns[n]) for n in senders}
        topo.wire_stats()  # reset the wire counters
        go = threading.Event()
        t_start, t_end, t_half, errors = {}, {}, {}, []

        def send(i):
            go.wait()
            t_start[i] = time.monotonic()
            try:
                left = transfers[i]["bytes"]
                while left:  # one sendall unless the transfer is longer than PAYLOAD (selftest)
                    n = min(left, len(PAYLOAD))
                    clients[i].sendall(PAYLOAD[:n])
                    left -= n
            except OSError as e:
                errors.append(f"send {i}: {e}")

        def recv(i):
            remaining = transfers[i]["bytes"]
            half = remaining // 2
            buf = bytearray(1 << 20)
            try:
                while remaining:
                    r = conns[i].recv_into(buf, min(remaining, len(buf)), socket.MSG_WAITALL)
                    if r == 0:
                        raise OSError("connection closed early")
                    remaining -= r
                    if remaining <= half and i not in t_half:
                        t_half[i] = time.monotonic()
                t_end[i] = time.monotonic()
            except OSError as e:
                errors.append(f"recv {i}: {e}")

        threads = [threading.Thread(target=recv, args=(i,), daemon=True) for i in range(len(transfers))]
        threads += [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(transfers))]
        for th in threads:
            th.start()
        time.sleep(0.05)
        load = loadavg()
        t0 = time.monotonic()
        go.set()
        deadline = t0 + timeout_s
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
        if errors or len(t_end) < len(transfers):
            raise RuntimeError(f"{scn['id']}: {errors or 'timed out'}; {len(t_end)}/{len(transfers)} finished")
        time.sleep(min(1.0, 2 * rtt / 1e3 + 0.05))  # let the last ACKs reach the senders
        infos = [tcp_info(c) for c in clients]
        mib1 = {n: read_mib(topo.ns[n]) for n in senders}
        wire = topo.wire_stats()
        out_transfers = []
        for i, t in enumerate(transfers):
            inf = infos[i]
            out_transfers.append({"id": t["id"], "start_s": round(t_start[i] - t0, 6), "end_s": round(t_end[i] - t0, 6),
                                  "half_s": round(t_half[i] - t0, 6),
                                  "retx_segments": inf["total_retrans"], "rtos": inf.get("total_rto"),
                                  "tcp_info": inf})
        mib = {k: sum(mib1[n][k] - mib0[n][k] for n in senders) for k in mib1[senders[0]]}
        return {"completion_s": round(max(t_end.values()) - t0, 6), "transfers": out_transfers,
                "total_retx_segments": sum(x["retx_segments"] for x in out_transfers),
                "total_rtos": sum(x["rtos"] or 0 for x in out_transfers),
                "mib_delta": mib,
                "wire_drops": sum(d["drops"] for d in wire), "wire_ringfull": sum(d["ringfull"] for d in wire),
                "wire": wire, "emulation": emulation_quality(wire),
                "loadavg_before": load, "loadavg_after": loadavg()}
    finally:
        for s in clients + conns + listeners:
            s.close()


def emulation_quality(wire: list[dict]) -> dict:
    """How late the wire delivered packets against their schedule (all directions of one repetition)."""
    out = sum(d["pkts_out"] for d in wire)
    over1 = sum(d["late_over_1ms"] for d in wire)
    return {"pkts": out, "late_mean_us": sum(d["late_mean_us"] * d["pkts_out"] for d in wire) / max(out, 1),
            "late_max_us": max((d["late_max_us"] for d in wire), default=0.0),
            "late_over_100us_frac": sum(d["late_over_100us"] for d in wire) / max(out, 1),
            "late_over_1ms_frac": over1 / max(out, 1)}


def run_scenario(entry: dict, reps: int) -> dict:
    scn = entry["scenario"]
    topo = Topology(scn, entry["queues_pkts"])
    try:
        topo.up()
        ns3 = entry["completion_s"]
        out_reps = []
        for r in range(reps):
            rep = run_rep(topo, scn, PORT0 + 100 * r, timeout_s=30 + 20 * ns3)
            rep["tun_tx_dropped_total"] = topo.tun_drops()
            out_reps.append(rep)
        out_reps = [committed_rep(r) for r in out_reps]
        comps = [r["completion_s"] for r in out_reps]
        med = statistics.median(comps)
        mi = comps.index(sorted(comps)[len(comps) // 2])
        worst = max(r["emulation"]["late_over_1ms_frac"] for r in out_reps)
        worst_mean = max(r["emulation"]["late_mean_us"] for r in out_reps)
        bottleneck = min(min(l["up_mbps"], l["down_mbps"]) for l in scn["links"])
        faithful = worst < 0.01 and worst_mean < 100
        return {"id": scn["id"], "kind": scn["kind"], "scenario": scn, "queues_pkts": entry["queues_pkts"],
                "emulation_faithful": faithful, "bottleneck_1gbps": bottleneck >= 1000,
                "emulation_note": "" if faithful else
                f"wire lateness: mean up to {worst_mean:.0f} us, {worst:.1%} of packets > 1 ms late",
                "wire_mode": topo.wire_mode, "completion_s": comps, "median_completion_s": med,
                "median_rep": mi, "ns3_completion_s": ns3, "ns3_total_rtos": entry["total_rtos"],
                "ns3_total_retx_segments": entry["total_retx_segments"], "reps": out_reps,
                "rtos_per_rep": [r["total_rtos"] for r in out_reps],
                "retx_per_rep": [r["total_retx_segments"] for r in out_reps]}
    finally:
        topo.down()


def committed_rep(rep: dict) -> dict:
    """What the committed file keeps of a repetition: times, retransmissions, timeouts and
    the advertised window per flow, drops and the emulation's lateness. The rest of the
    kernel's tcp_info, the nstat counters and the per-link wire statistics are dropped:
    they made the file 2 MB."""
    keep = ("completion_s", "total_retx_segments", "total_rtos", "wire_drops", "emulation", "loadavg_before",
            "tun_tx_dropped_total")
    flows = [{**{k: t[k] for k in ("id", "start_s", "end_s", "retx_segments", "rtos")},
              "snd_wnd": t["tcp_info"].get("snd_wnd")} for t in rep["transfers"]]
    return {**{k: rep[k] for k in keep if k in rep}, "transfers": flows}


# ---- emulation checks -----------------------------------------------------------------------

def selftest(rate_mbps: float, delay_ms: float, seconds: float) -> dict:
    """One link w0 -> s0: UDP ping RTT, then a long bulk TCP upload (queue = 2 BDP, >= 100)."""
    bdp = rate_mbps * 1e6 * 2 * delay_ms / 1e3 / (1502 * 8)
    q = max(100, int(2 * bdp))
    scn = {"id": f"selftest/{rate_mbps:g}Mbps/{delay_ms:g}ms", "kind": "single",
           "nodes": [{"id": "w0", "role": "worker"}, {"id": "s0", "role": "cloud"}],
           "links": [{"child": "w0", "parent": "s0", "up_mbps": rate_mbps, "down_mbps": rate_mbps,
                      "delay_ms": delay_ms}], "transfers": []}
    topo = Topology(scn, [[q, q]])
    try:
        topo.up()
        # RTT: 20 UDP pings of 64 B
        with InNs(topo.ns["s0"]):
            us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        us.bind((topo.addr["s0"], 7000))
        with InNs(topo.ns["w0"]):
            uc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        uc.settimeout(2)

        def echo():
            for _ in range(21):
                d, a = us.recvfrom(2048)
                us.sendto(d, a)

        th = threading.Thread(target=echo, daemon=True)
        th.start()
        rtts = []
        for k in range(21):
            t = time.monotonic()
            uc.sendto(b"x" * 64, (topo.addr["s0"], 7000))
            uc.recvfrom(2048)
            if k:
                rtts.append((time.monotonic() - t) * 1e3)
            time.sleep(0.01)
        us.close(), uc.close()
        # bulk
        nbytes = int(rate_mbps * 1e6 / 8 * seconds)
        bulk = {"id": scn["id"], "kind": "single", "nodes": scn["nodes"], "links": scn["links"],
                "transfers": [{"id": 0, "src": "w0", "dst": "s0", "bytes": nbytes,
                               "start_s": 0.0, "after": []}]}
        rep = run_rep(topo, bulk, PORT0, timeout_s=10 * seconds + 30)
        wire_up = rep["wire"][0]
        tx = rep["transfers"][0]
        dur = tx["end_s"]
        goodput = bulk["transfers"][0]["bytes"] * 8 / dur / 1e6
        second_half = (nbytes - nbytes // 2) * 8 / (dur - tx["half_s"]) / 1e6
        ideal_payload = rate_mbps * 1448 / 1502
        return {"rate_mbps": rate_mbps, "delay_ms": delay_ms, "queue_pkts": q,
                "udp_rtt_ms_median": statistics.median(rtts), "udp_rtt_ms_min": min(rtts),
                "udp_rtt_ms_max": max(rtts), "expected_rtt_ms": 2 * delay_ms + 2 * (92 + 2) * 8 / (rate_mbps * 1e3),
                "bulk_bytes": bulk["transfers"][0]["bytes"], "bulk_s": dur, "goodput_mbps": goodput,
                "payload_rate_mbps": ideal_payload, "goodput_fraction": goodput / ideal_payload,
                "second_half_goodput_mbps": second_half, "second_half_fraction": second_half / ideal_payload,
                "retx_segments": tx["retx_segments"], "rtos": tx["rtos"], "wire_up": wire_up,
                "tun_tx_dropped_total": topo.tun_drops(), "loadavg": rep["loadavg_before"], "wire_mode": topo.wire_mode}
    finally:
        topo.down()


# ---- driver --------------------------------------------------------------------------------

def build_wire() -> None:
    BUILD.mkdir(exist_ok=True)
    cmd = ["gcc", "-O2", "-Wall", "-Wno-format-truncation", "-o", str(WIRE), str(WIRE_SRC)]
    key = hashlib.sha256(WIRE_SRC.read_bytes() + " ".join(cmd).encode()).hexdigest()
    stamp = BUILD / "wire.stamp"
    if WIRE.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return
    subprocess.run(cmd, check=True)
    stamp.write_text(key + "\n")


def canon(x) -> str:
    return json.dumps(x, sort_keys=True)


def host_info() -> dict:
    ns_defaults = {}
    name = f"{NS_PREFIX}{os.getpid()}probe"
    sh(["ip", "netns", "add", name])
    _live_ns.append(name)
    try:
        for k in NS_SYSCTLS_READ:
            ns_defaults[k] = sh(["ip", "netns", "exec", name, "sysctl", "-n", k], check=False).strip()
    finally:
        cleanup_ns()
    cubic = {p.name: p.read_text().strip() for p in sorted(Path("/sys/module/tcp_cubic/parameters").glob("*"))}
    return {"kernel": platform.release(), "kernel_version": platform.version(), "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "tcp_available_congestion_control":
                Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().strip(),
            "host_default_congestion_control": Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip(),
            "namespace_sysctl_defaults": ns_defaults, "tcp_cubic_module_parameters": cubic,
            "gcc": sh(["gcc", "--version"]).splitlines()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=["single", "shared"])
    ap.add_argument("--match", action="append", default=[])
    ap.add_argument("--limit", type=int)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--selftest", action="store_true", help="rate / RTT checks of the emulation, stored in --out")
    args = ap.parse_args(argv)

    ref = json.loads(REFERENCE.read_text())
    kinds = args.only or ["single", "shared"]
    entries = [e for k in kinds for e in ref["scenarios"] if e["scenario"]["kind"] == k
               and all(m in e["scenario"]["id"] for m in args.match)]
    if args.list:
        for e in entries:
            print(e["scenario"]["id"])
        return 0
    if os.geteuid() != 0:
        sys.exit("linux_run: needs root (network namespaces, TUN devices)")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(cleanup_ns)
    sys.setswitchinterval(0.0005)
    cleanup_stale()
    build_wire()

    doc = {}
    if args.out.is_file():
        doc = json.loads(args.out.read_text())
        if doc.get("format") != FORMAT or canon(doc.get("settings")) != canon(SETTINGS):
            print(f"{args.out}: format or settings changed; old results discarded", flush=True)
            doc = {"emulation_checks": doc.get("emulation_checks", [])}
    results = {s["id"]: s for s in doc.get("scenarios", [])}
    header = {"format": FORMAT,
              "what": "Linux kernel TCP (network namespaces + userspace link emulator) on the netval "
                      "single/shared scenarios; see bench/netval/linux/README.md",
              "host": host_info(), "settings": SETTINGS, "reps": args.reps,
              "reference": "bench/netval/reference.json (scenario dicts, queues_pkts, ns-3 results)"}

    def save():
        order = [e["scenario"]["id"] for e in ref["scenarios"] if e["scenario"]["id"] in results]
        counts = {k: sum(results[i]["kind"] == k for i in order) for k in ("single", "shared")}
        write_atomic(args.out, {**header, "emulation_checks": doc.get("emulation_checks", []), "counts": counts,
                                "scenarios": [results[i] for i in order]})

    if args.selftest:
        checks = []
        for rate, delay, secs in [(20, 0, 4), (20, 10, 10), (100, 10, 8), (1000, 0, 3), (1000, 5, 4), (1000, 20, 4)]:
            c = selftest(rate, delay, secs)
            print(f"selftest {rate} Mbit/s {delay} ms: rtt median {c['udp_rtt_ms_median']:.3f} ms "
                  f"(expected {c['expected_rtt_ms']:.3f}), goodput {c['goodput_mbps']:.1f} Mbit/s = "
                  f"{c['goodput_fraction']:.1%} of {c['payload_rate_mbps']:.1f} (2nd half {c['second_half_fraction']:.1%}); retx {c['retx_segments']} "
                  f"late>100us {c['wire_up']['late_over_100us']}/{c['wire_up']['pkts_out']} "
                  f"max late {c['wire_up']['late_max_us']:.0f} us; load {c['loadavg']}", flush=True)
            checks.append(c)
        doc["emulation_checks"] = checks
        save()
        return 0

    def needed(e):
        r = results.get(e["scenario"]["id"])
        return args.rerun or r is None or canon(r["scenario"]) != canon(e["scenario"]) or len(r["reps"]) != args.reps

    todo = [e for e in entries if needed(e)]
    if args.limit is not None:
        todo = todo[:args.limit]
    print(f"{len(entries)} selected, {len(entries) - len([e for e in entries if needed(e)])} done, "
          f"{len(todo)} to run -> {args.out}", flush=True)
    failed = []
    t_all = time.time()
    for k, e in enumerate(todo, 1):
        sid = e["scenario"]["id"]
        t = time.time()
        try:
            res = run_scenario(e, args.reps)
        except (RuntimeError, OSError, AssertionError) as err:
            print(f"[{k}/{len(todo)}] {sid}: FAILED: {err}", flush=True)
            failed.append(sid)
            continue
        results[sid] = res
        save()
        ns3 = res["ns3_completion_s"]
        print(f"[{k}/{len(todo)}] {sid}: linux {' '.join(f'{c:.3f}' for c in res['completion_s'])} "
              f"median {res['median_completion_s']:.4f} s (ns-3 {ns3:.4f}, {res['median_completion_s'] / ns3 - 1:+.1%}) "
              f"rtos {res['rtos_per_rep']} (ns-3 {res['ns3_total_rtos']}) retx {res['retx_per_rep']} "
              f"late>1ms {max(r['emulation']['late_over_1ms_frac'] for r in res['reps']):.2%} "
              f"{'' if res['emulation_faithful'] else 'UNFAITHFUL '}"
              f"load {res['reps'][0]['loadavg_before'][0]:.2f} wall {time.time() - t:.1f} s", flush=True)
    print(f"done: {len(todo) - len(failed)} run, {len(failed)} failed, {time.time() - t_all:.0f} s"
          + (f"; failed: {failed}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup_ns()
