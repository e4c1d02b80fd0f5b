"""Progress of long loops: a live rich bar in a terminal (nested loops share one display: the scenes, and the rows of
the current scene), a plain log line every :data:`PLAIN_EVERY_S` seconds and at the end otherwise (CI logs, `dvc
repro` output)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

T = TypeVar("T")
PLAIN_EVERY_S = 30.0
INFO_EVERY_S = 0.5  # how often a task's info (which may wait for a GPU) is recomputed
log = logging.getLogger("geofoundry.progress")
console = Console(stderr=True)
_live: Progress | None = None  # the display of the outermost task, shared by the tasks inside it


class Task:
    """One loop's progress: ``advance`` it as items complete, with an optional ``info`` (a string, or a function
    called at most every :data:`INFO_EVERY_S` seconds, e.g. one that reads a loss from the GPU)."""

    def __init__(self, description: str, total: int | None, progress: Progress | None = None, task_id=None):
        self.description, self.total, self.done = description, total, 0
        self._progress, self._id = progress, task_id
        self._start = self._logged = self._info_at = time.monotonic()
        self._info = ""

    def advance(self, n: int = 1, info: str | Callable[[], str] = "") -> None:
        self.done += n
        now = time.monotonic()
        if not callable(info):
            self._info = info
        elif now - self._info_at >= INFO_EVERY_S or self.done == self.total:
            self._info, self._info_at = info(), now
        if self._progress is not None:
            self._progress.update(self._id, advance=n, info=self._info)
        elif now - self._logged >= PLAIN_EVERY_S:
            self._logged = now
            self._log()

    def _log(self) -> None:
        elapsed = time.monotonic() - self._start
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and 0 < self.done < self.total:
            eta = f", eta {timedelta(seconds=round(elapsed * (self.total - self.done) / self.done))}"
        info = f", {self._info}" if self._info else ""
        log.info("%s: %d%s%s, %s elapsed%s", self.description, self.done, of, info,
                 timedelta(seconds=round(elapsed)), eta)


@contextlib.contextmanager
def task(description: str, total: int | None, enabled: bool = True) -> Iterator[Task]:
    """A :class:`Task` shown as a bar in a terminal (inside an outer task's display, if any), else logged; disabled:
    neither (e.g. on the DDP ranks that do not report)."""
    global _live
    if not enabled:
        yield Task(description, total)
        return
    if not console.is_terminal:
        plain = Task(description, total)
        yield plain
        plain._log()
        return
    owner = _live is None
    if owner:
        _live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"),
                         TimeRemainingColumn(), console=console)
        _live.start()
    progress = _live
    task_id = progress.add_task(description, total=total, info="")
    try:
        yield Task(description, total, progress, task_id)
    finally:
        if owner:
            progress.stop()
            _live = None
        else:
            progress.remove_task(task_id)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress :func:`task`."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with task(description, total) as t:
        for item in items:
            yield item
            t.advance()
