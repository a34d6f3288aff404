"""Regenerate the shipped RTT traces: `python traces/generate.py` (from the repo root).

Deterministic: one SeedSequence (SEED) spawns one generator per trace, in the order of
TRACES below. Provenance of every number is in traces/README.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from testbed.net.importers import read_latency_matrix, synthesize_rtt_trace
from testbed.net.traces import Trace, write_trace

HERE = Path(__file__).resolve().parent
SEED = 3  # the issue number; any fixed value would do
ROWS = 1000  # one sample per second for about 17 minutes
INTERVAL_S = 1.0
RHO = 0.9  # AR(1) correlation between neighbouring samples (1 s apart)

# Home broadband median latency, as quoted in issue 3 ("published home-broadband medians
# of roughly 150-200 Mbit/s down, 20 Mbit/s up, 14 ms latency"). Taken as the median RTT
# from a home to the nearest (same-region) EC2 region.
HOME_P50_MS = 14.0
HOME_JITTER = dict(floor_frac=0.7, sigma=0.6)  # access links: bufferbloat and Wi-Fi jitter
BACKBONE_JITTER = dict(floor_frac=0.95, sigma=0.5)  # provider backbone: nearly constant

# trace name -> how it is made; the order fixes which spawned generator each one gets
TRACES = [
    ("interregion_use1_use2", ("matrix", "us-east-1", "us-east-2")),
    ("interregion_use1_usw2", ("matrix", "us-east-1", "us-west-2")),
    ("interregion_use1_euc1", ("matrix", "us-east-1", "eu-central-1")),
    ("home_near_ec2", ("home",)),
    ("home_far_ec2", ("home+matrix", "us-east-1", "us-west-2")),
]


def _series(p50_ms: float, rng: np.random.Generator, jitter: dict) -> Trace:
    return synthesize_rtt_trace(p50_ms, ROWS, rng, rho=RHO, interval_s=INTERVAL_S, **jitter)


def build() -> dict[str, Trace]:
    matrix = read_latency_matrix(HERE / "sources" / "cloudping_p50_quoted.json")
    gens = [np.random.default_rng(s) for s in np.random.SeedSequence(SEED).spawn(len(TRACES))]
    out = {}
    for (name, how), rng in zip(TRACES, gens, strict=True):
        if how[0] == "matrix":
            tr = _series(matrix[(how[1], how[2])], rng, BACKBONE_JITTER)
        elif how[0] == "home":
            tr = _series(HOME_P50_MS, rng, HOME_JITTER)
        else:  # a home access path followed by an inter-region path, independent series
            a = _series(HOME_P50_MS, rng, HOME_JITTER)
            b = _series(matrix[(how[1], how[2])], rng, BACKBONE_JITTER)
            tr = Trace(name, "rtt_ms", a.t_s, a.values + b.values)
        out[name] = Trace(name, "rtt_ms", tr.t_s, tr.values)
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, tr in build().items():
        write_trace(tr, HERE / f"{name}.csv")
        s = tr.summary()
        logging.info("%s.csv: p50 %.1f ms, p90 %.1f, p99 %.1f, min %.1f, max %.1f",
                     name, s["p50"], s["p90"], s["p99"], s["min"], s["max"])


if __name__ == "__main__":
    main()
