"""End-to-end benchmark: what a user gets from ``testbed.simulate`` and from the CLI's
experiment loop, next to the engine step alone, one big-batch model and the peers, per
precision, measured side by side in one run.

    python bench/end_to_end.py [--cases cifar_cnn,mlp,femnist_cnn] [--device auto] [--seconds 6] [--rounds 4]
                               [--precisions fp32,bf16] [--no-flower] [--quick]

Variants of a case (samples/s; one call = one global period, so every call aggregates):

* ``engine``: the batched engine's step alone (bench/engine.py's measurement);
* ``simulate``: the main loop of ``testbed.simulate`` (minibatch sampling, the step, the
  non-finite watch, aggregation, the train-loss row at the end); built once, as a long
  run amortises its setup, which is reported apart (``setup_s``);
* ``experiment``: the same loop with the CLI's callbacks: the network clock
  (``NetworkTimer`` on a fresh ``NetworkClock`` per call) and the progress line; without
  evaluation, divergence probe or checkpoints;
* ``bigbatch``: one model, ``torch.optim.SGD``, one batch of n*b samples;
* ``loop``: the sequential per-client loop of the paper's code (bench/peers.py), on
  tensors; ``loop_dataloader``: the same reading minibatches through DataLoaders;
* ``engine_<p>`` / ``simulate_<p>``: the engine and the loop at precision p.

Flower (optional, bench/peers.py) runs in its own process after the interleaved rounds.
Prints a table and appends the rows to bench/results/<device>.json.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import torch

from common import device_name, interleaved_rates, median_ratio, save_results, sync, table, timing_parser
from engine import big_batch_step, model_for
from peers import SequentialClients, flower_rate
from testbed.engine import BatchedEngine, MinibatchSampler, WorkerData
from testbed.experiment.progress import Progress
from testbed.experiment.timer import NetworkTimer
from testbed.net import NetworkClock, load_topology
from testbed.net.builders import hierarchy_graph
from testbed.device import resolve_device
from testbed.simulate import HSGDRun, TrainConfig, per_sample_cross_entropy

MOMENTUM, LR = 0.9, 0.01
LINK = {"latency_ms": 10.0, "up_mbps": 100.0, "down_mbps": 100.0}


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    n: int  # workers
    b: int  # minibatch per worker
    shape: tuple[int, ...]
    classes: int
    fanouts: tuple[int, ...]  # servers' children per level, top first
    periods: tuple[int, ...]  # G (and I)
    targets: tuple[tuple[str, float], ...] = (("simulate/engine", 0.9),)


CASES = [
    Case("mlp n=64 b=16 G=20 I=5", "mlp", 64, 16, (60,), 10, (8, 8), (20, 5)),
    Case("mlp n=100 b=16 P=20", "mlp", 100, 16, (60,), 10, (100,), (20,), (("simulate/engine", 0.9), ("simulate/flower", 5.0))),
    Case("cifar_cnn n=10 b=20 G=50 I=5", "cifar_cnn", 10, 20, (3, 32, 32), 10, (2, 5), (50, 5),
         (("simulate/engine", 0.9), ("simulate/loop", 5.0))),
    Case("femnist_cnn n=32 b=20 P=20", "femnist_cnn", 32, 20, (1, 28, 28), 62, (32,), (20,),
         (("simulate/engine", 0.9), ("simulate/flower", 2.5))),
]  # fmt: skip


def worker_pairs(case: Case) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    m = 4 * case.b
    return [(torch.randn(m, *case.shape, generator=g), torch.randint(0, case.classes, (m,), generator=g)) for _ in range(case.n)]


def topology(case: Case):
    return load_topology(hierarchy_graph(list(case.fanouts), list(case.periods), [LINK] * len(case.fanouts), name="bench"))


def simulation(case: Case, device: torch.device, precision: str = "fp32") -> HSGDRun:
    """The main loop of testbed.simulate on the case, over one global period per run()."""
    topo = topology(case)
    config = TrainConfig(case.periods[0], LR, case.b, MOMENTUM, eval_every=case.periods[0], train_eval_samples=0,
                         precision=precision)
    data = WorkerData.stack(worker_pairs(case), device)
    return HSGDRun(model_for(case), data, topo.tree, config, per_sample_cross_entropy, BatchedEngine, device, None)


def experiment_callbacks(case: Case, topo, model_bytes: int) -> list:
    clock = NetworkClock(topo, model_bytes=model_bytes, seed=0, compute_ms=4.0, record="aggregations")
    return [NetworkTimer(clock), Progress(case.name, case.periods[0], stream=io.StringIO())]


def engine_step(case: Case, device: torch.device, precision: str = "fp32"):
    data = WorkerData.stack(worker_pairs(case), device)
    sampler = MinibatchSampler(data, case.b, seed=0)
    engine = BatchedEngine(model_for(case), data, per_sample_cross_entropy, MOMENTUM, 0.0, device, precision=precision)
    return lambda: engine.step(sampler.next(), LR)


def profile(run: HSGDRun, device: torch.device) -> dict[str, float]:
    """Where one global period of the loop goes: shares of its wall time."""
    parts = {"step": (run.engine, "step"), "sample": (run.sampler, "next"), "aggregate": (run.engine, "average")}
    spent = dict.fromkeys(parts, 0.0)
    originals = {}
    for key, (obj, name) in parts.items():
        real = originals[key] = getattr(obj, name)

        def timed(*args, _real=real, _key=key, **kwargs):
            sync(device)
            start = time.perf_counter()
            out = _real(*args, **kwargs)
            sync(device)
            spent[_key] += time.perf_counter() - start
            return out

        setattr(obj, name, timed)
    start = time.perf_counter()
    run.run()
    total = time.perf_counter() - start
    for key, (obj, name) in parts.items():
        delattr(obj, name)  # the instance attribute hid the class's method
    return {f"share_{k}": v / total for k, v in spent.items()} | {"share_rest": 1 - sum(spent.values()) / total}


def run_case(case: Case, device: torch.device, seconds: float, rounds: int, precisions: list[str], flower: bool) -> dict:
    samples_per_round = case.periods[0] * case.n * case.b
    started = time.perf_counter()
    sim = simulation(case, device)
    setup_s = time.perf_counter() - started
    topo = topology(case)
    model_bytes = 4 * sum(p.numel() for p in model_for(case).parameters())
    groups = [list(s.workers) for s in sim.tree.level(sim.tree.n_levels - 1)]
    clients = lambda **kw: SequentialClients(model_for(case), worker_pairs(case), groups, (case.periods[0], case.periods[-1]),
                                             case.b, LR, MOMENTUM, device, **kw)  # fmt: skip
    steps = {
        "engine": engine_step(case, device),
        "simulate": lambda: sim.run(),
        "experiment": lambda: sim.run(experiment_callbacks(case, topo, model_bytes)),
        "bigbatch": big_batch_step(case, device),
        "loop": clients().round,
        "loop_dataloader": clients(data_loader=True).round,
    }
    for p in precisions:
        if p != "fp32":
            steps[f"engine_{p}"] = engine_step(case, device, p)
            steps[f"simulate_{p}"] = simulation(case, device, p).run
    # a step trains n*b samples; the other variants' calls a whole global period
    per_call = {k: case.n * case.b if k.startswith(("engine", "bigbatch")) else samples_per_round for k in steps}
    rates = interleaved_rates(steps, per_call, device, seconds, rounds)
    best = {k: max(v) for k, v in rates.items()}
    row = {
        "case": case.name, "path": sim.engine.path, **{f"{k}_sps": v for k, v in best.items()},
        "simulate/engine": median_ratio(rates["simulate"], rates["engine"]),
        "experiment/engine": median_ratio(rates["experiment"], rates["engine"]),
        "engine/bigbatch": median_ratio(rates["engine"], rates["bigbatch"]),
        "simulate/bigbatch": median_ratio(rates["simulate"], rates["bigbatch"]),
        "simulate/loop": median_ratio(rates["simulate"], rates["loop"]),
        "simulate/loop_dataloader": median_ratio(rates["simulate"], rates["loop_dataloader"]),
        **{f"{k}/fp32": median_ratio(rates[k], rates[k.split("_")[0]]) for k in steps if k.endswith(("bf16", "fp16"))},
        "setup_s": setup_s, "n": case.n, "b": case.b, "periods": "/".join(map(str, case.periods)),
    }  # fmt: skip
    row.update(profile(sim, device))
    if flower:
        spec = {"model": case.model, "n": case.n, "b": case.b, "shape": list(case.shape), "classes": case.classes,
                "local_steps": case.periods[-1], "lr": LR, "momentum": MOMENTUM}  # fmt: skip
        rate, note = flower_rate(spec, rounds=3)
        row["flower_sps"], row["flower_note"] = rate, note
        row["simulate/flower"] = best["simulate"] / rate if rate else None
    checks = [(col, low, row.get(col)) for col, low in case.targets]
    row["targets"] = "; ".join(f"{c} >= {low}: {'-' if v is None else ('yes' if v >= low else 'no')}" for c, low, v in checks)
    return row


SUMMARY = ["case", "engine_sps", "simulate_sps", "experiment_sps", "bigbatch_sps", "loop_sps", "loop_dataloader_sps",
           "flower_sps", "simulate/engine", "experiment/engine", "engine/bigbatch", "simulate/loop",
           "simulate/loop_dataloader", "simulate/flower",
           "engine_bf16/fp32", "simulate_bf16/fp32", "engine_fp16/fp32", "simulate_fp16/fp32",
           "share_step", "share_sample", "share_aggregate", "share_rest", "setup_s", "targets"]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = timing_parser(__doc__, seconds=6.0, rounds=4, quick="mlp n=64 only")
    parser.add_argument("--precisions", default="", help="comma-separated: fp32 and bf16 (CPU, GPU), fp16 (GPU); default: all the device has")
    parser.add_argument("--no-flower", action="store_true", help="skip the Flower peer")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    default_precisions = "fp32,bf16,fp16" if device.type == "cuda" else "fp32,bf16"
    precisions = (args.precisions or default_precisions).split(",")
    keep = set(filter(None, args.cases.split(",")))
    cases = [c for c in CASES if not keep or c.model in keep]
    seconds, rounds = args.seconds, args.rounds
    if args.quick:
        cases, seconds, rounds = [c for c in CASES if c.name.startswith("mlp n=64")], 0.3, 1
    print(f"device: {device_name(device)}  threads {torch.get_num_threads()}", flush=True)
    rows = []
    for case in cases:
        rows.append(run_case(case, device, seconds, rounds, precisions, flower=not (args.no_flower or args.quick)))
        print(table([{k: rows[-1].get(k) for k in SUMMARY if k in rows[-1]}]), flush=True)
    print(table([{k: r.get(k) for k in SUMMARY if any(k in x for x in rows)} for r in rows]))
    if args.quick:
        print("quick run: results not saved")
        return
    save_results("end_to_end", device, rows)


if __name__ == "__main__":
    main()
