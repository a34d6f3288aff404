"""What makes a run's curves hard to read, said before the curves: runs too short for a
global round, too few evaluations to draw a curve."""

from __future__ import annotations

from testbed.report.runfolder import RunFolder


def caveats(run: RunFolder) -> list[str]:
    """Plain sentences, one per problem; empty when the curves can be read as they are."""
    out = []
    last = int(run.metrics["iteration"].max())
    iterations = run.config.get("iterations")
    ran = int(iterations) if isinstance(iterations, int) and not isinstance(iterations, bool) else last
    short = [a for a in run.algorithms if a.global_period is not None and ran < a.global_period]
    if short:
        names = ", ".join(f"{a.label} (global period {a.global_period})" for a in short)
        out.append(f"{ran} iterations are fewer than one global period of {names}: these never average all workers, "
                   "so their curves show the virtual average of models that were never synchronised. "
                   "Run at least one global period (SET=\"iterations=...\").")
    points = run.metrics.groupby(["algorithm", "seed"])["iteration"].nunique()
    few = sorted({label for (label, _), n in points.items() if n < 2})
    if few:
        out.append(f"fewer than two evaluations per seed for {', '.join(few)}: a curve needs two points (each is drawn "
                   "as a marker). Evaluate more often than the run is long (SET=\"eval_every=...\").")
    return out
