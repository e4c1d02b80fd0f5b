"""Page-locked host memory in blocks sized to the request, reused (CUDA).

torch's host allocator rounds every page-locked block up to a power of two and keeps every block it has made; on
a wide scene the strips' outputs alone held hundreds of MB that way. Here anonymous memory is mapped and registered
with CUDA (``cudaHostRegister``) once per block, handed out as uint8 arrays, and comes back to the pool when the
last array viewing it is gone; a block too small for later requests is unregistered and unmapped.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
import weakref

import numpy as np
import torch

GRAIN = 2**21  # blocks are made in multiples of 2 MiB
SPARE = 16  # and 1/16 larger than asked: requests that vary by a few rows reuse them


class PinnedPool:
    """Blocks of page-locked memory."""

    def __init__(self):
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._bytes = [0]  # registered bytes, shared with the blocks' finalizers (which must not hold the pool)
        self._counting = threading.Lock()  # finalizers change the count in whichever thread drops a block
        self.peak = 0  # the most bytes registered at once

    @property
    def registered(self) -> int:
        """Bytes of the blocks registered with CUDA, handed out or free."""
        return self._bytes[0]

    def array(self, nbytes: int) -> np.ndarray:
        """A uint8 array of ``nbytes`` in page-locked memory; its block returns to the pool when the array and
        every view of it are gone."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if b.nbytes >= nbytes]
            if fits:  # the smallest that fits (by position: arrays do not compare as list items)
                block = self._free.pop(min(fits, key=lambda i: self._free[i].nbytes))
            else:  # all free blocks are too small: let them go rather than keep them for smaller requests
                block = None
                self._free.clear()
        if block is None:
            block = self._new(block_size(nbytes))
        raw = (ctypes.c_uint8 * nbytes).from_address(block.ctypes.data)  # an owner of its own, to be watched
        weakref.finalize(raw, self._give_back, block)
        return np.frombuffer(raw, np.uint8)

    def _give_back(self, block: np.ndarray) -> None:
        with self._lock:
            self._free.append(block)

    def _new(self, size: int) -> np.ndarray:
        """A mapped block registered with CUDA (its own pages: registrations never share one); unregistered just
        before it is unmapped."""
        block = np.frombuffer(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS), np.uint8)
        ptr = block.ctypes.data
        error = int(torch.cuda.cudart().cudaHostRegister(ptr, size, 0))
        if error:
            raise RuntimeError(f"cudaHostRegister of {size} bytes of host memory failed (cudaError {error})")
        with self._counting:
            self._bytes[0] += size
            self.peak = max(self.peak, self._bytes[0])
        weakref.finalize(block, _unregister, ptr, size, self._bytes, self._counting)
        return block


def block_size(nbytes: int) -> int:
    """Bytes of the block made for a request of ``nbytes``."""
    return -(-max(nbytes + nbytes // SPARE, 1) // GRAIN) * GRAIN


def _unregister(ptr: int, size: int, registered: list[int], counting: threading.Lock) -> None:
    torch.cuda.cudart().cudaHostUnregister(ptr)
    with counting:
        registered[0] -= size
