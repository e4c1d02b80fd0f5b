"""How a command ends on bad input: one ``error (<command>): …`` message, never wrapped and never read as console
markup (file names survive whole in logs), exit status 1 (128 + n after signal n), the traceback only with
``--verbose``."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator
from typing import NoReturn

from rich.console import Console
from rich.text import Text

from ..errors import GeofoundryError
from ..io.signals import exit_status

console = Console(stderr=True, soft_wrap=True)
log = logging.getLogger(__name__)
ADVICE = {
    errno.ENOSPC: "the device is full: free space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere",
    errno.EROFS: "read-only file system: write elsewhere",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def describe(err: GeofoundryError | OSError) -> str:
    """The message of ``err``: a GeofoundryError's own; for an operating-system error, the file and the reason."""
    if isinstance(err, GeofoundryError):
        return str(err)
    reason = ADVICE.get(err.errno or -1) or err.strerror or str(err)
    names = [str(n) for n in (err.filename, err.filename2) if n is not None]
    return f"{' → '.join(names)}: {reason}" if names else reason


def report_error(name: str, err: GeofoundryError | OSError) -> None:
    """Print ``error (<name>): <message>`` on stderr: unwrapped, so it can be grepped and copied, and as plain
    text, so a ``[…]`` in a path or value is printed as it is."""
    console.print(Text.assemble(("error", "bold red"), f" ({name}): {describe(err)}"), highlight=False)


def missing_stack(e: ModuleNotFoundError) -> GeofoundryError:
    """An inference-only install lacks the training stack: say which package and how to add it."""
    return GeofoundryError(f"{e.name} is not installed: this command needs the pipeline's training stack "
                           "(pip install -c requirements.lock \"geofoundry[train]\"; docs/INSTALL.md)")


@contextlib.contextmanager
def reported(name: str) -> Iterator[None]:
    """Run a command's body: bad input (a GeofoundryError) or a failed file operation (OSError) is reported with
    :func:`report_error` and ends the process with status 1 (128 + n when signal n stopped it)."""
    try:
        yield
    except (GeofoundryError, OSError) as e:
        log.debug("%s failed", name, exc_info=True)
        report_error(name, e)
        raise SystemExit(exit_status(e) if isinstance(e, GeofoundryError) else 1) from None


def exit_process(code: int | str | None) -> NoReturn:
    """End this process at once with ``code`` (a message counts as 1), its logs flushed. After a failed or
    interrupted run the main thread's cleanups have run, but threads it started (the predict stage's reading lanes
    and writers) may wait forever for work that will not come; a normal exit would wait for them."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)

