"""Readers for two public measurement formats, turned into the project's traces.

* **ping series** (``source,dest,size,time,source_region,dest_region``, optionally
  gzipped): ordered ICMP RTTs in ms between instances, one series per
  (source, dest, size), rows in measurement order and no timestamps (the layout of
  input-output-hk/ouroboros-leios ``data/BenchTopology/latency.csv.gz``). One ``rtt_ms``
  trace per region pair or per instance pair; ``t_s`` is the sample's position (0, 1,
  2, ...), since the series carry no times.
* **iperf/ping results** (``timestamp,run_id,from_cloud,from_region,to_cloud,to_region,
  bitrate_Bps,avgrtt,...``: doitintl/intercloud-throughput ``results.csv``): one row per
  test run between two cloud regions, with ping's average RTT in ms and iperf 2's
  single-stream TCP throughput (bits per second despite the column's name). One
  ``rtt_ms`` and one ``mbps`` trace per region pair, a row per run in time order.

Malformed rows are never dropped silently: ``strict=True`` refuses the first one, naming
the file, the row and the rule; ``strict=False`` skips them and counts each reason in
:attr:`Measurements.skipped`.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .importers import parse_timestamp
from .traces import Trace

PING_SERIES_COLUMNS = ("source", "dest", "size", "time", "source_region", "dest_region")
IPERF_COLUMNS = ("timestamp", "from_cloud", "from_region", "to_cloud", "to_region", "bitrate_Bps", "avgrtt")
FORMATS = ("ping-series", "iperf")
BY = ("region", "instance")


@dataclass(frozen=True)
class Measurements:
    """Traces read from one measurement file, keyed by (from, to), plus what was skipped."""

    path: Path
    format: str  # 'ping-series' or 'iperf'
    rtt: dict[tuple[str, str], Trace]
    mbps: dict[tuple[str, str], Trace] = field(default_factory=dict)
    rows_read: int = 0  # data rows in the file
    rows_used: int = 0  # rows that became trace samples
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows skipped

    def summary(self) -> dict:
        """A JSON-ready description: counts, skipped rows by reason, per-pair percentiles."""
        pairs = []
        for key in sorted(set(self.rtt) | set(self.mbps)):
            entry: dict = {"from": key[0], "to": key[1]}
            for kind, table in (("rtt_ms", self.rtt), ("mbps", self.mbps)):
                if key in table:
                    s = table[key].summary()
                    entry[kind] = {k: round(s[k], 6) for k in ("count", "min", "p50", "p90", "p99", "max", "mean")}
            pairs.append(entry)
        return {"source": str(self.path), "format": self.format, "rows_read": self.rows_read,
                "rows_used": self.rows_used, "rows_skipped": sum(self.skipped.values()),
                "skipped_by_reason": dict(sorted(self.skipped.items())), "pairs": pairs}


def detect_format(path: str | os.PathLike) -> str:
    """'ping-series' or 'iperf' from the header row; refusals name the file and both headers."""
    path = Path(path)
    header = [h.strip() for h in next(csv.reader(io.StringIO(_first_line(path))), [])]
    if all(c in header for c in PING_SERIES_COLUMNS):
        return "ping-series"
    if all(c in header for c in IPERF_COLUMNS):
        return "iperf"
    raise ValueError(
        f"{path}: unknown measurement format (header {header}); a ping series has "
        f"{','.join(PING_SERIES_COLUMNS)}, iperf results have {','.join(IPERF_COLUMNS)}"
    )


def read_ping_series(
    path: str | os.PathLike, *, by: str = "region", size: int | None = 64, undirected: bool = False,
    strict: bool = True,
) -> Measurements:
    """One ``rtt_ms`` trace per (source_region, dest_region) (``by='region'``) or per
    (source, dest) instance pair (``by='instance'``) from a ping-series CSV (``.gz`` read
    as gzip). ``size``: keep only pings of this packet size (None: all sizes). A region
    pair's trace is its instance series one after the other, in (source, dest) order,
    each in measurement order. ``undirected``: one trace per unordered pair, keyed
    (a, b) with a <= b, holding both directions (ICMP RTTs are round trips either way)."""
    if by not in BY:
        raise ValueError(f"by must be one of {list(BY)}, got {by!r}")
    path = Path(path)
    series: dict[tuple[str, str], list[float]] = {}
    region_of: dict[tuple[str, str], tuple[str, str]] = {}
    tally = _Tally()

    def parse(row: dict, where: str):
        src, dst = _field(row, "source", where), _field(row, "dest", where)
        regions = (_field(row, "source_region", where), _field(row, "dest_region", where))
        packet, rtt = _number(row, "size", where), _number(row, "time", where)
        if rtt < 0:
            raise _Bad("negative RTT", f"{where}, column 'time': {rtt} ms is negative; an RTT is >= 0")
        return src, dst, regions, packet, rtt

    for src, dst, regions, packet, rtt in _parsed_rows(path, PING_SERIES_COLUMNS, "a ping series", parse, strict, tally):
        if size is not None and packet != size:
            continue
        series.setdefault((src, dst), []).append(rtt)
        region_of[(src, dst)] = regions
        tally.used += 1
    rows, used, skipped = tally.rows, tally.used, tally.skipped
    if not series:
        what = f" of size {size}" if size is not None else ""
        raise ValueError(f"{path}: no usable ping rows{what} ({rows} data rows, {sum(skipped.values())} skipped)")
    merged: dict[tuple[str, str], list[float]] = {}
    for pair in sorted(series, key=_natural_key):
        key = pair if by == "instance" else region_of[pair]
        merged.setdefault(_orient(key, undirected), []).extend(series[pair])
    sep = " <-> " if undirected else " -> "
    out = {(a, b): _trace(f"{a}__{b}", "rtt_ms", values, f"{path} ({a}{sep}{b})")
           for (a, b), values in sorted(merged.items())}
    return Measurements(path, "ping-series", out, {}, rows, used, dict(skipped))


def read_iperf_results(
    path: str | os.PathLike, *, clouds: tuple[str, str] | None = ("AWS", "AWS"), undirected: bool = False,
    strict: bool = True,
) -> Measurements:
    """Per (from_region, to_region): an ``rtt_ms`` trace of ping's average RTT and an
    ``mbps`` trace of iperf's single-stream throughput (``bitrate_Bps`` / 1e6: the field
    holds bits per second), one row per run in timestamp order; ``t_s`` is seconds since
    the pair's first run. ``clouds``: keep only rows from one cloud to another (None: all;
    region names are then prefixed with their cloud, ``AWS:us-east-1``). ``undirected``: one
    pair of traces per unordered region pair (a <= b), runs of both directions merged."""
    path = Path(path)
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    tally = _Tally()

    def parse(row: dict, where: str):
        fc, tc = _field(row, "from_cloud", where), _field(row, "to_cloud", where)
        fr, tr = _field(row, "from_region", where), _field(row, "to_region", where)
        ts = _timestamp(row, where)
        bits, rtt = _number(row, "bitrate_Bps", where), _number(row, "avgrtt", where)
        if bits <= 0:
            raise _Bad("throughput not > 0", f"{where}, column 'bitrate_Bps': {bits} must be > 0")
        if rtt < 0:
            raise _Bad("negative RTT", f"{where}, column 'avgrtt': {rtt} ms is negative; an RTT is >= 0")
        return fc, tc, fr, tr, ts, bits, rtt

    for fc, tc, fr, tr, ts, bits, rtt in _parsed_rows(path, IPERF_COLUMNS, "iperf results", parse, strict, tally):
        if clouds is not None and (fc, tc) != tuple(clouds):
            continue
        key = (fr, tr) if clouds is not None else (f"{fc}:{fr}", f"{tc}:{tr}")
        runs.setdefault(_orient(key, undirected), []).append((ts, rtt, bits / 1e6))
        tally.used += 1
    rows, used, skipped = tally.rows, tally.used, tally.skipped
    if not runs:
        what = f" from {clouds[0]} to {clouds[1]}" if clouds is not None else ""
        raise ValueError(f"{path}: no usable rows{what} ({rows} data rows, {sum(skipped.values())} skipped)")
    rtt_out, mbps_out = {}, {}
    for (a, b), samples in sorted(runs.items()):
        samples.sort(key=lambda s: s[0])  # stable: runs at the same second keep file order
        t = np.array([s[0] for s in samples])
        src = f"{path} ({a}{' <-> ' if undirected else ' -> '}{b})"
        rtt_out[(a, b)] = Trace(f"{a}__{b}", "rtt_ms", t - t[0], np.array([s[1] for s in samples]), source=src)
        mbps_out[(a, b)] = Trace(f"{a}__{b}", "mbps", t - t[0], np.array([s[2] for s in samples]), source=src)
    return Measurements(path, "iperf", rtt_out, mbps_out, rows, used, dict(skipped))


# ---- helpers ----------------------------------------------------------------------------


class _Bad(Exception):
    """A malformed row: ``reason`` groups the skip count, the message names file and row."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Tally:
    """Data rows read, rows used, and rows skipped by reason."""

    rows: int = 0
    used: int = 0
    skipped: Counter = field(default_factory=Counter)


