"""One level of a map as compressed GeoTIFF tiles, made as its rows arrive.

Rows are gathered into one block row (pixel-interleaved, as GDAL's GeoTIFF driver stores several bands; the mask
as it arrives, packed 8 pixels a byte); once the rows move on to the next block row, its tiles are compressed on a
pool of threads and appended to a file: the image tile with ``encode`` (zstd or deflate, each tile one frame, as
libtiff writes them), then the mask tile, 1 bit per pixel and deflated (GDAL's internal masks). Each tile is framed
as in a COG (its size before it, its last 4 bytes again after it), so the whole file is copied into the COG at once.
A tile without a valid pixel is not written at all: in the COG it is sparse, read as 0 and masked.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from ..config import Codec
from ..io.tiff import Ifd
from .cog_layout import LEADER, leader, sized, trailer

Encode = Callable[[bytes], bytes]


def encoder(codec: Codec, level: int) -> Encode:
    """A thread-safe function that compresses one tile as GDAL's ``codec`` does."""
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
    """The tiles of a ``bands`` × ``height`` × ``width`` uint8 level and its mask, in ``block``² tiles (``block`` a
    multiple of 8), image tiles compressed by ``encode``, mask tiles by ``encode_mask`` (deflate)."""

    def __init__(self, path: Path, bands: int, width: int, height: int, block: int, encode: Encode,
                 encode_mask: Encode, pool: Executor):
        self.path, self.width, self.height, self.block, self.pool = path, width, height, block, pool
        self.encode, self.encode_mask = encode, encode_mask
        self.across = -(-width // block)
        n = self.across * -(-height // block)
        self.image = (np.zeros(n, np.uint64), np.zeros(n, np.uint64))  # offsets, byte counts (0: no tile)
        self.mask = (np.zeros(n, np.uint64), np.zeros(n, np.uint64))
        self.values = np.zeros((block, self.across * block, bands), np.uint8)
        self.valid = np.zeros((block, self.across * block // 8), np.uint8)  # bits, the first pixel in the MSB
        self.block_row: int | None = None  # the block row being gathered
        self.file = open(path, "wb")  # noqa: SIM115 - open until close()

    def add(self, top: int, values: np.ndarray, valid: np.ndarray) -> None:
        """Rows ``top..top+n``, after those added before: ``values`` (bands, n, width), and ``valid`` (n, ⌈width/8⌉)
        bits as ``np.packbits(…, axis=-1)`` packs them."""
        row, end = top, top + len(valid)
        while row < end:
            b = row // self.block
            if b != self.block_row:
                self._append(self._compress())
                self.block_row = b
            stop = min(end, (b + 1) * self.block)
            here = slice(row - b * self.block, stop - b * self.block)
            self.values[here, :self.width] = np.moveaxis(values[:, row - top:stop - top], 0, -1)
            self.valid[here, :valid.shape[1]] = valid[row - top:stop - top]
            row = stop

    def _compress(self) -> list:
        """Start compressing the tiles of the block row gathered so far, on the pool."""
        return [] if self.block_row is None else [self.pool.submit(self._tile, j) for j in range(self.across)]

    def _append(self, jobs: list) -> None:
        """Append the tiles of ``jobs`` (those of the block row gathered), framed; start the next block row from
        zeros."""
        if not jobs:
            return
        first = self.block_row * self.across
        for j, job in enumerate(jobs):
            tile = job.result()
            if tile is not None:
                for (offsets, counts), data in zip((self.image, self.mask), tile):
                    offsets[first + j], counts[first + j] = self.file.tell() + LEADER, len(data)
                    self.file.write(leader(len(data)))
                    self.file.write(data)
                    self.file.write(trailer(data))
        self.values[:] = 0
        self.valid[:] = 0
        self.block_row = None

    def _tile(self, j: int) -> tuple[bytes, bytes] | None:
        """Tile ``j`` of the block row, image and mask compressed; None when no pixel of it is valid."""
        bits = self.valid[:, j * self.block // 8:(j + 1) * self.block // 8]  # rows of a tile: whole bytes
        if not bits.any():
            return None
        cols = slice(j * self.block, (j + 1) * self.block)
        return self.encode(self.values[:, cols].tobytes()), self.encode_mask(bits.tobytes())

    def finish(self) -> Callable[[], None]:
        """Start compressing the last block row; the function returned appends it and closes the file."""
        jobs = self._compress()

        def close() -> None:
            try:
                self._append(jobs)
            finally:
                self.file.close()

        return close

    def ifds(self, image_tags: dict, mask_tags: dict) -> tuple[Ifd, Ifd]:
        """The image and mask IFDs of the tiles written: the tags of an image and a mask of the map (the size set
        to this level's)."""
        return (Ifd(self.path, sized(image_tags, self.width, self.height), *self.image, framed=True),
                Ifd(self.path, sized(mask_tags, self.width, self.height), *self.mask, framed=True))
