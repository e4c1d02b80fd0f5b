"""Overlay PNG of one scene: imagery cropped to the evaluation area, with TP/FP/FN object outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import shapely
from PIL import Image, ImageDraw
from rasterio import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from ..io.atomic import atomic_path
from .scene import Grid

COLORS = {"fn": (255, 255, 0), "fp": (255, 0, 0), "tp": (0, 255, 0)}  # drawn in this order
MAX_SIDE = 960  # px; a palette PNG of at most 960² px stays below 1 MB
OUTSIDE_DIM = 0.35  # brightness of pixels outside the evaluation area
LINE_WIDTH = 2


def _crop(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, col0, height, width) of the bounding box of ``mask`` (the whole grid when it is empty)."""
    if not mask.any():
        return 0, 0, *mask.shape
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return rows[0], cols[0], rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """Per-band 0.5–99.5 percentile stretch to uint8 (works for any image dtype)."""
    out = np.empty(rgb.shape, dtype=np.uint8)
    for i, band in enumerate(rgb.astype(float)):
        lo, hi = np.percentile(band, (0.5, 99.5))
        out[i] = np.clip((band - lo) / max(hi - lo, 1e-9) * 255, 0, 255)
    return out


def render(image_path: str | Path, grid: Grid, outlines: dict[str, list], out_path: Path) -> None:
    """Write ``out_path``: the first three image bands warped to the prediction grid, outlines drawn on top."""
    r0, c0, h, w = _crop(grid.mask)
    scale = min(1.0, MAX_SIDE / max(h, w))
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    transform = grid.transform @ Affine.translation(c0, r0) @ Affine.scale(w / out_w, h / out_h)
    with rasterio.open(image_path) as src, WarpedVRT(
        src, crs=grid.crs, transform=transform, width=out_w, height=out_h, resampling=Resampling.average
    ) as vrt:
        rgb = _stretch(vrt.read([1, 2, 3] if src.count >= 3 else [1, 1, 1]))
    rows = r0 + ((np.arange(out_h) + 0.5) * h / out_h).astype(int)
    cols = c0 + ((np.arange(out_w) + 0.5) * w / out_w).astype(int)
    outside = ~grid.mask[np.ix_(rows, cols)]
    rgb[:, outside] = (rgb[:, outside] * OUTSIDE_DIM).astype(np.uint8)

    # palette image: 253 imagery colours + the outline colours at exact indices 253..255
    img = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0))).quantize(colors=253)
    palette = (img.getpalette() + [0] * 768)[: 253 * 3] + [v for c in COLORS.values() for v in c]
    img.putpalette(palette)
    draw = ImageDraw.Draw(img)
    to_px = ~transform
    for index, kind in enumerate(COLORS, start=253):
        for geom in outlines[kind]:
            px = shapely.transform(geom, lambda xy: np.column_stack(to_px @ (xy[:, 0], xy[:, 1])))
            for ring in shapely.get_rings(shapely.get_parts(px)):
                draw.line([tuple(p) for p in ring.coords], fill=index, width=LINE_WIDTH)
    with atomic_path(out_path) as tmp:
        img.save(tmp, format="PNG", optimize=True)
