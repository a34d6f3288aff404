"""Compare linux_reference.json with the ns-3 reference (and the testbed's TCP model).

    .venv/bin/python bench/netval/linux/compare.py [--markdown] [--no-testbed]

Signed differences: linux - ns-3 (s and relative to ns-3); testbed error = testbed / linux - 1.
The testbed part imports bench/netval/replay.py, so it needs the project's .venv.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text())["scenarios"]


def rows(linux: list[dict], testbed: bool) -> list[dict]:
    if testbed:
        import replay
    out = []
    for r in linux:
        lin, ns3 = r["median_completion_s"], r["ns3_completion_s"]
        mrep = r["reps"][r["median_rep"]]
        row = {"id": r["id"], "kind": r["kind"], "linux_s": lin, "ns3_s": ns3, "diff_s": lin - ns3,
               "rel": lin / ns3 - 1, "spread": (max(r["completion_s"]) - min(r["completion_s"])) / lin,
               "linux_rtos_median_rep": mrep["total_rtos"], "linux_rtos_reps": r["rtos_per_rep"],
               "linux_retx_median_rep": mrep["total_retx_segments"], "ns3_rtos": r["ns3_total_rtos"],
               "ns3_retx": r["ns3_total_retx_segments"], "faithful": r["emulation_faithful"],
               "gbps": r.get("bottleneck_1gbps", False)}
        if testbed:
            tb = replay.testbed_completion_s(r["scenario"], replay.MODELS["tcp"])
            row.update(testbed_s=tb, tb_err_linux=tb / lin - 1, tb_err_ns3=tb / ns3 - 1)
        out.append(row)
    return out


def summarize(rs: list[dict], testbed: bool) -> list[str]:
    lines = []
    for kind in ("single", "shared", "all"):
        for subset, pick in (("all", lambda x: True), ("faithful", lambda x: x["faithful"]),
                             ("<1 Gbit/s", lambda x: not x["gbps"])):
            sel = [x for x in rs if (kind == "all" or x["kind"] == kind) and pick(x)]
            if not sel:
                continue
            rel = sorted(x["rel"] for x in sel)
            d = sorted(x["diff_s"] for x in sel)
            s = (f"{kind:6s} {subset:9s} n={len(sel):2d}: linux vs ns-3 rel median {statistics.median(rel):+.1%} "
                 f"[{rel[0]:+.1%} .. {rel[-1]:+.1%}], abs median {statistics.median(d):+.3f} s "
                 f"[{d[0]:+.3f} .. {d[-1]:+.3f}]; within 5%: {sum(abs(x) <= .05 for x in rel)}, "
                 f"within 10%: {sum(abs(x) <= .10 for x in rel)}; linux faster in {sum(x < 0 for x in rel)}")
            lines.append(s)
            if kind == "shared" and subset == "all":
                lines.append(f"       RTOs: ns-3 in {sum(x['ns3_rtos'] > 0 for x in sel)}/{len(sel)} scenarios "
                             f"(total {sum(x['ns3_rtos'] for x in sel)}); linux in "
                             f"{sum(x['linux_rtos_median_rep'] > 0 for x in sel)}/{len(sel)} (median rep, total "
                             f"{sum(x['linux_rtos_median_rep'] for x in sel)}), in any rep "
                             f"{sum(max(x['linux_rtos_reps']) > 0 for x in sel)}/{len(sel)}")
            if testbed:
                e = sorted(x["tb_err_linux"] for x in sel)
                e3 = sorted(x["tb_err_ns3"] for x in sel)
                lines.append(f"       testbed tcp vs linux: within 10% {sum(abs(x) <= .10 for x in e)}/{len(e)}, "
                             f"within 15% {sum(abs(x) <= .15 for x in e)}, median {statistics.median(e):+.1%} "
                             f"[{e[0]:+.1%} .. {e[-1]:+.1%}]  (vs ns-3 on the same: within 10% "
                             f"{sum(abs(x) <= .10 for x in e3)}/{len(e3)}, median {statistics.median(e3):+.1%})")
    return lines


def markdown(rs: list[dict], testbed: bool) -> str:
    head = "| scenario | linux (s) | ns-3 (s) | linux-ns3 | RTOs linux (3 reps) / ns-3 | faithful |"
    sep = "|---|---:|---:|---:|---|---|"
    if testbed:
        head += " testbed (s) | err vs linux |"
        sep += "---:|---:|"
    out = [head, sep]
    for x in rs:
        line = (f"| {x['id']} | {x['linux_s']:.4f} | {x['ns3_s']:.4f} | {x['rel']:+.1%} | "
                f"{'/'.join(map(str, x['linux_rtos_reps']))} / {x['ns3_rtos']} | {'yes' if x['faithful'] else 'NO'} |")
        if testbed:
            line += f" {x['testbed_s']:.4f} | {x['tb_err_linux']:+.1%} |"
        out.append(line)
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--linux", type=Path, default=HERE / "linux_reference.json")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--no-testbed", action="store_true")
    args = ap.parse_args(argv)
    rs = rows(load(args.linux), not args.no_testbed)
    if args.markdown:
        print(markdown(rs, not args.no_testbed))
        print()
    print("\n".join(summarize(rs, not args.no_testbed)))


if __name__ == "__main__":
    main()
