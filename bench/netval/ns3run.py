"""Run the ns-3 reference grid and write bench/netval/reference.json.

    .venv/bin/python bench/netval/ns3run.py                    # whole grid (resumes)
    .venv/bin/python bench/netval/ns3run.py --only single --limit 3
    .venv/bin/python bench/netval/ns3run.py --match round/star  # ids containing a text
    .venv/bin/python bench/netval/ns3run.py --build-only

Builds ns3_dag.cc with g++ against the C++ libraries of the PyPI wheel ns3==3.44.post0
installed in bench/netval/.venv (``make netval`` creates it), then runs every selected
scenario one after the other (ns-3 is single-threaded: one core). After each scenario the
reference file is rewritten atomically (temp file + rename); a scenario already in it with
the same scenario dict and the same settings is skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scenarios as grid  # noqa: E402

NS3_PIN = "ns3==3.44.post0"
FORMAT = 1
WIRE_BYTES = 1502  # 1448 payload + 12 TCP timestamp option + 20 TCP + 20 IPv4 + 2 PPP

# The agreed reference conditions. Every key of PARAMS is passed to ns3_dag as "param K V".
PARAMS = {
    "mss": 1448,                    # ns3::TcpSocket::SegmentSize (payload bytes per segment)
    "initial_cwnd_segments": 10,    # ns3::TcpSocket::InitialCwnd
    "hystart": 1,                   # ns3::TcpCubic::HyStart
    "timestamps": 1,                # ns3::TcpSocketBase::Timestamp (ns-3 default)
    "sack": 1,                      # ns3::TcpSocketBase::Sack (ns-3 default)
    "snd_buf_bytes": 4194304,       # ns3::TcpSocket::SndBufSize
    "rcv_buf_bytes": 4194304,       # ns3::TcpSocket::RcvBufSize
    "min_rto_ms": 200,              # ns3::TcpSocketBase::MinRto
    "del_ack_count": 2,             # ns3::TcpSocket::DelAckCount
    "del_ack_timeout_ms": 40,       # ns3::TcpSocket::DelAckTimeout (ns-3 default 200 ms)
    "t0_s": 2.0,                    # data phase start; times in the output are relative to it
    "connect_at_s": 0.5,            # connection i opens at connect_at_s + i * connect_spacing_s
    "connect_spacing_s": 0.0001,
    "limit_s": 1000.0,              # simulated seconds after T0 before giving up
    "device_queue": "1p",           # PointToPointNetDevice TxQueue (DropTailQueue) size
}
QUEUE_MIN_PKTS = 100
QUEUE_RULE = (
    "Every NetDevice (host NICs and router ports, both directions of every link) has an explicit "
    "ns3::FifoQueueDisc (drop-tail), installed before Ipv4AddressHelper::Assign so that no default "
    "pfifo_fast (1000 p) is added; the PointToPointNetDevice's own DropTailQueue is 1 packet (it "
    "flow-controls the queue disc), so a direction holds at most QUEUE + 1 packets plus the one being "
    "serialised. QUEUE = max(100, ceil(rate_bps * RTT / (1502 * 8))) packets, where rate is that "
    "direction's rate and RTT = the largest round-trip propagation delay (2 x sum of one-way link "
    "delays along the path) of any transfer of the scenario that crosses this direction, or 2 x the "
    "link's own delay when none does. 1502 B = 1500 B IP packet (1448 B payload + 12 B timestamp "
    "option + 40 B headers) + 2 B PPP header."
)
SETTINGS = {
    "congestion_control": "ns3::TcpCubic",
    **PARAMS,
    "window_scaling": 1,
    "pacing": 0,
    "recovery": "ns3::TcpPrrRecovery (ns-3 default)",
    "routing": "ns3::Ipv4GlobalRoutingHelper::PopulateRoutingTables on the tree",
    "queue_disc": "ns3::FifoQueueDisc on every device",
    "queue_min_pkts": QUEUE_MIN_PKTS,
    "queue_pkt_bytes": WIRE_BYTES,
    "queue_rule": QUEUE_RULE,
    "delay_resolution": "delay_ms rounded to whole nanoseconds",
    "start_s": "time the sender hands the first byte to its socket, minus T0",
    "end_s": "time the receiving application reads the last byte, minus T0",
    "connections": "one TCP connection per transfer, opened during [connect_at_s, t0_s); "
                   "each transfer starts on a fresh connection at the initial window",
    "application": "bulk send written in ns3_dag.cc: exactly `bytes` bytes, socket buffer refilled "
                   "from the send callback; receiver reads everything and counts",
}


# ---- ns-3 install and build -----------------------------------------------------------

def ns3_dir(venv: Path) -> Path:
    hits = sorted(venv.glob("lib/python3*/site-packages/ns3/lib64/libns3.*-core.so"))
    if not hits:
        sys.exit(f"ns3run: no ns-3 libraries under {venv}; run `make netval` or "
                 f"`python3 -m venv {venv} && {venv}/bin/pip install {NS3_PIN}`")
    return hits[0].parents[1]


def ns3_version(venv: Path) -> str:
    for meta in venv.glob("lib/python3*/site-packages/ns3-*.dist-info/METADATA"):
        for line in meta.read_text().splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def lib_name(venv: Path) -> str:
    return next((ns3_dir(venv) / "lib64").glob("libns3.*-core.so")).name


def gcc_version(cxx: str) -> str:
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def build(venv: Path, out_dir: Path, cxx: str = "g++", force: bool = False) -> tuple[Path, list[str]]:
    root = ns3_dir(venv)
    inc, lib = root / "include", root / "lib64"
    core = next(lib.glob("libns3.*-core.so")).name
    ver = re.match(r"libns3\.(.+)-core\.so", core).group(1)
    mods = ["core", "network", "internet", "point-to-point", "traffic-control", "stats", "bridge"]
    src = HERE / "ns3_dag.cc"
    exe = out_dir / "ns3_dag"
    cmd = [cxx, "-O2", "-std=c++20", "-DNS3_BUILD_PROFILE_RELEASE", "-DNS3_LOG_ENABLE", "-DNS3_ASSERT_ENABLE",
           f"-I{inc}", str(src), "-o", str(exe), f"-L{lib}", "-Wl,--no-as-needed"] \
        + [f"-lns3.{ver}-{m}" for m in mods] + [f"-Wl,-rpath,{lib}"]
    stamp = out_dir / "ns3_dag.stamp"
    key = hashlib.sha256(src.read_bytes() + "\0".join(cmd).encode()).hexdigest()
    if not force and exe.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return exe, cmd
    out_dir.mkdir(parents=True, exist_ok=True)
    print("build:", " ".join(shlex.quote(c) for c in cmd), flush=True)
    t = time.time()
    subprocess.run(cmd, check=True)
    stamp.write_text(key + "\n")
    print(f"build: done in {time.time() - t:.1f} s", flush=True)
    return exe, cmd


def effective_attributes(exe: Path, workdir: Path) -> dict[str, str]:
    """ns-3's own view of the attributes after our settings (ns3_dag --dump-config)."""
    f = workdir / "params.txt"
    f.write_text("".join(f"param {k} {v}\n" for k, v in PARAMS.items()) + "nodes 1\n")
    out = subprocess.run([str(exe), "--dump-config", str(f)], capture_output=True, text=True, check=True).stdout
    attrs = {}
    for line in out.splitlines():
        if " = " in line and not line.startswith("#"):
            k, v = line.split(" = ", 1)
            if k.endswith(("::Address", "PointToPointNetDevice::DataRate")):
                continue  # per device / per link, set from the scenario
            attrs[k] = v
    attrs["ns3::FifoQueueDisc::MaxSize"] = "per device, see queue_rule"
    return attrs


