"""Playwright driving Debian's headless chromium, for the dashboard's browser tests: the executable (skipped on a
workstation without it, a failure under CI), a browser whose requests can reach only one local server, and a
polling wait that the pages' CSP allows."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .conftest import ROOT

ARTIFACTS = ROOT / "build" / "test-artifacts"
TIMEOUT_MS = 120_000


def chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must `apt-get install -y chromium` before the tests")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); CI installs it")
    return exe


def launch(pw, local: str):
    """A headless chromium for which any request to another host than ``local`` (host:port) goes to a closed local
    port: nothing can leave the machine."""
    return pw.chromium.launch(executable_path=chromium(), args=[
        "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--proxy-server=http://127.0.0.1:9", f"--proxy-bypass-list={local}"])


def until(page, expression: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JavaScript expression until true (page.evaluate: the page's CSP forbids the eval of wait_for_function)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)
