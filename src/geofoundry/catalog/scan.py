"""Scan one scene: valid footprint, global grid cells, pixel contexts and label counts per cell, by windows."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import GeofoundryError
from ..io.geometry import reproject
from ..io.grid import GRID_CRS, scene_cells
from ..io.raster import valid_footprint
from ..io.raw import class_levels, read_labels
from ..io.read_errors import raster_errors
from ..io.warp import open_scene
from .contexts import PIXEL_CONTEXTS, context_masks, full_scale

TILE = 512  # output pixels per side of one context window
COUNT_PREFIX = "count:"


@dataclass
class SceneScan:
    footprint: object  # valid area (shapely), EPSG:3857
    contexts: dict  # scene-level context fractions
    cells: gpd.GeoDataFrame  # ix, iy, valid_area_m2, nodata, contexts, count:<class path>, geometry (cell)
    labels: gpd.GeoDataFrame  # labels overlapping the valid area, EPSG:3857


def _cell_keys(ds, win: Window, shape: tuple[int, int], size: float, to_grid) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell (ix, iy) of each pixel centre of a decimated window."""
    h, w = shape
    t = ds.window_transform(win) * Affine.scale(win.width / w, win.height / h)
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x, y = t.c + t.a * cols + t.b * rows, t.f + t.d * cols + t.e * rows
    if to_grid is not None:
        x, y = to_grid.transform(x, y)
    return np.floor(np.asarray(x) / size).astype(np.int64), np.floor(np.asarray(y) / size).astype(np.int64)


def context_counts(ds, band_names: list[str], dtype: str, gsd_m: float, context_gsd_m: float,
                   size: float) -> tuple[pd.DataFrame, set[str]]:
    """Pixel counts per grid cell at about ``context_gsd_m`` (total, valid, each pixel context), and the contexts
    that these bands cannot tell."""
    f = max(1, math.floor(context_gsd_m / gsd_m))
    idx = list(range(1, len(band_names) + 1))
    k = max(1, math.ceil(max(ds.height, ds.width) / 512))
    over = ds.read(idx, out_shape=(len(idx), math.ceil(ds.height / k), math.ceil(ds.width / k)))
    over = over[np.isfinite(over)] if over.dtype.kind == "f" else over  # NaN or infinite: float scenes' no data
    scale = full_scale(dtype, float(over.max()) if over.size else 0.0)
    to_grid = None if CRS.from_user_input(ds.crs) == CRS.from_user_input(GRID_CRS) else \
        Transformer.from_crs(ds.crs, GRID_CRS, always_xy=True)
    names = ("total", "valid", *PIXEL_CONTEXTS)
    acc: dict[tuple[int, int], np.ndarray] = {}
    unknown: set[str] = set()
    step = TILE * f
    for r0 in range(0, ds.height, step):
        for c0 in range(0, ds.width, step):
            win = Window(c0, r0, min(step, ds.width - c0), min(step, ds.height - r0))
            shape = (max(1, math.ceil(win.height / f)), max(1, math.ceil(win.width / f)))
            valid = ds.dataset_mask(window=win, out_shape=shape) > 0
            layers = [np.ones(shape, bool), valid] + [np.zeros(shape, bool)] * len(PIXEL_CONTEXTS)
            if valid.any():
                data = ds.read(idx, window=win, out_shape=(len(idx), *shape), resampling=Resampling.average)
                if data.dtype.kind == "f":  # NaN would spread through the haze's minimum filter
                    valid &= np.isfinite(data).all(axis=0)
                masks = context_masks(dict(zip(band_names, data)), valid, scale, gsd_m * win.width / shape[1])
                unknown |= {k for k, m in masks.items() if m is None}
                layers[2:] = [m if m is not None else layers[2] for m in masks.values()]
            ix, iy = _cell_keys(ds, win, shape, size, to_grid)
            keys, inverse = np.unique(np.stack([ix.ravel(), iy.ravel()]), axis=1, return_inverse=True)
            sums = np.stack([np.bincount(inverse.ravel(), weights=m.ravel(), minlength=keys.shape[1])
                             for m in layers], axis=1)
            for k, (kx, ky) in enumerate(keys.T):
                acc[(int(kx), int(ky))] = acc.get((int(kx), int(ky)), 0) + sums[k]
    index = pd.MultiIndex.from_tuples(list(acc), names=["ix", "iy"]) if acc else None
    return pd.DataFrame(list(acc.values()), columns=list(names), index=index), unknown


