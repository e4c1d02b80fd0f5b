"""One run at a time per output: an advisory lock (``flock``) on a hidden file beside it, naming its holder.

A second run that would write the same output stops at once with an error that says which process holds it; a
lock dies with its process, so a killed run never blocks the next one, which then removes what the killed run
left (:mod:`.debris`). The lock file exists only while it is held.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import GeofoundryError
from .debris import remove_debris
from .signals import deferred


def lock_file(path: Path) -> Path:
    """Where the lock of output ``path`` (a file or folder) lives: ``.<name>.lock`` beside it."""
    return path.parent / f".{path.name}.lock"


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text())
        return (f"pid {info['pid']} on {info['host']}, `{info['command']}`, since {info['since']}; wait for it to "
                f"end, or stop it (kill {info['pid']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is starting; wait for it to end"


def _acquire(lock: Path) -> int:
    """An open descriptor of ``lock``, exclusively locked, whose inode is still the one at ``lock``."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return -1
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass  # its holder removed it as we opened it: take a fresh one
        os.close(fd)


@contextlib.contextmanager
def output_lock(path: str | Path, recursive: bool = True) -> Iterator[None]:
    """Hold the lock of output ``path``; a :class:`GeofoundryError` names the holder when another process has it.
    Once held, temporary files that killed runs left for ``path`` are removed (in its subfolders too when
    ``recursive``: not for a folder that users pick, which may hold anything). A run that fails removes the folders
    it made for ``path`` and left empty."""
    path = Path(path)
    lock = lock_file(path)
    new = [p for p in (path, *path.parents) if not p.exists()]  # folders a failed run must not leave behind
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock)
    if fd < 0:
        raise GeofoundryError(f"{path}: another run is writing it: {_holder(lock)}")
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        remove_debris(path, recursive)
        yield
    except BaseException:
        with deferred():
            lock.unlink(missing_ok=True)
            for folder in new:  # innermost first; only those left empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    finally:
        with deferred():
            lock.unlink(missing_ok=True)  # still held: a process that opened it meanwhile sees it gone, retries
            os.close(fd)


@contextlib.contextmanager
def output_locks(paths: Sequence[str | Path]) -> Iterator[None]:
    """Hold the locks of every output in ``paths`` (see :func:`output_lock`)."""
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(output_lock(path))
        yield
