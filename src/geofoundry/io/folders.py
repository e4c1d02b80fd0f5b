"""Folders that a command is told to read from or write to, checked before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import GeofoundryError


def writable_folder(path: str | Path, what: str) -> Path:
    """``path`` as a folder outputs can be written to, checked without creating anything: it is a folder or can be
    made one (its nearest existing parent is a writable folder). ``what`` names it in errors (e.g. ``--out``)."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is one)"
        raise GeofoundryError(f"{what} {path}: a file, not a folder{where}")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise GeofoundryError(f"{what} {path}: {existing} is on a read-only file system")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GeofoundryError(f"{what} {path}: no permission to write in {existing}")
    return path


def existing_folder(path: str | Path, what: str) -> Path:
    """``path`` as an existing folder to read from; ``what`` names it in errors (e.g. ``--data``)."""
    path = Path(path)
    if not path.exists():
        raise GeofoundryError(f"{what} {path}: not found")
    if not path.is_dir():
        raise GeofoundryError(f"{what} {path}: a file, not a folder")
    return path
