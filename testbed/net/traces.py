"""Traces: plain CSV files of measured (or synthesised) samples, validated on load.

A trace has a time column ``t_s`` (seconds, non-decreasing) and exactly one value column
whose name carries its unit and says what kind of trace it is:

    rtt_ms       round-trip time of a link (an edge's ``rtt_trace``)
    mbps         link bandwidth in Mbit/s (an edge's ``bandwidth_trace``)
    compute_ms   duration of one local iteration (a worker's ``compute_trace``)

Trace names used in topology files resolve to ``<repo>/traces/NAME.csv``; a name must be
a plain file name in that folder (``../x.csv`` is refused), and a mapping
``{name: path}`` swaps in a user's own file. The samplers that replay traces are in
:mod:`testbed.net.sampling`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

TIME_COLUMN = "t_s"
# value column -> (description, whether 0 is allowed)
VALUE_COLUMNS: dict[str, tuple[str, bool]] = {
    "rtt_ms": ("round-trip time in milliseconds", True),
    "mbps": ("bandwidth in Mbit/s", False),
    "compute_ms": ("iteration compute time in milliseconds", True),
}

REPO_DIR = Path(__file__).resolve().parents[2]
DEFAULT_TRACE_DIR = REPO_DIR / "traces"


@dataclass(frozen=True, eq=False)
class Trace:
    """A validated trace: ``t_s`` and ``values`` (float64 arrays of equal length >= 1)."""

    name: str
    column: str  # the value column: rtt_ms, mbps or compute_ms
    t_s: np.ndarray
    values: np.ndarray
    source: str = field(default="<memory>")  # where it came from, for messages

    def __post_init__(self) -> None:
        if self.column not in VALUE_COLUMNS:
            raise ValueError(
                f"trace {self.name!r}: unknown value column {self.column!r}; "
                f"expected one of {sorted(VALUE_COLUMNS)}"
            )
        t = np.asarray(self.t_s, dtype=np.float64)
        v = np.asarray(self.values, dtype=np.float64)
        if t.shape != v.shape or t.ndim != 1:
            raise ValueError(f"trace {self.name!r}: t_s and {self.column} must be 1-d and of equal length")
        if len(v) == 0:
            raise ValueError(f"{self.source}: trace {self.name!r} is empty; a trace needs at least one row")
        _check_values(self.source, self.column, t, v, first_line=None)
        t.setflags(write=False)
        v.setflags(write=False)
        object.__setattr__(self, "t_s", t)
        object.__setattr__(self, "values", v)

    def __len__(self) -> int:
        return len(self.values)

    def summary(self) -> dict[str, float]:
        """count, min, p50, p90, p99, max and mean of the values (in the column's unit)."""
        v = self.values
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        return {
            "count": float(len(v)),
            "min": float(v.min()),
            "p50": float(p50),
            "p90": float(p90),
            "p99": float(p99),
            "max": float(v.max()),
            "mean": float(v.mean()),
        }


def load_trace(path: str | os.PathLike, *, name: str | None = None, column: str | None = None) -> Trace:
    """Read and validate a trace CSV. ``column`` (rtt_ms, mbps, compute_ms) additionally
    requires that kind. Refusals name the file, the row and the rule."""
    path = Path(path)
    label = str(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader, None)
        while header is not None and not [h for h in header if h.strip()]:
            header = next(reader, None)  # skip leading blank lines
        if header is None:
            raise ValueError(f"{label}: empty file; a trace needs a header `t_s,<value column>` and rows")
        header = [h.strip() for h in header]
        value_col = _check_header(label, header, column)
        rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except csv.Error as err:
        raise ValueError(f"{label}: line {reader.line_num}: not a valid CSV row ({err})") from None
    if not rows:
        raise ValueError(f"{label}: no data rows after the header; a trace needs at least one row")
    i_t, i_v = header.index(TIME_COLUMN), header.index(value_col)
    t = np.empty(len(rows))
    v = np.empty(len(rows))
    for k, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(
                f"{label}: row {k + 1} (line {line}) has {len(row)} fields but the header has {len(header)}"
            )
        t[k] = _number(label, k + 1, line, TIME_COLUMN, row[i_t])
        v[k] = _number(label, k + 1, line, value_col, row[i_v])
    _check_values(label, value_col, t, v, first_line=[line for line, _ in rows])
    return Trace(name or path.stem, value_col, t, v, source=label)


def write_trace(trace: Trace, path: str | os.PathLike, *, precision: int = 3) -> None:
    """Write ``t_s,<column>`` atomically (a temporary file renamed over ``path``)."""
    from testbed.files import atomic_write_text

    rows = "".join(f"{t:.{precision}f},{v:.{precision}f}\n" for t, v in zip(trace.t_s, trace.values))
    atomic_write_text(Path(path), f"{TIME_COLUMN},{trace.column}\n" + rows)


def resolve_trace_path(
    name: str,
    *,
    trace_dir: str | os.PathLike | None = None,
    overrides: Mapping[str, str | os.PathLike] | None = None,
    near: str | os.PathLike | None = None,
    where: str = "",
) -> Path:
    """The file behind a trace name: ``overrides[name]`` if given, else ``near/NAME.csv``
    if that exists (``near``: the folder of the user's own topology file), else
    ``trace_dir/NAME.csv``. Names must be plain file names; ``where`` prefixes messages."""
    prefix = f"{where}: " if where else ""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{prefix}trace name must be a non-empty string, got {name!r}")
    if overrides and name in overrides:
        path = Path(overrides[name])
        if not path.is_file():
            raise FileNotFoundError(f"{prefix}trace override {name!r} -> {path}: no such file")
        return path
    base = Path(trace_dir) if trace_dir is not None else DEFAULT_TRACE_DIR
    if "/" in name or "\\" in name or name.startswith(".") or os.path.isabs(name):
        raise ValueError(
            f"{prefix}trace name {name!r} must be a plain file name inside {base} "
            f"(no folders, no '..'); use a trace override to point at another file"
        )
    fname = name if name.endswith(".csv") else f"{name}.csv"
    if near is not None and (Path(near) / fname).is_file():
        return Path(near) / fname
    path = base / fname
    # belt and braces: even odd names must not leave the folder
    if base.resolve() not in path.resolve().parents:
        raise ValueError(f"{prefix}trace name {name!r} escapes the trace folder {base}")
    if not path.is_file():
        known = sorted(p.stem for p in base.glob("*.csv")) if base.is_dir() else []
        raise ValueError(f"{prefix}unknown trace {name!r}: no file {path}; known traces: {known}")
    return path


def _check_header(label: str, header: list[str], column: str | None) -> str:
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"{label}: duplicate column(s) {dup} in the header; a trace is `t_s,<value>`, each once")
    if TIME_COLUMN not in header:
        raise ValueError(f"{label}: missing column {TIME_COLUMN!r} (header: {header}); a trace is `t_s,<value>`")
    values = [h for h in header if h in VALUE_COLUMNS]
    unknown = [h for h in header if h != TIME_COLUMN and h not in VALUE_COLUMNS]
    if unknown:
        raise ValueError(
            f"{label}: unknown column(s) {unknown}; a trace has {TIME_COLUMN!r} and one of {sorted(VALUE_COLUMNS)}"
        )
    if len(values) != 1:
        raise ValueError(
            f"{label}: missing value column; need exactly one of {sorted(VALUE_COLUMNS)}, header has {header}"
        )
    if column is not None and values[0] != column:
        raise ValueError(
            f"{label}: expected a {column!r} trace ({VALUE_COLUMNS[column][0]}), but its value column is {values[0]!r}"
        )
    return values[0]


