"""Sliding-window prediction over a region, one row of tiles at a time, streamed as final blended row strips.

Rows of tiles ("strips", one tile tall and the region wide) are read ahead of the model into a ring of reused host
buffers (page-locked on CUDA): first the mask, then the bands of the columns that hold tiles to run. The region's
width is cut into column pieces aligned on the source's blocks, and reading lane ``k`` (a thread with its own
dataset handle; GDAL releases the GIL) reads piece ``k`` of every strip, so the block rows that one strip shares
with the next are still in that handle's block cache. The ring holds ``STRIPS_AHEAD`` + 1 strips (two), so host
memory stays bounded whatever the scene's size. Each strip goes to the model's device in one copy; tiles are cut,
run in batches and blended there; only finished rows come back, as uint8 probabilities (round(255·p)) and their
mask packed 8 pixels a byte, while the next strip runs.
"""

from __future__ import annotations

import contextlib
import enum
import queue
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from ..io.signals import ThreadPool
from ..io.tiling import starts
from .arrays import Array, TileModel
from .blend import StripBlender, cut
from .lanes import Lane
from .pyramid import Pyramid


class PixelFlag(enum.IntFlag):
    """The bits of a pixel in a strip's flag plane (uint8): ``VALID`` input, ``INSIDE`` the prediction area and the
    region. ``WANTED`` pixels (both) are predicted and written; ``VALID`` ones alone are context for the tiles
    around them; 0: invalid. Flag planes stay numpy uint8 arrays (and floats on the model's device): they are
    compared with and masked by the ``int`` values."""

    VALID = 1
    INSIDE = 2
    WANTED = VALID | INSIDE


# (lane, row, first column, end column, out) fill out (tile, end - first) with the PixelFlag values of those columns;
# lane: which reading lane (and dataset handle) calls
FlagReader = Callable[[int, int, int, int, np.ndarray], None]
# (lane, row, first column, end column, out) fill out (C, tile, end - first) with the bands, in the source dtype
BandReader = Callable[[int, int, int, int, np.ndarray], None]
# strips read ahead of the one the model runs (the ring holds one buffer more): one keeps the reading lanes busy,
# and fewer threads contend for the GIL and hold memory (BENCHMARKS.md, predict)
STRIPS_AHEAD = 1


@dataclass(frozen=True)
class Region:
    """The ``height`` × ``width`` pixels to predict, and how to read them.

    The readers are called by reading lanes ``0..lanes-1`` with the rows of :meth:`Sliding.starts`, on column pieces
    whose inner edges fall on the source's blocks (``block_width``; ``col_off``: the region's first column in the
    source); a strip, one tile tall, may reach below the region (rows there must not be wanted). ``dtype``: the
    bands' dtype; ``low``: each band's stretch low, what invalid input pixels are set to (0 after the stretch, as in
    training), and so are NaN or infinite values of float bands. ``known_invalid(row)``: True when no pixel of that
    strip is valid, known without reading (a scene's nodata collar): such a strip is not read.
    """

    read_flags: FlagReader
    read_bands: BandReader
    height: int
    width: int
    dtype: np.dtype
    low: np.ndarray
    lanes: int = 2
    block_width: int = 1
    col_off: int = 0
    known_invalid: Callable[[int], bool] | None = None

    def pieces(self, span: int) -> list[int]:
        """Edges of the lanes' column pieces over ``span`` columns: lane ``k`` reads ``edges[k]:edges[k + 1]``."""
        block = self.block_width if self.block_width * self.lanes <= span else 1  # striped sources: any edges do
        inner = {round((self.col_off + k * span / self.lanes) / block) * block - self.col_off
                 for k in range(1, self.lanes)}
        return sorted({0, span} | {e for e in inner if 0 < e < span})


@dataclass(frozen=True)
class Sliding:
    """How the model slides over a region: ``tile``² tiles sharing ``overlap`` pixels with their neighbours
    (blended), ``batch_size`` tiles a forward, ``n_classes`` output classes (background included);
    ``overview_factors`` (2, 4, …): overview rows built on the device as the strips pass (:mod:`.pyramid`)."""

    tile: int
    overlap: int
    batch_size: int
    n_classes: int
    overview_factors: tuple[int, ...] = ()

    def starts(self, size: int) -> list[int]:
        """Where the tiles start along ``size`` pixels."""
        return starts(0, size, self.tile, self.tile - self.overlap)


class Rows(NamedTuple):
    """Finished rows ``top..top+n`` of one level of the map, on the host: ``values`` (K-1, n, w) uint8 round(255·p)
    of classes 1..K-1, 0 where not valid; ``valid`` (n, ⌈w/8⌉) uint8, the mask's bits as ``np.packbits(…,
    axis=-1)`` packs them; both None when no pixel of them is valid."""

    top: int
    n: int
    values: np.ndarray | None = None
    valid: np.ndarray | None = None