def _parsed_rows(path: Path, columns, what: str, parse, strict: bool, tally: _Tally):
    """Each data row of a measurement CSV through ``parse(row, where)``; a malformed row
    (``_Bad``) is refused when ``strict``, else skipped and counted by its reason."""
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        _check_columns(path, reader, columns, what)
        for k, row in enumerate(reader, start=1):
            tally.rows += 1
            try:
                yield parse(row, f"{path}: row {k} (line {reader.line_num})")
            except _Bad as bad:
                if strict:
                    raise ValueError(str(bad)) from None
                tally.skipped[bad.reason] += 1


def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _first_line(path: Path) -> str:
    try:
        with _open_text(path) as f:
            return f.readline()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise ValueError(f"{path}: cannot be read as (gzipped) UTF-8 CSV ({err})") from None


def _check_columns(path: Path, reader: csv.DictReader, needed: tuple[str, ...], what: str) -> None:
    try:
        names = reader.fieldnames
    except (UnicodeDecodeError, EOFError, OSError) as err:
        raise ValueError(f"{path}: cannot be read as (gzipped) UTF-8 CSV ({err})") from None
    if names is None:
        raise ValueError(f"{path}: empty file; {what} has the header {','.join(needed)}")
    header = [h.strip() for h in names]
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; {what} has {','.join(needed)}")
    reader.fieldnames = header