# ---- one scenario ---------------------------------------------------------------------

def queue_sizes(scn: dict) -> list[list[int]]:
    """[up, down] queue disc size in packets for every link (QUEUE_RULE)."""
    parent = grid.tree_parent(scn)
    rtt = [[0.0, 0.0] for _ in scn["links"]]
    for t in scn["transfers"]:
        path = grid.tree_path(scn, t["src"], t["dst"], parent)
        r = 2 * sum(scn["links"][k]["delay_ms"] for k, _ in path)
        for k, up in path:
            d = 0 if up else 1
            rtt[k][d] = max(rtt[k][d], r)
    out = []
    for k, l in enumerate(scn["links"]):
        q = []
        for d, mbps in enumerate((l["up_mbps"], l["down_mbps"])):
            r = rtt[k][d] or 2 * l["delay_ms"]
            q.append(max(QUEUE_MIN_PKTS, math.ceil(mbps * 1e6 * r / 1e3 / (WIRE_BYTES * 8))))
        out.append(q)
    return out


def flat_text(scn: dict, queues: list[list[int]]) -> str:
    idx = {n["id"]: i for i, n in enumerate(scn["nodes"])}
    lines = [f"# {scn['id']}"] + [f"param {k} {v}" for k, v in PARAMS.items()]
    lines.append(f"nodes {len(idx)}")
    for l, (qu, qd) in zip(scn["links"], queues):
        lines.append(f"link {idx[l['child']]} {idx[l['parent']]} {round(l['up_mbps'] * 1e6)} "
                     f"{round(l['down_mbps'] * 1e6)} {round(l['delay_ms'] * 1e6)} {qu} {qd}")
    for t in scn["transfers"]:
        lines.append(f"xfer {t['id']} {idx[t['src']]} {idx[t['dst']]} {t['bytes']} {float(t['start_s'])!r} "
                     f"{len(t['after'])}" + "".join(f" {a}" for a in t["after"]))
    return "\n".join(lines) + "\n"


