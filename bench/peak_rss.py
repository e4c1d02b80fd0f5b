"""Peak resident memory of the calling process, as the kernel counts it.

Linux's ``VmHWM`` (``/proc/self/status``) is the high-water mark of this process image's own memory. Not
``getrusage(RUSAGE_SELF).ru_maxrss`` (nor ``wait4``'s): a process started by fork and exec keeps in it the high-water
mark its parent had reached before the fork, so a benchmark's child whose parent once held 2 GiB (a synthetic scene
just generated) reported 2 GiB whatever it used itself.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_gb() -> float:
    """GiB; ``ru_maxrss`` where there is no ``/proc`` (it may then include the parent's peak)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
