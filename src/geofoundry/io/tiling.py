"""Tiling: chip windows inside a block window, and the block window of a geometry on a raster grid.

``starts`` needs neither rasterio nor shapely (the sliding window imports it where they are not installed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import shapely
    from affine import Affine
    from rasterio.windows import Window


def starts(offset: int, length: int, size: int, stride: int) -> list[int]:
    """Chip starts covering [offset, offset + length): regular steps, the last one aligned to the end."""
    if length <= size:
        return [offset]
    out = list(range(offset, offset + length - size + 1, stride))
    if out[-1] + size < offset + length:
        out.append(offset + length - size)
    return out


def tiles_reaching(start: int, end: int, length: int, size: int, stride: int) -> tuple[int, int]:
    """The span [a, b) of the tiles of ``starts(0, length, size, stride)`` that reach into [start, end): the tiles
    of ``starts(a, b - a, size, stride)`` are those very tiles, so a sub-range predicts its pixels as the whole
    range does."""
    reaching = [s for s in starts(0, length, size, stride) if s < end and s + size > start]
    return reaching[0], min(length, reaching[-1] + size)


def chip_windows(block: Window, size: int, stride: int) -> list[Window]:
    from rasterio.windows import Window

    cols = starts(int(block.col_off), int(block.width), size, stride)
    rows = starts(int(block.row_off), int(block.height), size, stride)
    return [Window(c, r, size, size) for r in rows for c in cols]


def block_window(geom: shapely.Geometry, transform: Affine, shape: tuple[int, int]) -> Window | None:
    """Pixel window (clipped to the raster) of a geometry's bounds in the raster CRS."""
    from rasterio.windows import Window

    x0, y0, x1, y1 = geom.bounds
    inv = ~transform
    cols, rows = zip(*(inv @ (x, y) for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))))
    c0, c1 = max(0, math.floor(min(cols))), min(shape[1], math.ceil(max(cols)))
    r0, r1 = max(0, math.floor(min(rows))), min(shape[0], math.ceil(max(rows)))
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)
