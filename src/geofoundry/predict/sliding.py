"""Sliding-window prediction over a region of a scene, streamed as blended row strips."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from rasterio.windows import Window

from ..preprocess.chips import starts
from .blend import StripBlender, ramp_weights

ModelFn = Callable[[np.ndarray], np.ndarray]  # (B, C, h, w) raw float32 -> (B, K, h, w) probabilities
AreaMask = Callable[[Window], np.ndarray]  # window -> (h, w) bool, True inside the area to predict


def predict_region(grid, region: Window, model_fn: ModelFn, n_classes: int, low: np.ndarray, tile: int,
                   overlap: int, batch_size: int, area_mask: AreaMask) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Yield (window, probabilities (K, h, w), wanted (h, w)) strips covering ``region`` top to bottom.

    ``wanted`` = valid pixels inside the area. Tiles without any wanted pixel are skipped. Invalid input pixels are
    set to each band's stretch ``low`` (they become 0 after the stretch, as in training).
    """
    h, w = int(region.height), int(region.width)
    stride = tile - overlap
    rows, cols = starts(0, h, tile, stride), starts(0, w, tile, stride)
    weights = ramp_weights(tile, overlap)
    blender = StripBlender(n_classes, w, tile)
    fill = np.asarray(low, dtype=np.float32)[:, None, None]
    for i, r in enumerate(rows):
        for b in range(0, len(cols), batch_size):
            batch_cols = cols[b:b + batch_size]
            tiles, kept = [], []
            for c in batch_cols:
                win = Window(region.col_off + c, region.row_off + r, tile, tile)
                data, valid = grid.read(win)
                if (valid & area_mask(win)).any():
                    tiles.append(np.where(valid, data.astype(np.float32), fill))
                    kept.append(c)
            if not tiles:
                continue
            probs = model_fn(np.stack(tiles))
            for c, p in zip(kept, probs):
                blender.add(p[:, :h - r, :w - c], weights, r, c)
        until = rows[i + 1] if i + 1 < len(rows) else h
        for top, strip in blender.flush(until):
            win = Window(region.col_off, region.row_off + top, w, strip.shape[1])
            _, valid_rows = grid.read(win)
            yield win, strip, valid_rows & area_mask(win)