class Strip(NamedTuple):
    """Finished rows of the region, and the rows of each overview level they complete."""

    rows: Rows
    levels: list[Rows]


class StripReader:
    """Reads strips ``tile`` rows tall and ``span`` wide into a ring of ``STRIPS_AHEAD`` + 1 reused host buffers
    (page-locked on CUDA, made when first needed): bands in planes ``:-1``, flags in the last. Each lane reads its
    column piece of every strip, earliest strip first; lanes are entered on ``stack``."""

    def __init__(self, region: Region, sliding: Sliding, arrays, rows: list[int], heights: list[int],
                 span: int, stack: contextlib.ExitStack):
        self.region, self.arrays, self.rows, self.heights = region, arrays, rows, heights
        self.tile, self.cols = sliding.tile, sliding.starts(region.width)
        self.shape = (len(region.low) + 1, sliding.tile, span)
        self.span, self.edges = span, region.pieces(span)
        self.lanes = [stack.enter_context(Lane(f"read-{k}")) for k in range(len(self.edges) - 1)]
        self.free: queue.SimpleQueue = queue.SimpleQueue()  # (buffer, wait until its last copy to the device is done)
        for _ in range(STRIPS_AHEAD + 1):  # None: made by the strip thread that first needs it, not all at the start
            self.free.put((None, lambda: None))

    def release(self, buffer, copied: Callable[[], None] = lambda: None) -> None:
        """Give ``buffer`` back to the ring; ``copied`` waits until its copy to the device is done."""
        self.free.put((buffer, copied))

    def load(self, i: int) -> tuple[list[int], Array, bool]:
        """Read strip ``i`` into a free buffer (runs on a strip thread, the pieces on the reading lanes): the flags,
        then the bands of the columns that hold tiles to run. Returns those columns, the buffer, and whether any of
        the strip's rows to keep is wanted."""
        buffer, copied = self.free.get()
        copied()  # the previous strip in this buffer has reached the device
        buffer = self.arrays.empty(self.shape, self.region.dtype) if buffer is None else buffer
        host = np.asarray(buffer)
        # flags are read as uint8 (mask values, ``&``); a buffer of another dtype takes them as small numbers
        flags = host[-1] if host.dtype == np.uint8 else np.empty(host.shape[1:], np.uint8)
        self._read(self.region.read_flags, i, flags, [(0, self.span)])
        if host.dtype != np.uint8:
            host[-1] = flags
        wanted = flags == int(PixelFlag.WANTED)
        in_cols, in_rows = wanted.any(axis=0), wanted.any(axis=1)
        todo = [c for c in self.cols if in_cols[c:c + self.tile].any()]
        if todo:
            self._read(self.region.read_bands, i, host[:-1], runs([(c, c + self.tile) for c in todo]))
        return todo, buffer, bool(in_rows[:self.heights[i]].any())  # columns past the width are never wanted

    def _read(self, reader, i: int, out: np.ndarray, needed: list[tuple[int, int]]) -> None:
        """Columns ``needed`` of strip ``i`` into ``out``, each lane its piece."""
        jobs = []
        for k, (a, b) in enumerate(zip(self.edges, self.edges[1:])):
            parts = [(max(a, s), min(b, e)) for s, e in needed if max(a, s) < min(b, e)]
            if parts:
                jobs.append(self.lanes[k].submit(i, _read_parts, reader, k, self.rows[i], out, parts))
        for job in jobs:
            job.result()


def _read_parts(reader, lane: int, row: int, out: np.ndarray, parts: list[tuple[int, int]]) -> None:
    for s, e in parts:
        reader(lane, row, s, e, out[..., s:e])