def _field(row: dict, col: str, where: str) -> str:
    if row.get(None):  # csv.DictReader keeps surplus fields under the key None
        raise _Bad("too many fields", f"{where}: {len(row) - 1 + len(row[None])} fields, more than the header's {len(row) - 1}")
    value = row.get(col)
    if value is None:
        raise _Bad("too few fields", f"{where}: too few fields (no {col!r})")
    value = value.strip()
    if not value:
        raise _Bad(f"empty {col}", f"{where}, column {col!r}: empty")
    return value


def _number(row: dict, col: str, where: str) -> float:
    text = _field(row, col, where)
    try:
        x = float(text)
    except ValueError:
        raise _Bad(f"{col} not a number", f"{where}, column {col!r}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise _Bad(f"{col} not finite", f"{where}, column {col!r}: {text!r} is not a finite number")
    return x


def _timestamp(row: dict, where: str) -> float:
    text = _field(row, "timestamp", where)
    try:
        return parse_timestamp(text, where)
    except ValueError as err:
        raise _Bad("bad timestamp", str(err)) from None


def _trace(name: str, column: str, values: list[float], source: str) -> Trace:
    return Trace(name, column, np.arange(len(values), dtype=np.float64), np.asarray(values), source=source)


def _orient(pair: tuple[str, str], undirected: bool) -> tuple[str, str]:
    return tuple(sorted(pair)) if undirected else pair  # type: ignore[return-value]


def _natural_key(pair: tuple[str, str]) -> tuple:
    """node-2 before node-10."""
    return tuple(tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)) for s in pair)
