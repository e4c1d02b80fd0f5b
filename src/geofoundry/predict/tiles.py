"""One level of a map as compressed GeoTIFF tiles, made as its rows arrive.

Rows are gathered into one block row (pixel-interleaved, as GDAL's GeoTIFF driver stores several bands); once the
rows move on to the next block row, its tiles are compressed on a pool of threads and appended to a file: the
image tile with ``encode`` (zstd or deflate, each tile one frame, as libtiff writes them), then the mask tile, 1 bit
per pixel and deflated (GDAL's internal masks). A tile without a valid pixel is not written at all: in the COG it
is sparse, read as 0 and masked.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from ..io.cog_layout import Ifd

Encode = Callable[[bytes], bytes]


def encoder(codec: str, level: int) -> Encode:
    """A thread-safe function that compresses one tile as GDAL's ``codec`` ("zstd" or "deflate") does."""
    if codec == "deflate":
        return lambda data: zlib.compress(data, level)
    import zstandard

    local = threading.local()  # a zstd compressor is for one thread at a time

    def zstd(data: bytes) -> bytes:
        if not hasattr(local, "compressor"):
            local.compressor = zstandard.ZstdCompressor(level=level)
        return local.compressor.compress(data)

    return zstd


class LevelTiles:
    """The tiles of a ``bands`` × ``height`` × ``width`` uint8 level and its mask, in ``block``² tiles."""

    def __init__(self, path: Path, bands: int, width: int, height: int, block: int, encode: Encode, pool: Executor):
        self.path, self.width, self.block, self.encode, self.pool = path, width, block, encode, pool
        self.across = -(-width // block)
        n = self.across * -(-height // block)
        self.image = (np.zeros(n, np.uint64), np.zeros(n, np.uint64))  # offsets, byte counts (0: no tile)
        self.mask = (np.zeros(n, np.uint64), np.zeros(n, np.uint64))
        self.values = np.zeros((block, self.across * block, bands), np.uint8)
        self.valid = np.zeros((block, self.across * block), bool)
        self.block_row: int | None = None  # the block row being gathered
        self.file = open(path, "wb")  # noqa: SIM115 - open until close()

    def add(self, top: int, values: np.ndarray, valid: np.ndarray) -> None:
        """Rows ``top..top+n``: ``values`` (bands, n, width) and ``valid`` (n, width) bool, after those added before."""
        row, end = top, top + len(valid)
        while row < end:
            b = row // self.block
            if b != self.block_row:
                self._flush()
                self.block_row = b
            stop = min(end, (b + 1) * self.block)
            here = slice(row - b * self.block, stop - b * self.block)
            self.values[here, :self.width] = np.moveaxis(values[:, row - top:stop - top], 0, -1)
            self.valid[here, :self.width] = valid[row - top:stop - top]
            row = stop

    def _flush(self) -> None:
        """Compress the block row gathered so far and append its tiles; start the next one from zeros."""
        if self.block_row is None:
            return
        jobs = [self.pool.submit(self._tile, j) for j in range(self.across)]
        first = self.block_row * self.across
        for j, job in enumerate(jobs):
            tile = job.result()
            if tile is not None:
                for (offsets, counts), data in zip((self.image, self.mask), tile):
                    offsets[first + j], counts[first + j] = self.file.tell(), len(data)
                    self.file.write(data)
        self.values[:] = 0
        self.valid[:] = False
        self.block_row = None

    def _tile(self, j: int) -> tuple[bytes, bytes] | None:
        """Tile ``j`` of the block row, image and mask compressed; None when no pixel of it is valid."""
        cols = slice(j * self.block, (j + 1) * self.block)
        valid = self.valid[:, cols]
        if not valid.any():
            return None
        mask = zlib.compress(np.packbits(valid, axis=1).tobytes(), 1)  # rows padded to bytes, first pixel in the MSB
        return self.encode(self.values[:, cols].tobytes()), mask

    def close(self) -> None:
        """Write the last block row."""
        try:
            self._flush()
        finally:
            self.file.close()

    def ifds(self, image_tags: Ifd, mask_tags: Ifd) -> tuple[Ifd, Ifd]:
        """The image and mask IFDs of the tiles written: tags from GDAL's empty templates of the same level."""
        return Ifd(self.path, image_tags.tags, *self.image), Ifd(self.path, mask_tags.tags, *self.mask)
