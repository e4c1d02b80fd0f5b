"""Commands run in the background, for signals, races and memory: started as users start them, stopped at a moment
they announce on disk, waited for."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ..project import ROOT, env

SIGNAL_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
# a parent that runs one command and prints its peak resident memory (KiB): that command's alone
PEAK_RSS = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
            "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(rc)")


def stage_args(name: str) -> list[str]:
    """``stages/0N_<name>.py`` as ``dvc repro`` runs it."""
    return [sys.executable, str(next((ROOT / "stages").glob(f"0*_{name}.py")))]


def cli_args(*args) -> list[str]:
    """``geofoundry ARGS``."""
    return [sys.executable, "-m", "geofoundry", *map(str, args)]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """A command started in the background; its stderr goes to a file (a pipe nobody reads could fill and stall
    it), read back by :func:`finish`."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(args, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    return proc


def finish(proc: subprocess.Popen, timeout: float = 600) -> subprocess.CompletedProcess:
    """Wait for a command of :func:`start`: its status and stderr."""
    proc.wait(timeout)
    proc.log.seek(0)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.log.read())


def interrupt(proc: subprocess.Popen, signum: int) -> subprocess.CompletedProcess:
    """Send ``signum`` to a command of :func:`start` and wait for its end."""
    proc.send_signal(signum)
    return finish(proc, timeout=300)


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until ``predicate()`` holds (a file appeared, a lock is held); fail if ``proc`` ends first."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (status {proc.returncode}) before the awaited moment:\n"
                        f"{finish(proc).stderr[-3000:]}")
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def kill_while(predicate: Callable[[], bool], proc: subprocess.Popen) -> subprocess.CompletedProcess:
    """SIGKILL ``proc`` at a moment ``predicate()`` holds (a temporary output exists). The command is stopped
    (SIGSTOP) before the last look, so it cannot finish that output between the look and the kill; if it did so
    before the stop, it goes on until the next such moment."""
    while True:
        wait_for(predicate, proc)
        proc.send_signal(signal.SIGSTOP)
        if predicate():
            return interrupt(proc, signal.SIGKILL)
        proc.send_signal(signal.SIGCONT)


def writing(folder: Path) -> Callable[[], bool]:
    """True once a hidden temporary file or folder of an output exists in ``folder``."""
    return lambda: folder.is_dir() and any(p.name.startswith(".") and ".tmp" in p.name for p in folder.iterdir())


def hidden(folder: Path) -> list[str]:
    """Hidden names under ``folder`` (temporary files, locks)."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob(".*"))


def measured(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``args`` run under :data:`PEAK_RSS`: its stderr ends with the command's peak resident memory."""
    return subprocess.run([sys.executable, "-c", PEAK_RSS, *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=1200)


def peak_rss_kib(proc: subprocess.CompletedProcess) -> int:
    return int(re.search(r"peak_rss_kib (\d+)", proc.stderr).group(1))


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    """Exit status 0, no traceback, no error line."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "error (" not in proc.stderr, proc.stderr[-3000:]
