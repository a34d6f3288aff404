"""Names that become paths: made plain file names, and checked to stay inside their folder.

Topology, trace, region and algorithm names come from files a user hands in; a name such
as ``..``, ``/abs/x`` or ``../../x`` must never place a file outside the folder it is
meant for. :func:`safe_name` makes any name one plain path component, and
:func:`inside` joins it to its folder and refuses a result that resolves elsewhere (a
symlinked component, say), so the rule holds even if a caller forgets to sanitise.
"""

from __future__ import annotations

from pathlib import Path


def safe_name(name: str, default: str = "run", limit: int = 80) -> str:
    """``name`` as one plain file name: ASCII letters, digits, '-', '_' and '.' kept, the
    rest '_', no '..' and no leading dot (never hidden, never a parent), at most ``limit``
    characters; ``default`` when nothing is left."""
    text = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in str(name))
    while ".." in text:
        text = text.replace("..", "_")
    return text.lstrip(".")[:limit] or default


def inside(folder: Path, *names: str) -> Path:
    """``folder / name / ...`` with every name made safe; raises ValueError if the result
    would still resolve outside ``folder``."""
    folder = Path(folder)
    path = folder.joinpath(*(safe_name(n) if n else "_" for n in names))
    check_inside(folder, path)
    return path


def check_inside(folder: Path, path: Path) -> None:
    """Refuse ``path`` unless it resolves to a place under ``folder`` (links followed)."""
    root = Path(folder).resolve()
    target = Path(path).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"{path}: resolves to {target}, outside {folder}; names may not leave their folder")