def run_one(exe: Path, scn: dict, workdir: Path, timeout: float) -> dict:
    queues = queue_sizes(scn)
    sfile, stats = workdir / "scenario.txt", workdir / "stats.txt"
    sfile.write_text(flat_text(scn, queues))
    if stats.exists():
        stats.unlink()
    t = time.time()
    proc = subprocess.run([str(exe), str(sfile), str(stats)], capture_output=True, text=True, timeout=timeout)
    wall = time.time() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{scn['id']}: ns3_dag exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    times = {}
    for line in proc.stdout.splitlines():
        tid, s, e = line.split()
        times[int(tid)] = (None if s == "nan" else float(s), None if e == "nan" else float(e))
    diag, drops, sim_end = {}, [], None
    for line in stats.read_text().splitlines():
        f = line.split()
        if f[0] == "xfer":
            d = dict(zip(f[2::2], map(int, f[3::2])))
            diag[int(f[1])] = d
        elif f[0] == "link":
            d = dict(zip(f[2::2], map(int, f[3::2])))
            drops.append([d["up_drops"] + d["up_dev_drops"], d["down_drops"] + d["down_dev_drops"]])
        elif f[0] == "sim_end_s":
            sim_end = float(f[1])
    transfers = []
    for t in scn["transfers"]:
        s, e = times[t["id"]]
        d = diag[t["id"]]
        transfers.append({"id": t["id"], "start_s": s, "end_s": e, "retx_segments": d["retx"],
                          "fast_recoveries": d["recoveries"], "rtos": d["rtos"],
                          "data_segments_sent": d["segments"]})
    ends = [t["end_s"] for t in transfers]
    unfinished = [t["id"] for t in transfers if t["end_s"] is None]
    return {
        "scenario": scn,
        "transfers": transfers,
        "completion_s": None if unfinished else max(ends),
        "complete": not unfinished,
        "unfinished": unfinished,
        "queues_pkts": queues,  # [up, down] per link, in scenario["links"] order
        "drops_pkts": drops,    # [up, down] per link
        "total_drops": sum(a + b for a, b in drops),
        "total_retx_segments": sum(t["retx_segments"] for t in transfers),
        "total_rtos": sum(t["rtos"] for t in transfers),
        "sim_end_s": sim_end,
        "wall_s": round(wall, 3),
    }


# ---- the reference file ---------------------------------------------------------------

def canon(x) -> str:
    return json.dumps(x, sort_keys=True)


