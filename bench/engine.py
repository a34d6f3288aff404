"""Engine benchmark: the batched engine vs the per-worker loop vs one model on the same
total batch, measured side by side in one run, against the device's roofline.

    python bench/engine.py [--cases cifar_cnn,mlp,femnist_cnn] [--device auto] [--seconds 8] [--rounds 8]

For every case the variants are timed in interleaved rounds (bench/common.py): samples/s
is the best round; ratios are the median of the per-round ratios (``batched/X``) and the
ratio of the best rounds (``batched/X@best``); a target is judged on the lower of the two. Prints a table and
appends the rows, with the device name, to bench/results/<device>.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from common import device_name, interleaved_rates, median_ratio, save_results, sync, table, timing_parser
from testbed.engine import BatchedEngine, LoopEngine, MinibatchSampler, WorkerData
from testbed.models import build_model
from testbed.device import resolve_device
from testbed.simulate import per_sample_cross_entropy

MOMENTUM = 0.9


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    n: int  # workers
    b: int  # minibatch per worker
    shape: tuple[int, ...]  # one sample
    classes: int
    devices: tuple[str, ...] = ("cpu", "cuda")  # device types the case runs on
    targets: dict[str, tuple[str, float]] = field(default_factory=dict)  # device type -> (ratio column, minimum)


CASES = [
    Case("cifar_cnn n=10 b=20", "cifar_cnn", 10, 20, (3, 32, 32), 10, targets={"cpu": ("batched/bigbatch", 0.75)}),
    Case("mlp n=64 b=16", "mlp", 64, 16, (60,), 10, targets={"cpu": ("batched/loop", 1.5)}),
    Case("femnist_cnn n=32 b=20", "femnist_cnn", 32, 20, (1, 28, 28), 62, ("cpu",), {"cpu": ("batched/bigbatch", 0.7)}),
    Case("femnist_cnn n=100 b=20", "femnist_cnn", 100, 20, (1, 28, 28), 62, ("cuda",), {"cuda": ("batched/loop", 5.0)}),
    Case("vgg11 n=20 b=32", "vgg11", 20, 32, (3, 32, 32), 10, ("cuda",), {"cuda": ("batched/bigbatch", 0.8)}),
]
GPU_ROOFLINE_TARGET = 0.5  # issue 5: at least half of the roofline bound on a GPU


def model_for(case: Case) -> torch.nn.Module:
    if len(case.shape) == 3:
        return build_model(case.model, num_classes=case.classes, in_channels=case.shape[0], input_size=case.shape[1], seed=0)
    return build_model(case.model, num_classes=case.classes, in_features=case.shape[0], seed=0)


def engine_step(engine_cls, case: Case, device: torch.device):
    """An engine on random data (4 minibatches per worker) and a closure doing one step."""
    g = torch.Generator().manual_seed(0)
    per_worker = 4 * case.b
    pairs = [
        (torch.randn(per_worker, *case.shape, generator=g), torch.randint(0, case.classes, (per_worker,), generator=g))
        for _ in range(case.n)
    ]
    data = WorkerData.stack(pairs, device)
    sampler = MinibatchSampler(data, case.b, seed=0)
    engine = engine_cls(model_for(case), data, per_sample_cross_entropy, MOMENTUM, 0.0, device)
    return engine, lambda: engine.step(sampler.next(), 0.01)


def big_batch_step(case: Case, device: torch.device, channels_last: bool = False):
    """One model of the same architecture, torch.optim.SGD, one batch of n*b samples."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model_for(case).to(device).train().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=MOMENTUM)
    x = torch.randn(case.n * case.b, *case.shape, device=device)
    x = x.contiguous(memory_format=fmt) if x.dim() == 4 else x
    y = torch.randint(0, case.classes, (case.n * case.b,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def roofline(device: torch.device, seconds: float) -> dict[str, float]:
    """Attainable fp32 matmul FLOP/s (square GEMM) and copy bandwidth (bytes read + written
    per second), best of a few interleaved rounds."""
    size = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    src = torch.randn((2**30 if device.type == "cuda" else 2**28) // 4, device=device)
    dst = torch.empty_like(src)
    rates = interleaved_rates(
        {"mm": lambda: a @ b, "copy": lambda: dst.copy_(src)}, {"mm": 2 * size**3, "copy": 2 * src.numel() * 4},
        device, seconds, rounds=4,
    )  # fmt: skip
    return {"matmul_flops": max(rates["mm"]), "copy_bytes_per_s": max(rates["copy"])}


def count_flops(step) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def min_traffic_bytes(model: torch.nn.Module) -> float:
    """A lower bound on the bytes one SGD-with-momentum step must move per model copy:
    the weights read by the forward and by the backward GEMMs, the momentum read and
    written, the weights written (6 passes of 4 bytes per parameter; activations and the
    gradient, which a fused kernel need not store, are left out)."""
    return 6.0 * 4 * sum(p.numel() for p in model.parameters())


def state_bytes(engine: BatchedEngine) -> float:
    tensors = [*engine.params.values(), *engine.buffers.values(), *engine.momenta.values(), *engine._grad_buffers.values()]
    return float(sum(t.numel() * t.element_size() for t in tensors))


def peak_memory_per_worker(case: Case, device: torch.device) -> tuple[float, str]:
    """Peak memory of the batched engine per worker (MiB): on a GPU the allocator's peak
    (state + activations + workspace); on the CPU the growth of the peak resident set
    size (VmHWM, reset first) over building the engine and 3 steps, in a fresh process."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _, step = engine_step(BatchedEngine, case, device)
        for _ in range(3):
            step()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / case.n / 2**20, "cuda max_memory_allocated"
    out = subprocess.run([sys.executable, __file__, "--rss-probe", case.name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])["mib_per_worker"], "peak RSS growth (VmHWM)"


def _rss_probe(case_name: str) -> None:
    """Child process of peak_memory_per_worker: prints the peak RSS growth per worker as JSON."""
    case = next(c for c in CASES if c.name == case_name)
    before = _reset_peak_rss_kib()
    _, step = engine_step(BatchedEngine, case, torch.device("cpu"))
    for _ in range(3):
        step()
    print(json.dumps({"mib_per_worker": (_peak_rss_kib() - before) / 1024 / case.n}))


def _reset_peak_rss_kib() -> int:
    """Reset the RSS high-water mark (Linux: 5 > /proc/self/clear_refs) and return the
    current RSS; where that is impossible, the peak so far (an underestimate of growth)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _peak_rss_kib()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def run_case(case: Case, device: torch.device, seconds: float, rounds: int, with_vmap: bool, ablation: bool) -> dict:
    """Time the variants of one case; the roofline columns are added by with_roofline."""
    samples = case.n * case.b
    engine, batched = engine_step(BatchedEngine, case, device)
    steps = {"batched": batched}
    variant = lambda **kw: engine_step(functools.partial(BatchedEngine, **kw), case, device)[1]
    if with_vmap and engine.path == "fused":  # what the fused forward buys over vmap
        steps["vmap"] = variant(path="vmap")
    if ablation and engine.path == "fused":  # what each choice of the fused path buys
        steps["nosink"] = variant(sink_grads=False)
        if len(case.shape) == 3:
            steps["nchw"] = variant(memory_format="contiguous")
    steps["loop"] = engine_step(LoopEngine, case, device)[1]
    steps["bigbatch"] = big_batch_step(case, device)
    if len(case.shape) == 3:  # the same big model in channels_last, the layout the fused path uses
        steps["bigbatch_cl"] = big_batch_step(case, device, channels_last=True)
    rates = interleaved_rates(steps, {k: samples for k in steps}, device, seconds, rounds)

    # The n workers do the big model's arithmetic; torch's counter cannot be run on the
    # batched step itself: it over-counts grouped conv backward and misses baddbmm_.
    flops = count_flops(steps["bigbatch"])
    best = {k: max(v) for k, v in rates.items()}
    memory, how = peak_memory_per_worker(case, device)
    row = {
        "case": case.name, "path": engine.path,
        **{f"{k}_sps": v for k, v in best.items()},
        **{f"batched/{k}": median_ratio(rates["batched"], rates[k]) for k in steps if k != "batched"},
        **{f"batched/{k}@best": best["batched"] / best[k] for k in steps if k != "batched"},
        "step_gflop": flops / 1e9, "mb_per_worker": min_traffic_bytes(engine.model) / 1e6,
        "batched_ms": samples / best["batched"] * 1e3,
        "state_mib_per_worker": state_bytes(engine) / case.n / 2**20, "peak_mib_per_worker": memory, "peak_memory_by": how,
        "n": case.n, "samples": samples, "device_type": device.type,
    }  # fmt: skip
    target = case.targets.get(device.type)
    if target is not None:
        column, minimum = target
        # the target is judged on the lower of the two estimates of the ratio
        row["target"] = f"{column} >= {minimum}"
        row["target_low"] = min(row[column], row[f"{column}@best"])
    return row


def with_roofline(row: dict, peak: dict[str, float]) -> dict:
    """Add the roofline bound of the batched step (max of FLOPs at the matmul peak and the
    n workers' minimum traffic at the copy bandwidth) and the fraction of it reached."""
    flop_s, bytes_s = row["step_gflop"] * 1e9 / peak["matmul_flops"], row["mb_per_worker"] * 1e6 / peak["copy_bytes_per_s"]
    bound_s = max(flop_s, row["n"] * bytes_s)
    out = {
        **row, "bound_ms": bound_s * 1e3, "roofline_frac": bound_s * row["batched_sps"] / row["samples"],
        "bigbatch_roofline_frac": max(flop_s, bytes_s) * row["bigbatch_sps"] / row["samples"],
    }  # fmt: skip
    if "target" in row:
        gpu_ok = row["device_type"] != "cuda" or out["roofline_frac"] >= GPU_ROOFLINE_TARGET
        out["holds"] = row["target_low"] >= float(row["target"].split(">=")[1]) and gpu_ok
    return {k: out[k] for k in _order(out)}


def summary(rows: list[dict]) -> str:
    """The SUMMARY columns any row has, as a plain table."""
    cols = [k for k in SUMMARY if any(k in r for r in rows)]
    return table([{k: r.get(k) for k in cols} for r in rows])


def _order(row: dict) -> list[str]:
    """Summary columns first, in SUMMARY order, then the rest."""
    return [k for k in SUMMARY if k in row] + [k for k in row if k not in SUMMARY]


SUMMARY = ["case", "path", "batched_sps", "loop_sps", "bigbatch_sps", "batched/loop", "batched/bigbatch",
           "batched/bigbatch_cl", "batched/vmap", "batched/nosink", "batched/nchw", "step_gflop", "roofline_frac",
           "bigbatch_roofline_frac", "peak_mib_per_worker", "target", "target_low", "holds"]  # fmt: skip


def run(
    cases: list[Case], device: torch.device, seconds: float, rounds: int, with_vmap: bool, ablation: bool
) -> tuple[dict, list[dict]]:
    peak = roofline(device, seconds / 2)
    print(f"device: {device_name(device)}  matmul {peak['matmul_flops'] / 1e9:.0f} GFLOP/s  "
          f"copy {peak['copy_bytes_per_s'] / 1e9:.0f} GB/s  threads {torch.get_num_threads()}", flush=True)  # fmt: skip
    measured = []
    for case in cases:
        if device.type in case.devices:
            measured.append(run_case(case, device, seconds, rounds, with_vmap, ablation))
            print(summary([with_roofline(measured[-1], peak)]), flush=True)
    # measured again at the end: the attainable peak is the better of the two (another
    # process may have held a core during either)
    again = roofline(device, seconds / 2)
    peak = {k: max(v, again[k]) for k, v in peak.items()}
    print(f"attainable: matmul {peak['matmul_flops'] / 1e9:.0f} GFLOP/s  copy {peak['copy_bytes_per_s'] / 1e9:.0f} GB/s")
    return peak, [with_roofline(m, peak) for m in measured]


def main(argv: list[str] | None = None) -> None:
    parser = timing_parser(__doc__, seconds=8.0, rounds=8, quick="cifar_cnn and mlp")
    parser.add_argument("--no-vmap", action="store_true", help="skip timing the vmap path next to the fused one")
    parser.add_argument("--ablation", action="store_true", help="also time the fused path without grad sinks and in NCHW")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convs (GPU; engine, big batch and roofline alike)")
    parser.add_argument("--rss-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_probe:
        return _rss_probe(args.rss_probe)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    device = resolve_device(args.device)
    keep = set(filter(None, args.cases.split(","))) or ({"cifar_cnn", "mlp"} if args.quick else set())
    cases = [c for c in CASES if not keep or c.model in keep]
    seconds, rounds = (0.4, 2) if args.quick else (args.seconds, args.rounds)
    peak, rows = run(cases, device, seconds, rounds, not (args.no_vmap or args.quick), args.ablation and not args.quick)
    print(summary(rows))
    if args.quick:
        print("quick run: results not saved")
        return
    save_results("engine", device, [{**r, **peak, "tf32": args.tf32} for r in rows])


if __name__ == "__main__":
    main()
