"""Write to a temporary sibling, then rename: an interrupted stage never leaves a half-written file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import GeofoundryError
from .signals import deferred


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it onto ``path`` on success.

    Works for files and for directories (the temp path is created by the caller). A directory replaces the old one
    by two renames, which a signal does not split (:func:`.signals.deferred`); the old one is removed after. Temporary
    names are hidden and hold ``.tmp`` (:mod:`.debris`), so what a killed process leaves is recognised and removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as e:
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else e.strerror or str(e)
        raise GeofoundryError(f"{path}: cannot write in {path.parent} ({why})") from None
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    old = tmp_path.with_name(tmp_path.name + ".old")
    try:
        yield tmp_path
        with deferred():
            if path.is_dir() and tmp_path.is_dir():
                os.replace(path, old)
            os.replace(tmp_path, path)
    except OSError as e:
        if not out_of_space(e, path.parent):
            raise
        raise GeofoundryError(f"{path}: no space left on the device of {path.parent} while writing it; "
                              "it is unchanged (free space and run again)") from None
    finally:
        with deferred():  # a signal now would leave the temporary file behind
            for leftover in (tmp_path, old):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                elif leftover.exists():
                    leftover.unlink()


@contextlib.contextmanager
def temporary_folder(parent: str | Path, name: str) -> Iterator[Path]:
    """A hidden temporary folder in ``parent``, named as :mod:`.debris` recognises, removed at the end (a signal
    waits for it)."""
    path = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    try:
        yield path
    finally:
        with deferred():
            shutil.rmtree(path, ignore_errors=True)


def out_of_space(err: OSError, folder: Path) -> bool:
    """Whether ``err`` is a write that failed for want of space (GDAL's write errors carry no errno: then the
    device's free space tells)."""
    if err.errno is not None:
        return err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