def predict_region(region: Region, model: TileModel, sliding: Sliding) -> Iterator[Strip]:
    """Yield the :class:`Strip` of every row of tiles, top to bottom.

    Probabilities are 0 where pixels are not ``WANTED``; tiles without wanted pixels are not run, strips without
    any have no ``values``.
    """
    arrays, xp = model.arrays, model.arrays.xp
    tile, overlap, batch_size, n_classes = sliding.tile, sliding.overlap, sliding.batch_size, sliding.n_classes
    height, width, low = region.height, region.width, region.low
    floating = np.dtype(region.dtype).kind == "f"
    rows = sliding.starts(height)
    heights = [b - a for a, b in zip(rows, rows[1:])] + [min(tile, height - rows[-1])]  # rows each strip finishes
    span = max(width, tile)
    waiting: deque = deque()  # per strip whose device → host copy may be in flight: a function giving the Strip
    done = [0] * len(sliding.overview_factors)  # rows of each overview level so far

    def level_tops(counts: list[int]) -> list[int]:
        """Where the next ``counts`` rows of each overview level start (and count them)."""
        tops = done[:]
        done[:] = [t + c for t, c in zip(done, counts)]
        return tops

    with contextlib.ExitStack() as stack, \
            ThreadPool(max_workers=STRIPS_AHEAD, thread_name_prefix="strip") as strips:
        reader = StripReader(region, sliding, arrays, rows, heights, span, stack)
        # strips known to hold no valid pixel are not read, so the strips to read after them are read ahead
        skip = region.known_invalid
        to_read = deque(i for i, row in enumerate(rows) if skip is None or not skip(row))
        first = [to_read.popleft() for _ in range(min(STRIPS_AHEAD, len(to_read)))]
        ahead = {i: strips.submit(reader.load, i) for i in first}
        # the device's arrays are made while the first strips are read
        fill = arrays.put(np.asarray(low, dtype=np.float32)[:, None, None])
        one = arrays.put(np.ones(1, np.float32))
        pad = arrays.zeros((1, len(low), tile, tile)) if arrays.steady_shapes else None
        blender = StripBlender(arrays, n_classes, span, tile, overlap)
        pyramid = Pyramid(xp, list(sliding.overview_factors)) if sliding.overview_factors else None
        for i, row in enumerate(rows):
            todo, buffer, any_wanted = ahead.pop(i).result() if i in ahead else ([], None, False)
            if to_read and len(ahead) < STRIPS_AHEAD:  # bounded host memory
                j = to_read.popleft()
                ahead[j] = strips.submit(reader.load, j)
            last, n = i + 1 == len(rows), heights[i]
            counts = None if todo else pyramid.skip(n, last) if pyramid else []
            if counts is not None:  # no tile to run, no pixel wanted: the writer only needs the rows' counts
                if buffer is not None:
                    reader.release(buffer)
                blender.flush(n)
                waiting.append(partial(Strip, Rows(row, n), [Rows(t, m) for t, m in zip(level_tops(counts), counts)]))
            elif buffer is None:  # not read, yet an overview row waits for these rows: all invalid
                staged = arrays.zeros(reader.shape)
            else:
                staged = arrays.put(buffer)
                reader.release(buffer, arrays.copied())
            if counts is None:
                flags = staged[-1]
                if todo:
                    c0, c1 = todo[0], todo[-1] + tile
                    x, keep_in = staged[:-1, :, c0:c1], flags[None, :, c0:c1] > 0
                    if floating:  # a NaN or infinite band value is no data, whatever the mask says
                        x = xp.where(keep_in & xp.isfinite(x), x, fill)  # not a product: NaN * 0 is NaN
                    else:
                        x = fill + (x - fill) * keep_in  # invalid: the stretch's low (0 after it)
                    for b in range(0, len(todo), batch_size):
                        chunk = todo[b:b + batch_size]
                        tiles = cut(arrays, x, [c - c0 for c in chunk], tile, tile - overlap)
                        if pad is not None:  # one batch shape: cuDNN autotunes once
                            tiles += [pad] * (batch_size - len(chunk))
                        blender.add(model(xp.concatenate(tiles))[:len(chunk)], chunk)
                blended = blender.flush(n)
                keep = (flags[:n, :width] == int(PixelFlag.WANTED)) * one
                if blended is None:  # no tile reached these rows (an overview row waits for them): keep is all 0
                    blended = xp.concatenate([keep[None]] * n_classes)
                scaled = (blended[1:, :, :width].clip(0, 1) * 255).round() * keep if any_wanted or pyramid else None
                outputs = [scaled, keep] if any_wanted else []  # the strip's rows and mask, if any is wanted
                levels = pyramid.add(scaled, keep, last, not any_wanted) if pyramid else []
                outputs += [a for level in levels for a in level]
                tops = level_tops([int(valid.shape[0]) for _, valid in levels])
                taken = arrays.take([arrays.pack_bits(a) if k % 2 else arrays.to_uint8(a)  # (values, mask) pairs
                                     for k, a in enumerate(outputs)])
                waiting.append(partial(_finished, row, n, any_wanted, tops, taken))
            while len(waiting) > 1 or (waiting and last):
                yield waiting.popleft()()

def _finished(top: int, n: int, any_wanted: bool, level_tops: list[int],
              taken: Callable[[], list[np.ndarray]]) -> Strip:
    """The strip once its outputs are on the host: its rows and mask if any is wanted, then each level's rows and
    mask."""
    host = taken()
    full = Rows(top, n, host[0], host[1]) if any_wanted else Rows(top, n)
    levels = host[2:] if any_wanted else host
    return Strip(full, [Rows(t, len(m), v, m) for t, v, m in zip(level_tops, levels[::2], levels[1::2])])


def runs(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted (start, end) spans merged where they overlap or touch."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged
