"""Overlay PNGs, one per test block: the imagery at the prediction grid's resolution (2× for small blocks), the
TP/FP/FN object outlines, and a header with the block's figures and a legend.

Blocks are the selection's test blocks; without a selection (a client's acceptance run) they are the cells of the
global grid (``io.grid``) of :data:`BLOCK_M` that hold evaluated pixels. A scene gets at most :data:`MAX_PER_SCENE`
overlays: those of its blocks with the most objects.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from PIL import Image, ImageDraw, ImageFont
from rasterio import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds

from ..io.atomic import atomic_path
from ..io.geometry import reproject
from ..io.grid import GRID_CRS, block_id, scene_cells
from ..io.raster import mask_outline
from ..io.read_errors import raster_errors
from .objects import prf
from .scene import Grid

COLORS = {"fn": (255, 255, 0), "fp": (255, 0, 0), "tp": (0, 255, 0)}  # drawn in this order
LEGEND = {"tp": "TP: matched prediction", "fp": "FP: false detection", "fn": "FN: missed object"}
HEADER_BG, HEADER_FG = (32, 32, 32), (255, 255, 255)
BLOCK_M = 150.0  # cell size when there are no test blocks
MAX_PER_SCENE = 24  # overlays of one scene at most (an acceptance run over a large scene has thousands of cells)
UPSCALE_BELOW = 600  # blocks of at most this many pixels a side are drawn at 2×
MIN_WIDTH = 720  # px, so that the header's lines fit
FONT_PX = 14
OUTSIDE_DIM = 0.35  # brightness of pixels outside the evaluation area
LINE_WIDTH = 2


def overlay_blocks(grid: Grid, blocks: gpd.GeoDataFrame | None, placed: gpd.GeoDataFrame
                   ) -> tuple[list[tuple[str, Window, dict]], int]:
    """(block id, window of the prediction grid, figures) of the test blocks that hold evaluated pixels, at most
    :data:`MAX_PER_SCENE` (those with the most objects); and how many blocks hold evaluated pixels.

    ``placed``: the scene's counted objects (``breakdown.outcomes``: outcome, representative point in EPSG:3857);
    a block's figures are those of the objects whose point lies in it.
    """
    area = reproject(mask_outline(grid.mask, grid.transform), grid.crs, GRID_CRS, densify_parts=64)
    if blocks is None:
        cells = scene_cells(area, BLOCK_M)
        cells["block_id"] = [block_id(ix, iy) for ix, iy in zip(cells["ix"], cells["iy"])]
    else:
        cells = blocks[blocks["split"] == "test"].to_crs(GRID_CRS)
        cells = cells[cells.intersects(area)]
    cells = cells[["block_id", "geometry"]].assign(block_id=cells["block_id"].astype(str)).reset_index(drop=True)
    joined = gpd.sjoin(placed[["outcome", "geometry"]], cells, predicate="within")
    counts = joined.groupby(["block_id", "outcome"]).size().unstack(fill_value=0).reindex(
        index=cells["block_id"], columns=list(COLORS), fill_value=0)
    full = Window(0, 0, grid.mask.shape[1], grid.mask.shape[0])
    found = []
    for name, cell in zip(cells["block_id"], cells.geometry):
        win = from_bounds(*reproject(cell, GRID_CRS, grid.crs, densify_parts=16).bounds, grid.transform)
        win = win.round_offsets().round_lengths().intersection(full)
        rows, cols = win.toslices()
        if grid.mask[rows, cols].any():
            n = {k: int(counts.at[name, k]) for k in COLORS}
            found.append((name, win, {**n, **prf(n["tp"], n["fp"], n["fn"])}))
    busiest = sorted(range(len(found)), key=lambda i: -sum(found[i][2][k] for k in COLORS))[:MAX_PER_SCENE]
    return [found[i] for i in sorted(busiest)], len(found)


def _stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band 0.5–99.5 percentile stretch (of the valid pixels) to uint8, for any image dtype; NaN and infinite
    values (float scenes' no data) are left out of the percentiles and drawn black."""
    out = np.empty(rgb.shape, dtype=np.uint8)
    for i, band in enumerate(rgb.astype(float)):
        finite = np.isfinite(band)
        sample = band[valid & finite] if (valid & finite).any() else band[finite]
        lo, hi = np.percentile(sample, (0.5, 99.5)) if sample.size else (0.0, 1.0)
        out[i] = np.clip(np.nan_to_num((band - lo) / max(hi - lo, 1e-9) * 255, posinf=0, neginf=0), 0, 255)
    return out


def render(image_path: str | Path, grid: Grid, win: Window, outlines: dict[str, list], title: str,
           out_path: Path) -> None:
    """Write ``out_path``: the first three image bands of the block warped to the prediction grid (2× for a small
    block), outlines drawn on top, a header with ``title`` and the legend. A palette PNG: 251 imagery colours, then
    the header's and the outlines' colours at exact indices."""
    r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
    scale = 2 if max(h, w) <= UPSCALE_BELOW else 1
    transform = grid.transform @ Affine.translation(c0, r0) @ Affine.scale(1 / scale)
    with raster_errors(image_path), rasterio.open(image_path) as src, WarpedVRT(
        src, crs=grid.crs, transform=transform, width=w * scale, height=h * scale, resampling=Resampling.bilinear
    ) as vrt:
        raw = vrt.read([1, 2, 3] if src.count >= 3 else [1, 1, 1])
    inside = np.repeat(np.repeat(grid.mask[r0:r0 + h, c0:c0 + w], scale, 0), scale, 1)
    rgb = _stretch(raw, inside)
    rgb[:, ~inside] = (rgb[:, ~inside] * OUTSIDE_DIM).astype(np.uint8)

    fixed = [HEADER_BG, HEADER_FG, *COLORS.values()]
    first = 256 - len(fixed)
    img = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0))).quantize(colors=first)
    index = {kind: first + 2 + i for i, kind in enumerate(COLORS)}
    draw = ImageDraw.Draw(img)
    to_px = ~transform
    for kind in COLORS:
        for geom in outlines[kind]:
            px = shapely.transform(geom, lambda xy: np.column_stack(to_px @ (xy[:, 0], xy[:, 1])))
            for ring in shapely.get_rings(shapely.get_parts(px)):
                draw.line([tuple(p) for p in ring.coords], fill=index[kind], width=LINE_WIDTH)

    font = ImageFont.load_default(size=FONT_PX)
    line = FONT_PX + 6
    canvas = Image.new("P", (max(img.width, MIN_WIDTH), img.height + 2 * line + 6), first)
    canvas.putpalette((img.getpalette() + [0] * 768)[: first * 3] + [v for c in fixed for v in c])
    canvas.paste(img, (0, 2 * line + 6))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 3), title + (" · drawn at 2x" if scale == 2 else ""), fill=first + 1, font=font)
    x = 6
    for kind, label in LEGEND.items():
        draw.rectangle((x, line + 5, x + FONT_PX, line + 5 + FONT_PX), outline=index[kind], width=LINE_WIDTH)
        x += FONT_PX + 6
        draw.text((x, line + 3), label, fill=first + 1, font=font)
        x += int(draw.textlength(label, font=font)) + 18
    with atomic_path(out_path) as tmp:
        canvas.save(tmp, format="PNG", optimize=True)
