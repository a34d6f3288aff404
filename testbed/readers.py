"""Strict readers of the JSON and CSV files a run folder holds, when a user hands one back
(``report``, ``retime``, ``--resume``): every refusal is one line naming the file, and the
line, row or column where that is known. A CSV cut mid-row (a copy that stopped early)
is refused, never read as data.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from testbed.files import read_input_text


def read_text_file(path: Path, what: str) -> str:
    return read_input_text(path, what)


def read_json_file(path: Path, what: str) -> Any:
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}, column {err.colno}: invalid JSON ({err.msg}); {what}") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply; {what}") from None


def read_csv_file(path: Path, what: str, required: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV written by the testbed: complete rows only, the ``required`` columns present."""
    text = read_text_file(path, what)
    lines = text.splitlines()
    if not lines:
        raise ValueError(f"{path}: is empty; {what}")
    header = next(csv.reader([lines[0]]))
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; {what}")
    last = next(csv.reader([lines[-1]])) if len(lines) > 1 else header
    if not text.endswith("\n") or len(last) != len(header):
        raise ValueError(f"{path}: line {len(lines)} is cut short ({len(last)} of {len(header)} fields, "
                         f"{'no' if not text.endswith(chr(10)) else 'a'} final newline): the file was not "
                         f"written whole; {what}")
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: cannot be read as CSV ({' '.join(str(err).split())}); {what}") from None


def require_keys(path: Path, value: Any, keys: Sequence[str], what: str) -> dict[str, Any]:
    """``value`` as a JSON object holding every key in ``keys``."""
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}; {what}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise ValueError(f"{path}: key(s) {', '.join(missing)} missing; {what}")
    return value
