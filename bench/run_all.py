"""Run every benchmark in turn (what `make bench` does): engine, end to end, network, then
distributed (1 process x 2 threads vs 2 processes x 1 thread; on the CPU, gloo).

    python bench/run_all.py [--quick] [--device auto]

``--quick`` (or ``TESTBED_SMOKE=1`` in the environment, as the README test sets it) is a
smoke run on a tiny budget (nothing saved); otherwise each script
appends its rows to bench/results/<device>.json. Each script runs in its own process,
so one's allocations and threads do not colour the next one's timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from testbed.experiment.smoke import smoke_enabled

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget, nothing saved (the make-target smoke test)")
    parser.add_argument("--device", default="auto", help="device for the engine benchmark (auto, cpu, cuda)")
    args = parser.parse_args()
    quick = ["--quick"] if args.quick or smoke_enabled() else []
    runs = [["engine.py", "--device", args.device, *quick], ["end_to_end.py", "--device", args.device, *quick],
            ["network.py", *quick], ["distributed.py", *quick]]
    for script, *script_args in runs:
        print(f"== {script} {' '.join(script_args)}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *script_args], cwd=HERE)
        if done.returncode != 0:
            print(f"{script} failed with exit code {done.returncode}", file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