def fractions(counts: pd.DataFrame, unknown: set[str]) -> pd.DataFrame:
    """Context fractions from pixel counts: ``nodata`` of all pixels, the others of valid pixels (NaN if unknown)."""
    out = pd.DataFrame({"nodata": 1 - counts["valid"] / counts["total"]}, index=counts.index)
    for name in PIXEL_CONTEXTS:
        out[name] = np.nan if name in unknown else counts[name] / counts["valid"].where(counts["valid"] > 0)
    return out


def level_counts(cells: gpd.GeoDataFrame, labels: gpd.GeoDataFrame, size: float) -> pd.DataFrame:
    """Objects per cell for every class path level (``count:a``, ``count:a/b``…), each in its representative point's cell."""
    if labels.empty:
        return pd.DataFrame(index=cells.index)
    pts = labels.geometry.representative_point()
    rows = [(math.floor(p.x / size), math.floor(p.y / size), lvl)
            for p, path in zip(pts, labels["class_path"]) for lvl in class_levels(path)]
    table = pd.DataFrame(rows, columns=["ix", "iy", "path"]).value_counts().unstack("path", fill_value=0)
    table.columns = [COUNT_PREFIX + c for c in table.columns]
    keyed = cells[["ix", "iy"]].merge(table, left_on=["ix", "iy"], right_index=True, how="left")
    return keyed.drop(columns=["ix", "iy"]).fillna(0).astype(int)


def scene_labels(path: str, footprint) -> gpd.GeoDataFrame:
    """Labels in EPSG:3857 that overlap the valid area; warn about the ones that do not. When none does, the scene's
    objects would all be learnt as background: refused."""
    labels = read_labels(path).to_crs(GRID_CRS)
    inside = labels.intersects(footprint)
    if len(labels) and not inside.any():
        raise GeofoundryError(f"{path}: none of its {len(labels)} labels overlaps the valid area of its image (wrong "
                              "place, CRS or scene?), so its objects would be learnt as background; fix the labels "
                              "or leave the scene out of scenes.csv")
    if not inside.all():
        warnings.warn(f"{path}: {int((~inside).sum())} of {len(labels)} labels lie outside the image's valid area; "
                      "they are ignored", stacklevel=2)
    return labels[inside].reset_index(drop=True)


def scan_scene(row: pd.Series, block_size_m: float, context_gsd_m: float) -> SceneScan:
    """Everything the catalog and the selection need to know about one scene (RPC scenes at their RPC height)."""
    band_names = str(row["band_names"]).split("|")
    gsd = float(row["gsd_m"])
    with open_scene(row["image_path"], gsd, gsd, list(range(1, len(band_names) + 1))) as grid, \
            raster_errors(row["image_path"]):
        footprint = reproject(valid_footprint(grid.ds), grid.ds.crs, GRID_CRS, densify_parts=64)
        counts, unknown = context_counts(grid.ds, band_names, str(row["dtype"]), gsd, context_gsd_m, block_size_m)
    cells = scene_cells(footprint, block_size_m)
    cells = cells.merge(fractions(counts, unknown), left_on=["ix", "iy"], right_index=True, how="left")
    scene = fractions(counts.sum().to_frame().T, unknown).iloc[0].to_dict() if len(counts) else {}
    labels = scene_labels(row["labels_path"], footprint)
    cells = pd.concat([cells, level_counts(cells, labels, block_size_m)], axis=1)
    return SceneScan(footprint, scene, gpd.GeoDataFrame(cells, geometry="geometry", crs=GRID_CRS), labels)
