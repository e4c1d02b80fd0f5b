"""Blocks of a tiled GeoTIFF's internal mask that are all valid or all invalid, found from their compressed bytes.

A scene's nodata collar is stored as mask blocks with one value in every pixel, and each of them compresses to the
same few bytes, or is not stored at all (a sparse block, read as 0: invalid). Reading the mask's tile table and those
bytes, and decoding one block per byte string that recurs (a block wholly inside the raster, whose every pixel can
be read back), tells which blocks are constant without decoding them: a strip of collar is then filled, not read
and decoded (BENCHMARKS.md, predict: nodata collars), and a sparse scene's empty expanse is never visited.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from .tiff import IMAGE_LENGTH, IMAGE_WIDTH, MASK, NEW_SUBFILE_TYPE, TILE_LENGTH, TILE_WIDTH, read_ifds

SMALL = 4096  # bytes: a constant block compresses to far less; larger tiles are not looked at
MIXED = -1


@dataclass(frozen=True)
class MaskBlocks:
    """Per block of the mask (rows, columns of blocks): 0 or 255 when every pixel has that value, else ``MIXED``."""

    values: np.ndarray
    block: tuple[int, int]  # (height, width) of a block

    def constant(self, window: Window) -> int | None:
        """The value of every mask pixel of ``window`` (inside the raster) when its blocks are constant and agree."""
        (bh, bw), r0, c0 = self.block, int(window.row_off), int(window.col_off)
        blocks = self.values[r0 // bh:(r0 + int(window.height) - 1) // bh + 1,
                             c0 // bw:(c0 + int(window.width) - 1) // bw + 1]
        first = int(blocks.flat[0])
        return first if first != MIXED and (blocks == first).all() else None

    def valid_window(self) -> Window | None:
        """The window of whole blocks that holds every block not known to be all invalid (it may reach past the
        raster's edge); None when every block is."""
        rows, cols = np.nonzero(self.values != 0)
        if not len(rows):
            return None
        (bh, bw), r0, c0 = self.block, int(rows.min()), int(cols.min())
        return Window(c0 * bw, r0 * bh, (int(cols.max()) + 1 - c0) * bw, (int(rows.max()) + 1 - r0) * bh)


def mask_blocks(ds) -> MaskBlocks | None:
    """The constant blocks of the internal mask of an open GeoTIFF; None when it has none to look at (not a local
    tiled little-endian GeoTIFF, no full-resolution internal mask). Found once per file: handles that ask at the
    same time wait for the first."""
    if ds.driver != "GTiff" or not os.path.isfile(ds.name):
        return None
    st = os.stat(ds.name)
    key = (os.path.realpath(ds.name), st.st_mtime_ns, st.st_size)
    with _LOCK:
        if key not in _FOUND:
            _FOUND.clear()  # one scene at a time
            _FOUND[key] = _find(ds)
        return _FOUND[key]


_FOUND: dict[tuple, MaskBlocks | None] = {}
_LOCK = threading.Lock()


def _find(ds) -> MaskBlocks | None:
    try:
        ifds = read_ifds(ds.name)
    except (OSError, ValueError, KeyError, struct.error):
        return None
    size = (ds.width, ds.height)
    mask = next((ifd for ifd in ifds if NEW_SUBFILE_TYPE in ifd.tags and ifd.value(NEW_SUBFILE_TYPE) == MASK
                 and (ifd.value(IMAGE_WIDTH), ifd.value(IMAGE_LENGTH)) == size), None)
    if mask is None or TILE_WIDTH not in mask.tags:
        return None
    bw, bh = mask.value(TILE_WIDTH), mask.value(TILE_LENGTH)
    across, down = -(-size[0] // bw), -(-size[1] // bh)
    if len(mask.counts) != across * down:
        return None
    same = defaultdict(list)  # compressed bytes -> tiles holding them
    fd = os.open(ds.name, os.O_RDONLY)
    try:
        for i in np.flatnonzero((mask.counts > 0) & (mask.counts <= SMALL)):
            same[os.pread(fd, int(mask.counts[i]), int(mask.offsets[i]))].append(int(i))
    finally:
        os.close(fd)
    values = np.full(across * down, MIXED, np.int16)
    values[(mask.counts == 0) & (mask.offsets == 0)] = 0  # sparse: never written, read as 0 (GDAL's SPARSE_OK)
    # tiles wholly inside the raster: all their pixels can be read back (an edge tile's padding cannot)
    index = np.arange(across * down)
    whole = ((index % across + 1) * bw <= size[0]) & ((index // across + 1) * bh <= size[1])
    for tiles in same.values():
        inner = [i for i in tiles if whole[i]]
        if len(tiles) > 1 and inner:  # decode one of them: identical bytes decode to identical pixels
            row, col = divmod(inner[0], across)
            pixels = ds.read_masks(1, window=Window(col * bw, row * bh, bw, bh))
            if (pixels == pixels.flat[0]).all():
                values[tiles] = pixels.flat[0]
    return MaskBlocks(values.reshape(down, across), (bh, bw))
