"""Shared bits of the benchmarks: device names, the results file, a plain table."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def timing_parser(doc: str, seconds: float, rounds: int, quick: str) -> argparse.ArgumentParser:
    """The options every timing benchmark takes: which cases, the device, how long to
    measure and in how many interleaved rounds, and a smoke run (``quick`` says what it keeps)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--cases", default="", help="comma-separated model names to keep (default: all that fit the device)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=seconds, help="measuring time per variant and case")
    parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds the time is split into")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {quick}, short timings, nothing saved")
    return parser


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{platform.machine()}-{os.cpu_count()}cores"


def sync(device: torch.device) -> None:
    """Wait for the device: GPU kernels are asynchronous, so a timer must sync first."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_rates(
    steps: dict[str, Callable[[], object]],
    samples_per_step: dict[str, int],
    device: torch.device,
    seconds: float,
    rounds: int,
) -> dict[str, list[float]]:
    """Samples per second of every variant, measured in ``rounds`` interleaved rounds.

    Each round runs every variant in turn for about ``seconds / rounds`` (at least one
    step), so a burst of load from another process hits neighbouring measurements alike.
    Callers report the best round per variant (the least disturbed) and the median of the
    per-round ratios.
    """
    for step in steps.values():  # warm-up: allocator, oneDNN/cuDNN kernel choice
        step()
        step()
    sync(device)
    rates: dict[str, list[float]] = {k: [] for k in steps}
    budget = seconds / rounds
    for _ in range(rounds):
        for name, step in steps.items():
            count, start = 0, time.perf_counter()
            while True:
                step()
                count += 1
                sync(device)
                elapsed = time.perf_counter() - start
                if elapsed >= budget:
                    break
            rates[name].append(count * samples_per_step[name] / elapsed)
    return rates


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[r] / b[r] (both measured in the same round)."""
    return float(statistics.median(x / y for x, y in zip(a, b)))


def save_results(benchmark: str, device: torch.device, rows: list[dict]) -> Path:
    """Append this run's rows to bench/results/<device>.json (one list of runs per device)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (device_name(device).replace(" ", "_").replace("/", "_") + ".json")
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({
        "benchmark": benchmark, "device": device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    })
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(runs, indent=1) + "\n")
    os.replace(tmp, path)
    print(f"appended to {path}")
    return path


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else ("-" if v is None else str(v))
    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
    return "\n".join([line(cols)] + [line(r) for r in cells])
