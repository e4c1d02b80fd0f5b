"""Sliding-window prediction over a region, one row of tiles at a time, streamed as final blended row strips.

Rows of tiles ("strips", one tile tall and the region wide) are read by a pool of threads (GDAL releases the GIL)
ahead of the model. Each strip goes to the model's device once; tiles are cut there, run in batches and blended
there; only the finished rows come back, as uint8 probabilities (round(255·p)), while the next strip runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..preprocess.chips import starts
from .arrays import Array, TileModel
from .blend import StripBlender

# row offset -> (bands (C, tile, width), valid (tile, width), wanted (tile, width)), each staged by the backend
StripReader = Callable[[int], tuple[Array, Array, Array]]


def predict_region(read_strip: StripReader, height: int, width: int, model: TileModel, n_classes: int,
                   low: np.ndarray, tile: int, overlap: int, batch_size: int, readers: int = 2
                   ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (first row, uint8 probabilities of classes 1..K-1 (K-1, n, width), wanted (n, width)) top to bottom.

    ``wanted`` = valid pixels inside the area (its probabilities are set to 0 elsewhere); strips without any are
    not yielded, tiles without any are not run. Invalid input pixels are set to each band's stretch ``low`` (they
    become 0 after the stretch, as in training). ``read_strip(row)`` reads ``tile`` rows × ``max(width, tile)``
    columns from ``row``, outside the region or raster marked not wanted.
    """
    arrays, xp = model.arrays, model.arrays.xp
    stride = tile - overlap
    rows, cols = starts(0, height, tile, stride), starts(0, width, tile, stride)
    fill = arrays.put(np.asarray(low, dtype=np.float32)[:, None, None])
    blender = StripBlender(arrays, n_classes, max(width, tile), tile, overlap)
    waiting: deque = deque()  # rows whose device → host copy is in flight
    with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="read") as pool:
        ahead = deque(pool.submit(read_strip, r) for r in rows[: readers + 1])
        for i, row in enumerate(rows):
            pixels, valid, staged_wanted = ahead.popleft().result()
            wanted = np.asarray(staged_wanted)
            if i + len(ahead) + 1 < len(rows):
                ahead.append(pool.submit(read_strip, rows[i + len(ahead) + 1]))
            todo = [c for c in cols if wanted[:, c:c + tile].any()]
            if todo:
                x = fill + (arrays.put(pixels) - fill) * arrays.put(valid)[None]
                for b in range(0, len(todo), batch_size):
                    chunk = todo[b:b + batch_size]
                    for c, probs in zip(chunk, model(xp.stack([x[:, :, c:c + tile] for c in chunk]))):
                        blender.add(probs, c)
            n = rows[i + 1] - row if i + 1 < len(rows) else min(tile, height - row)
            blended = blender.flush(n)
            done = wanted[:n, :width]
            if done.any():
                mask = arrays.put(staged_wanted)[:n, :width]
                quantized = arrays.to_uint8((blended[1:, :, :width].clip(0, 1) * 255).round() * mask)
                waiting.append((row, arrays.take(quantized), done))
            while len(waiting) > 1 or (waiting and i + 1 == len(rows)):
                top, get, done = waiting.popleft()
                yield top, get(), done
