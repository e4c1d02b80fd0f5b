"""The raster part of a chain by windows, so that a scene of any size fits in memory.

Each window (``window_px`` a side) is read with a halo of ``halo_px`` pixels around it and goes through the raster
part of the chain (threshold, morphology, watershed, … up to ``polygonize``) on its own; windows that the mask's
blocks show to hold no valid pixel are skipped (:mod:`..io.mask_blocks`: a sparse map costs its valid area). A
polygon is kept by the one window whose core holds its representative point, so an object narrower than the halo
comes out once and whole, exactly as from the whole scene. Windows run on a few threads; the vector part then runs
on all the scene's polygons together.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.windows import Window

from ..io.mask_blocks import mask_blocks
from ..io.signals import ThreadPool
from .registry import Chain
from .state import SceneState
from .vectorize import pixel_polygon, shrunk

log = logging.getLogger(__name__)


def windows(height: int, width: int, core: int, halo: int) -> Iterator[tuple[Window, Window]]:
    """(core, read) windows tiling the raster: cores partition it, reads add the halo (clipped to the raster)."""
    for r0 in range(0, height, core):
        for c0 in range(0, width, core):
            r1, c1 = min(r0 + core, height), min(c0 + core, width)
            rr0, cc0 = max(0, r0 - halo), max(0, c0 - halo)
            yield (Window(c0, r0, c1 - c0, r1 - r0),
                   Window(cc0, rr0, min(width, c1 + halo) - cc0, min(height, r1 + halo) - rr0))


def in_core(objects: gpd.GeoDataFrame, core: Window, transform) -> np.ndarray:
    """Rows whose representative point falls in the pixels of ``core`` (``transform``: the scene's grid)."""
    points = objects.geometry.representative_point()
    cols, rows = ~transform * (points.x.to_numpy(), points.y.to_numpy())
    cols, rows = np.floor(cols), np.floor(rows)
    return ((cols >= core.col_off) & (cols < core.col_off + core.width)
            & (rows >= core.row_off) & (rows < core.row_off + core.height))


def run_windowed(ds: rasterio.DatasetReader, read, chain: Chain, core: int, halo: int, workers: int = 1) -> SceneState:
    """``chain`` on a scene too large to hold: ``read(dataset, window)`` gives the :class:`SceneState` of a window.

    ``workers`` threads run windows at once, each on its own handle of ``ds``'s file (the ops release the GIL
    for most of their work); memory grows with them, one window each. Returns the final state; its ``valid`` is
    empty (0 × 0); its ``outline`` traces the valid area by windows when a vector op needs it.
    """
    raster_part, vector_part = chain.split()
    tiles = list(windows(ds.height, ds.width, core, halo))
    busy = [tile for tile in tiles if may_hold_valid(ds, tile[0])] or tiles[:1]  # one, for an empty scene's state
    log.info("%s: %d × %d px, the raster part by %d windows of %d px (+%d px halo), %d at once; %d other windows "
             "hold no valid pixel", ds.name, ds.width, ds.height, len(busy), core, halo, workers,
             len(tiles) - len(busy))
    empty = np.zeros((0, 0), bool)

    def piece(tile: tuple[Window, Window]) -> SceneState:
        core_win, read_win = tile
        with rasterio.open(ds.name) as handle:
            state = raster_part(read(handle, read_win))
        return replace(state, valid=empty, objects=state.objects[in_core(state.objects, core_win, ds.transform)])

    with ThreadPool(max_workers=workers, thread_name_prefix="postprocess") as pool:
        states = list(pool.map(piece, busy))
    objects = gpd.GeoDataFrame(pd.concat([st.objects for st in states], ignore_index=True), crs=states[0].crs)
    outline = functools.partial(valid_outline, ds.name, core) if vector_part.needs_scene_area else None
    return vector_part(replace(states[0], transform=ds.transform, valid=empty, objects=objects, outline=outline))


def valid_outline(path: str, core: int, inset_px: int) -> shapely.Geometry:
    """The valid area of the raster at ``path`` shrunk by ``inset_px``, in pixel coordinates, by windows: each
    window's mask is read with a halo wider than the inset, shrunk, cut to its core and traced; the pieces are then
    unioned (exactly: their corners are whole pixel numbers)."""
    pieces = []
    with rasterio.open(path) as ds:
        for core_win, read_win in windows(ds.height, ds.width, core, inset_px + 1):
            if not may_hold_valid(ds, core_win):
                continue
            valid = shrunk(ds.dataset_mask(window=read_win) > 0, inset_px)
            r0, c0 = int(core_win.row_off - read_win.row_off), int(core_win.col_off - read_win.col_off)
            piece = valid[r0:r0 + int(core_win.height), c0:c0 + int(core_win.width)]
            pieces.append(pixel_polygon(piece, int(core_win.col_off), int(core_win.row_off)))
    return shapely.union_all(pieces)


def may_hold_valid(ds: rasterio.DatasetReader, window: Window) -> bool:
    """False when the internal mask's blocks say, without decoding them, that no pixel of ``window`` is valid."""
    blocks = mask_blocks(ds)
    return blocks is None or blocks.constant(window) != 0


def needs_windows(ds: rasterio.DatasetReader, window_px: int) -> bool:
    """True when ``window_px`` is set and the scene spans more than one window."""
    return bool(window_px) and math.ceil(ds.height / window_px) * math.ceil(ds.width / window_px) > 1
