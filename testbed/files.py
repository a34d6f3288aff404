"""Atomic file writes: readers see the old file or the whole new one, never a part.

Temporary file in the same folder, fsync, rename, fsync of the folder: a crash at any
point leaves either the previous file or the complete new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; run folders are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def csv_text(frame: pd.DataFrame, *, header: bool = True) -> str:
    """The one CSV dialect of every file written here (10 significant digits)."""
    return frame.to_csv(index=False, header=header, float_format="%.10g", lineterminator="\n")


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, csv_text(frame))


class GrowingCsv:
    """A CSV file that grows by whole frames with the same columns and is rewritten
    atomically after each. Every frame is formatted once, so n additions cost n
    formattings, not n(n + 1)/2 as rewriting the concatenated frame would."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._header: str | None = None
        self._parts: list[str] = []

    def add(self, frame: pd.DataFrame) -> None:
        header = csv_text(frame.head(0))
        if self._header is None:
            self._header = header
        elif header != self._header:
            raise ValueError(f"{self.path}: columns {list(frame.columns)} differ from the file's {self._header.strip()}")
        self._parts.append(csv_text(frame, header=False))

    def write(self) -> None:
        atomic_write_text(self.path, (self._header or "") + "".join(self._parts))


def _fsync_dir(folder: Path) -> None:
    """Makes the rename itself durable; not every platform can open a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
