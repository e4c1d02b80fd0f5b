"""SIGINT, SIGTERM and SIGHUP end a command like an error: the cleanups run (temporary files removed, locks
released, nothing half-written renamed into place) and it exits with status 128 + the signal's number.

The first signal raises :class:`Interrupted` in the main thread, where Python runs signal handlers; a second one
of the same kind acts as if no handler were set (a second Ctrl-C ends the process at once). Renames that commit an
output run inside :func:`deferred`, so a signal waits for them to finish, and so do thread starts (Python's
``Thread.start`` interrupted by an exception leaves the new thread half-registered, and it dies with a traceback).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from ..errors import GeofoundryError

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_state = {"depth": 0, "pending": None}


class Interrupted(GeofoundryError):
    """A command stopped by a signal; ``exit_status`` is 128 + its number, as shells report it."""

    def __init__(self, signum: int):
        self.exit_status = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}; no output was left half-written (each is "
                         "as it was, or finished): run it again")


def exit_status(err: GeofoundryError) -> int:
    """The status a command ends with after ``err``: 1, or 128 + the signal's number after an interruption."""
    return getattr(err, "exit_status", 1)


def _handler(signum: int, _frame) -> None:
    signal.signal(signum, signal.SIG_DFL)  # the next one ends the process at once
    if _state["depth"]:
        _state["pending"] = _state["pending"] or signum
        return
    raise Interrupted(signum)


def handle_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread of a command only)."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold :class:`Interrupted` back until the block is done (a commit: renames that must all happen)."""
    main = threading.current_thread() is threading.main_thread()
    if main:
        _state["depth"] += 1
    try:
        yield
    finally:
        if main:
            _state["depth"] -= 1
            if not _state["depth"] and _state["pending"]:
                signum, _state["pending"] = _state["pending"], None
                raise Interrupted(signum)


class ThreadPool(ThreadPoolExecutor):
    """A :class:`~concurrent.futures.ThreadPoolExecutor` whose ``submit`` (which starts a worker thread while the
    pool has fewer than ``max_workers``) holds a signal back until it returns."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with deferred():
            return super().submit(fn, *args, **kwargs)
