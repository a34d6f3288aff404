"""Importers for public latency measurement formats, and RTT traces derived from them.

* a region-to-region latency matrix in JSON, ``{"data": {src: {dst: ms}}}``, the shape
  cloudping-style services publish (one summary statistic, e.g. p50, per pair);
* a ping table CSV ``source,destination,timestamp,min,avg,max,mdev`` (one row per ping
  batch; ``timestamp`` in Unix seconds or ISO 8601), giving one trace per pair.

A matrix only gives one number per pair; :func:`synthesize_rtt_trace` turns such a
median into a trace with a documented jitter model (see ``traces/README.md``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime
from pathlib import Path

import numpy as np

from .traces import Trace, is_finite_number, read_text

MAX_UNIX_S = 1e11  # seconds from 1970: some 3000 years either way, and differences of them stay exact enough
PING_COLUMNS = ("source", "destination", "timestamp", "min", "avg", "max", "mdev")


def read_latency_matrix(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """``{(src, dst): ms}`` from a JSON matrix ``{"data": {src: {dst: ms}}}``; other
    top-level keys are ignored. Refusals name the file and the pair."""
    path = Path(path)
    try:
        doc = json.loads(read_text(path, "a latency matrix is UTF-8 JSON"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply for a latency matrix") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise ValueError(f"{path}: expected an object with a 'data' object: {{\"data\": {{src: {{dst: ms}}}}}}")
    out: dict[tuple[str, str], float] = {}
    for src, row in doc["data"].items():
        if not isinstance(row, dict):
            raise ValueError(f"{path}: data[{src!r}] must be an object {{dst: ms}}, got {type(row).__name__}")
        for dst, ms in row.items():
            if not is_finite_number(ms):
                raise ValueError(f"{path}: data[{src!r}][{dst!r}] = {ms!r} is not a finite number of ms")
            if ms < 0:
                raise ValueError(f"{path}: data[{src!r}][{dst!r}] = {ms} ms is negative")
            out[(str(src), str(dst))] = float(ms)
    if not out:
        raise ValueError(f"{path}: the matrix is empty")
    return out


def read_ping_table(path: str | os.PathLike) -> dict[tuple[str, str], Trace]:
    """One ``rtt_ms`` trace per (source, destination) from a ping table CSV: ``rtt_ms`` is
    the ``avg`` column, ``t_s`` the timestamp relative to the pair's first row; rows are
    sorted by timestamp. Extra columns are ignored."""
    path = Path(path)
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with io.StringIO(read_text(path, "a ping table is UTF-8 CSV"), newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty file; expected a header {','.join(PING_COLUMNS)}")
        header = [h.strip() for h in reader.fieldnames]
        missing = [c for c in PING_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; a ping table has {','.join(PING_COLUMNS)}")
        reader.fieldnames = header
        for k, row in enumerate(reader, start=1):
            where = f"{path}: row {k} (line {reader.line_num})"
            if any(row.get(c) is None for c in PING_COLUMNS):
                raise ValueError(f"{where}: too few fields")
            src, dst = row["source"].strip(), row["destination"].strip()
            if not src or not dst:
                raise ValueError(f"{where}: empty source or destination")
            ts = parse_timestamp(row["timestamp"], where)
            stats = {}
            for c in ("min", "avg", "max", "mdev"):
                try:
                    x = float(row[c])
                except ValueError:
                    raise ValueError(f"{where}, column {c!r}: {row[c]!r} is not a number") from None
                if not math.isfinite(x) or x < 0:
                    raise ValueError(f"{where}, column {c!r}: {row[c]!r} must be a finite number >= 0")
                stats[c] = x
            if not stats["min"] <= stats["avg"] <= stats["max"]:
                raise ValueError(
                    f"{where}: min <= avg <= max does not hold ({stats['min']}, {stats['avg']}, {stats['max']})"
                )
            pairs.setdefault((src, dst), []).append((ts, stats["avg"]))
    if not pairs:
        raise ValueError(f"{path}: no data rows after the header")
    out = {}
    for (src, dst), rows in pairs.items():
        rows.sort(key=lambda r: r[0])
        t = np.array([r[0] for r in rows])
        out[(src, dst)] = Trace(f"{src}__{dst}", "rtt_ms", t - t[0], np.array([r[1] for r in rows]),
                                source=f"{path} ({src} -> {dst})")
    return out


def parse_timestamp(text: str, where: str) -> float:
    """Unix seconds or ISO 8601 (a trailing Z is UTC); the error names ``where``."""
    text = text.strip()
    try:
        if not text.isascii() or "_" in text:  # float() also reads 1_000 and non-ASCII digits
            raise ValueError
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not abs(seconds) <= MAX_UNIX_S:  # also NaN
            raise ValueError(f"{where}, column 'timestamp': {text!r} is not a Unix time within {MAX_UNIX_S:g} s of 1970")
        return seconds
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"{where}, column 'timestamp': {text!r} is neither Unix seconds nor ISO 8601") from None


def synthesize_rtt_trace(
    p50_ms: float,
    n: int,
    rng: np.random.Generator,
    *,
    floor_frac: float,
    sigma: float,
    rho: float = 0.9,
    interval_s: float = 1.0,
    name: str = "synthetic",
) -> Trace:
    """``n`` RTT samples whose median is ``p50_ms`` in distribution:

        rtt_k = p50 * (floor_frac + (1 - floor_frac) * exp(sigma * z_k)),
        z_k = rho * z_{k-1} + sqrt(1 - rho^2) * e_k,  e_k ~ N(0, 1),  z_0 ~ N(0, 1)

    ``floor_frac * p50`` is the propagation floor, the log-normal part queueing jitter,
    and the AR(1) ``z`` makes neighbouring samples alike, as in a real recording."""
    if not (p50_ms > 0 and n >= 1 and 0 <= floor_frac < 1 and sigma >= 0 and -1 < rho < 1 and interval_s > 0):
        raise ValueError(
            f"synthesize_rtt_trace: need p50_ms > 0, n >= 1, 0 <= floor_frac < 1, sigma >= 0, |rho| < 1, "
            f"interval_s > 0; got {p50_ms}, {n}, {floor_frac}, {sigma}, {rho}, {interval_s}"
        )
    e = rng.standard_normal(n)
    z = np.empty(n)
    z[0] = e[0]
    a, b = rho, math.sqrt(1 - rho * rho)
    for k in range(1, n):
        z[k] = a * z[k - 1] + b * e[k]
    rtt = p50_ms * (floor_frac + (1 - floor_frac) * np.exp(sigma * z))
    return Trace(name, "rtt_ms", np.arange(n) * interval_s, rtt)
