"""A reading lane: one thread that runs the queued reads of the earliest strip first.

Strips are read several at a time, each by pieces on every lane. With first-in-first-out lanes, the first strips of
a scene wait behind the masks of all the strips read ahead of them; by strip index, the model gets its first strip
as soon as one strip's pieces are read, and the later strips fill the lanes' idle time.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from ..io.signals import deferred


class Lane:
    """Context manager: ``submit(strip, fn, *args)`` runs ``fn(*args)`` on the lane's thread, lowest ``strip``
    first (in submission order among equals), and returns its :class:`~concurrent.futures.Future`."""

    def __init__(self, name: str):
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        with deferred():  # a signal's exception raised inside start() would leave the thread half-registered
            self._thread.start()

    def submit(self, strip: float, fn: Callable, *args) -> Future:
        future: Future = Future()
        self._jobs.put((strip, next(self._order), fn, args, future))
        return future

    def _serve(self) -> None:
        while True:
            _, _, fn, args, future = self._jobs.get()
            if fn is None:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                    future.set_exception(e)

    def __enter__(self) -> Lane:
        return self

    def __exit__(self, *exc) -> None:
        """Run what is queued, then stop."""
        self._jobs.put((math.inf, next(self._order), None, (), None))
        self._thread.join()
