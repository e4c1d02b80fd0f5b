"""Sliding-window prediction over a region, one row of tiles at a time, streamed as final blended row strips.

Rows of tiles ("strips", one tile tall and the region wide) are read by a pool of threads (GDAL releases the GIL)
ahead of the model: first the mask, then the bands of the columns that hold tiles to run. Each strip goes to the
model's device once; tiles are cut, run in batches and blended there; only finished rows come back, as uint8
probabilities (round(255·p)), while the next strip runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..preprocess.chips import starts
from .arrays import TileModel
from .blend import StripBlender
from .pyramid import Pyramid

# row -> (tile, max(region width, tile)) uint8: 0 invalid, 1 valid, 3 valid and wanted (inside area and region)
FlagReader = Callable[[int], np.ndarray]
# (row, first column, end column) -> bands (C, tile, end - first) in the source dtype
BandReader = Callable[[int, int, int], np.ndarray]
WANTED = 3


class Strip(NamedTuple):
    """Finished rows ``top..top+n`` of the region, on the host."""

    top: int
    values: np.ndarray | None  # (K-1, n, width) uint8 round(255·p) of classes 1..K-1, 0 outside wanted; None: none
    wanted: np.ndarray  # (n, width) bool
    levels: list[tuple[np.ndarray, np.ndarray]]  # per overview level: the rows completed, (K-1, m, w) and (m, w)


def predict_region(read_flags: FlagReader, read_bands: BandReader, height: int, width: int, model: TileModel,
                   n_classes: int, low: np.ndarray, tile: int, overlap: int, batch_size: int, readers: int = 2,
                   overview_factors: list[int] | None = None) -> Iterator[Strip]:
    """Yield the :class:`Strip` of every row of tiles, top to bottom.

    Probabilities are 0 outside ``wanted``; tiles without wanted pixels are not run, strips without any have no
    ``values``. Invalid input pixels are set to each band's stretch ``low`` (0 after the stretch, as in training).
    Readers are called with rows from ``starts(0, height, tile, tile - overlap)``; the strip ``tile`` rows tall may
    reach below the region (rows there must not be wanted). ``overview_factors`` (2, 4, …): overview rows are built
    on the device as the strips pass (:mod:`.pyramid`).
    """
    arrays, xp = model.arrays, model.arrays.xp
    rows, cols = starts(0, height, tile, tile - overlap), starts(0, width, tile, tile - overlap)
    span = max(width, tile)
    fill = arrays.put(np.asarray(low, dtype=np.float32)[:, None, None])
    one = arrays.put(np.ones(1, np.float32))
    pad = arrays.put(np.zeros((len(low), tile, tile), np.float32)) if arrays.steady_shapes else None
    blender = StripBlender(arrays, n_classes, span, tile, overlap)
    pyramid = Pyramid(xp, overview_factors) if overview_factors else None

    def load(row: int):
        flags = read_flags(row)
        wanted = flags == WANTED
        todo = [c for c in cols if wanted[:, c:c + tile].any()]
        pixels = arrays.stage(read_bands(row, todo[0], todo[-1] + tile)) if todo else None
        return todo, pixels, arrays.stage(flags), wanted

    waiting: deque = deque()  # rows whose device → host copy is in flight
    with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="read") as pool:
        ahead = deque(pool.submit(load, r) for r in rows[:readers])  # strips in flight: bounded host memory
        for i, row in enumerate(rows):
            todo, pixels, staged, wanted = ahead.popleft().result()
            if i + len(ahead) + 1 < len(rows):
                ahead.append(pool.submit(load, rows[i + len(ahead) + 1]))
            flags = arrays.put(staged)
            if todo:
                c0 = todo[0]
                x = fill + (arrays.put(pixels) - fill) * (flags[None, :, c0:c0 + pixels.shape[-1]] > 0)
                for b in range(0, len(todo), batch_size):
                    chunk = todo[b:b + batch_size]
                    tiles = [x[:, :, c - c0:c - c0 + tile] for c in chunk]
                    if pad is not None:  # one batch shape: cuDNN autotunes once
                        tiles += [pad] * (batch_size - len(chunk))
                    for c, probs in zip(chunk, model(xp.stack(tiles))):
                        blender.add(probs, c)
            last = i + 1 == len(rows)
            n = min(tile, height - row) if last else rows[i + 1] - row
            blended = blender.flush(n)
            done = wanted[:n, :width]
            keep = (flags[:n, :width] == WANTED) * one
            scaled = (blended[1:, :, :width].clip(0, 1) * 255).round() * keep if done.any() or pyramid else None
            values = arrays.take(arrays.to_uint8(scaled)) if done.any() else None
            levels = [(arrays.take(arrays.to_uint8(v)), arrays.take(arrays.to_uint8(m)))
                      for v, m in pyramid.add(scaled, keep, last)] if pyramid else []
            waiting.append((row, values, done, levels))
            while len(waiting) > 1 or (waiting and last):
                top, values, done, levels = waiting.popleft()
                yield Strip(top, values() if values else None, done, [(v(), m() > 0) for v, m in levels])