def write_atomic(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=grid.KINDS, help="run only this kind (repeatable)")
    ap.add_argument("--match", action="append", default=[], help="run only ids containing this text (repeatable)")
    ap.add_argument("--limit", type=int, default=None, help="run at most N scenarios (of those not done yet)")
    ap.add_argument("--out", type=Path, default=HERE / "reference.json")
    ap.add_argument("--venv", type=Path, default=HERE / ".venv", help="venv holding the ns3 wheel")
    ap.add_argument("--build-dir", type=Path, default=HERE / "build")
    ap.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    ap.add_argument("--rerun", action="store_true", help="rerun the selected scenarios even if done")
    ap.add_argument("--rebuild", action="store_true", help="rebuild ns3_dag even if up to date")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="wall-clock limit per scenario, s")
    ap.add_argument("--list", action="store_true", help="list the selected scenarios and exit")
    args = ap.parse_args(argv)

    kinds = tuple(args.only) if args.only else grid.KINDS
    scns = grid.all_scenarios()
    selected = [s for s in scns if s["kind"] in kinds and all(m in s["id"] for m in args.match)]
    if args.list:
        for s in selected:
            print(s["id"])
        return 0

    exe, cmd = build(args.venv, args.build_dir, args.cxx, args.rebuild)
    if args.build_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="netval-") as tmp:
        attrs = effective_attributes(exe, Path(tmp))
    header = {
        "format": FORMAT,
        "what": "ns-3 packet-level TCP reference for the testbed's network clock (bench/netval)",
        "ns3_version": f"{ns3_version(args.venv)} (PyPI wheel {NS3_PIN}; C++ libraries {lib_name(args.venv)})",
        "gcc_version": gcc_version(args.cxx),
        "build_command": " ".join(cmd).replace(str(HERE.parents[1]) + "/", ""),
        "platform": platform.platform(),
        "settings": SETTINGS,
        "ns3_attributes": attrs,
        "t0_s": PARAMS["t0_s"],
        "mss_bytes": PARAMS["mss"],
        "queue_rule": QUEUE_RULE,
    }
    results: dict[str, dict] = {}
    if args.out.is_file():
        old = json.loads(args.out.read_text())
        if canon(old.get("settings")) == canon(SETTINGS) and old.get("format") == FORMAT:
            results = {e["scenario"]["id"]: e for e in old.get("scenarios", [])}
        else:
            print(f"{args.out}: settings or format changed; its results are discarded", flush=True)
    known = {s["id"] for s in scns}
    stale = [i for i in results if i not in known]
    for i in stale:
        del results[i]

    def save():
        order = [s["id"] for s in scns if s["id"] in results]
        counts = {k: sum(results[i]["scenario"]["kind"] == k for i in order) for k in grid.KINDS}
        totals = {k: sum(s["kind"] == k for s in scns) for k in grid.KINDS}
        doc = {**header, "counts": counts, "grid_counts": totals,
               "complete": counts == totals and all(results[i]["complete"] for i in order),
               "scenarios": [results[i] for i in order]}
        write_atomic(args.out, doc)

    def needed(s):
        return args.rerun or s["id"] not in results or canon(results[s["id"]]["scenario"]) != canon(s)

    pending = [s for s in selected if needed(s)]
    todo = pending if args.limit is None else pending[:args.limit]
    print(f"{len(selected)} selected, {len(selected) - len(pending)} already done, {len(todo)} to run "
          f"-> {args.out}", flush=True)
    t_all = time.time()
    failed = []
    with tempfile.TemporaryDirectory(prefix="netval-") as tmp:
        for k, scn in enumerate(todo, 1):
            try:
                entry = run_one(exe, scn, Path(tmp), args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                print(f"[{k}/{len(todo)}] {scn['id']}: FAILED: {err}", flush=True)
                failed.append(scn["id"])
                continue
            results[scn["id"]] = entry
            save()
            c = entry["completion_s"]
            flag = "" if entry["complete"] else f"  UNFINISHED {entry['unfinished']}"
            loss = (f"  retx={entry['total_retx_segments']} rtos={entry['total_rtos']} drops={entry['total_drops']}"
                    if entry["total_retx_segments"] or entry["total_rtos"] or entry["total_drops"] else "")
            print(f"[{k}/{len(todo)}] {scn['id']}: completion "
                  f"{'-' if c is None else f'{c:.4f} s'}  wall {entry['wall_s']:.1f} s{loss}{flag}", flush=True)
    if not todo:
        save()  # refresh the header (and drop stale entries)
    print(f"done: {len(todo) - len(failed)} run, {len(failed)} failed, {time.time() - t_all:.0f} s wall"
          + (f"; failed: {failed}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