def _number(label: str, row: int, line: int, col: str, text: str) -> float:
    try:
        if not text.isascii() or "_" in text:  # float() also reads 1_000 and non-ASCII digits
            raise ValueError
        return float(text)
    except ValueError:
        raise ValueError(f"{label}: row {row} (line {line}), column {col!r}: {text!r} is not a number") from None


def _check_values(label: str, col: str, t: np.ndarray, v: np.ndarray, first_line: list[int] | None) -> None:
    def where(k: int) -> str:
        return f"row {k + 1}" + (f" (line {first_line[k]})" if first_line is not None else "")

    for name, arr in ((TIME_COLUMN, t), (col, v)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            raise ValueError(f"{label}: {where(bad[0])}, column {name!r}: {arr[bad[0]]} is not a finite number")
    bad = np.flatnonzero(t < 0)
    if len(bad):
        raise ValueError(f"{label}: {where(bad[0])}, column {TIME_COLUMN!r}: {t[bad[0]]} is negative; times are >= 0")
    allow_zero = VALUE_COLUMNS[col][1]
    bad = np.flatnonzero(v < 0 if allow_zero else v <= 0)
    if len(bad):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{label}: {where(bad[0])}, column {col!r}: {v[bad[0]]} must be {rule}")
    from testbed.net.rules import MAX_MBPS, MAX_MS, MIN_MBPS

    low, high = (MIN_MBPS, MAX_MBPS) if col == "mbps" else (0.0, MAX_MS)
    bad = np.flatnonzero((v < low) | (v > high))
    if len(bad):
        raise ValueError(f"{label}: {where(bad[0])}, column {col!r}: {v[bad[0]]} is outside {low:g} to {high:g}")
    bad = np.flatnonzero(np.diff(t) < 0)
    if len(bad):
        k = bad[0] + 1
        raise ValueError(
            f"{label}: {where(k)}, column {TIME_COLUMN!r}: {t[k]} is before the previous row's {t[k - 1]}; "
            f"times must be non-decreasing"
        )


def read_text(path: str | os.PathLike, kind: str = "trace files are UTF-8 CSV") -> str:
    """A user file's text, or a one-line ``ValueError`` naming the file (and the line of a
    byte that is not UTF-8). ``kind`` says what the file should be."""
    from testbed.files import read_input_text

    return read_input_text(Path(path), kind)


def is_finite_number(x: object) -> bool:
    """True for int/float (not bool) values that are finite (ints too large for a float are not)."""
    if not isinstance(x, (int, float, np.integer, np.floating)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False
