"""What a killed process leaves behind: hidden temporary names ``.<name>.<8 random characters>.tmp…`` (the ones
:mod:`.atomic` and the writers derive from it make), never mistaken for outputs and removed by the next run that
holds the output's lock (:mod:`.lock`)."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp(\..*)?$")  # tempfile.mkstemp's random part


def outputs_in(folder: Path, suffix: str) -> list[Path]:
    """The files ``<name><suffix>`` in ``folder`` that a stage wrote, sorted: hidden names (temporary files of a run
    in progress or killed) are not outputs."""
    return sorted(p for p in Path(folder).glob(f"*{suffix}") if not p.name.startswith(".") and p.is_file())


def debris(path: Path, recursive: bool = True) -> list[Path]:
    """Temporary files and folders of interrupted writes of ``path``: beside it and, for a folder, in it (in its
    subfolders too when ``recursive``)."""
    path = Path(path)
    found = [p for p in path.parent.glob(".*") if (m := TEMPORARY.match(p.name)) and m["name"] == path.stem]
    if path.is_dir():
        inside = path.rglob(".*") if recursive else path.glob(".*")
        found += [p for p in inside if TEMPORARY.match(p.name)]
    return sorted(set(found))


def remove_debris(path: Path, recursive: bool = True) -> int:
    """Remove :func:`debris` of ``path`` (only while holding its lock); return how many were removed."""
    found = debris(path, recursive)
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if found:
        log.info("%s: removed %d temporary file(s) left by an interrupted run: %s", path, len(found),
                 ", ".join(p.name for p in found[:5]) + (" …" if len(found) > 5 else ""))
    return len(found)
