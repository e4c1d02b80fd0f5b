"""Chip arrays written item by item to ``.npy`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class NpyWriter:
    """A ``.npy`` file of a known shape and dtype, filled item by item with plain writes (not a memory map, whose
    written pages would stay in the process's resident memory)."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: type = np.uint8):
        header = np.lib.format.open_memmap(path, "w+", dtype, shape)  # writes the header, sizes the file
        self.offset, self.dtype = header.offset, header.dtype
        del header
        self.item = int(np.prod(shape[1:])) * self.dtype.itemsize
        self.fh = open(path, "r+b")  # noqa: SIM115 - closed by close()

    def __setitem__(self, i: int, value: np.ndarray) -> None:
        self.fh.seek(self.offset + i * self.item)
        self.fh.write(np.ascontiguousarray(value, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self.fh.close()
