"""Sliding-window prediction over a region of a scene, streamed as blended row strips.

Tiles are read by a background thread (GDAL releases the GIL) while the model runs on the previous batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from rasterio.windows import Window

from ..preprocess.chips import starts
from .blend import StripBlender, ramp_weights

ModelFn = Callable[[np.ndarray], np.ndarray]  # (B, C, h, w) raw float32 -> (B, K, h, w) probabilities
AreaMask = Callable[[Window], np.ndarray]  # window -> (h, w) bool, True inside the area to predict
PREFETCH = 2


def predict_region(grid, region: Window, model_fn: ModelFn, n_classes: int, low: np.ndarray, tile: int,
                   overlap: int, batch_size: int, area_mask: AreaMask) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Yield (window, probabilities (K, h, w), wanted (h, w)) strips covering ``region`` top to bottom.

    ``wanted`` = valid pixels inside the area. Tiles without any wanted pixel are skipped. Invalid input pixels are
    set to each band's stretch ``low`` (they become 0 after the stretch, as in training).
    """
    h, w = int(region.height), int(region.width)
    stride = tile - overlap
    origins = [(r, c) for r in starts(0, h, tile, stride) for c in starts(0, w, tile, stride)]
    batches = [origins[i:i + batch_size] for i in range(0, len(origins), batch_size)]
    weights = ramp_weights(tile, overlap)
    fill = np.asarray(low, dtype=np.float32)[:, None, None]

    def read(batch):
        kept, data, wanted = [], [], []
        for r, c in batch:
            win = Window(region.col_off + c, region.row_off + r, tile, tile)
            pixels, valid = grid.read(win)
            want = valid & area_mask(win)
            if want.any():
                kept.append((r, c))
                data.append(np.where(valid, pixels.astype(np.float32), fill))
                wanted.append(want)
        return kept, data, wanted

    blender = StripBlender(n_classes, w, tile)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(read, b) for b in batches[:PREFETCH]]
        for i in range(len(batches)):
            kept, data, wanted = pending.pop(0).result()
            if i + PREFETCH < len(batches):
                pending.append(pool.submit(read, batches[i + PREFETCH]))
            if kept:
                probs = model_fn(np.stack(data))
                for (r, c), p, want in zip(kept, probs, wanted):
                    blender.add(p[:, :h - r, :w - c], weights, want[:h - r, :w - c], r, c)
            until = batches[i + 1][0][0] if i + 1 < len(batches) else h
            for top, strip, want in blender.flush(until):
                yield Window(region.col_off, region.row_off + top, w, strip.shape[1]), strip, want
