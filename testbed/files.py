"""Atomic file writes: readers see the old file or the whole new one, never a part.

Temporary file in the same folder, fsync, rename, fsync of the folder: a crash at any
point leaves either the previous file or the complete new one. A temporary file is named
``.<name>.<pid>.<random>.tmp``; a writer removes the stale ones of its own file (whose
process no longer runs), and :func:`remove_temporaries` clears a whole folder a resumed
run owns.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

TMP_SUFFIX = ".tmp"
MAX_INPUT_BYTES = 1 << 30
"""Largest input file read whole (config, topology, trace, run folder JSON): far beyond any real one."""


def read_input_bytes(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a user's input file, checked first by :func:`check_input_file`."""
    path = Path(path)
    check_input_file(path, what, limit)
    try:
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror}); {what}") from None


def read_input_text(path: Path, what: str) -> str:
    """The text of a user's input file (see :func:`decode_input`)."""
    return decode_input(Path(path), read_input_bytes(path, what), what)


def decode_input(path: Path, data: bytes, what: str) -> str:
    """``data`` (read from ``path``) as UTF-8 text, a leading byte-order mark (spreadsheet
    exports) dropped; a byte that is not UTF-8 is a one-line ValueError naming the file,
    its line and offset, and ``what`` the file should be."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: byte 0x{data[err.start]:02x} at offset {err.start} is not UTF-8; {what}") from None


def check_input_file(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> None:
    """Refuse anything but a regular file (a folder, a FIFO that would block forever, a
    device that never ends) and files over ``limit``: one-line ValueError naming the file
    and ``what`` it should be."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; {what}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror}); {what}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path}: is a folder, not a file; {what}")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a regular file (a pipe or device); {what}")
    if info.st_size > limit:
        raise ValueError(f"{path}: {info.st_size:_} bytes, over the limit of {limit:_}; {what}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=path.parent)
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
    fsync_dir(path.parent)


def _remove_stale(path: Path) -> None:
    """Temporaries of ``path`` left by killed writers (another live process's are kept)."""
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*{TMP_SUFFIX}"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):  # not digits: another file's temporary
            tmp.unlink(missing_ok=True)


def remove_temporaries(folder: Path) -> list[Path]:
    """Remove every ``.*.tmp`` file under ``folder`` (a resumed run owns its folder, so
    all of them are stale); returns what was removed."""
    removed = [p for p in Path(folder).rglob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's) or we cannot tell: keep its files
    return True


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def folder_lock(lock_file: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) held for the block; a no-op where flock is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(lock_file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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


def fsync_dir(folder: Path) -> None:
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
