"""Raster → vector: polygons of the mask or instances, and the outline of the valid area."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage as ndi
from shapely.geometry import shape

from ..io.raster import IN_MEMORY_DATASETS
from .raster_ops import label_classes
from .registry import register
from .state import SceneState


def _polygons(ids: np.ndarray, transform) -> dict[int, shapely.Geometry]:
    """One (multi)polygon per non-zero id of ``ids`` (4-connected pixel outlines)."""
    parts: dict[int, list] = defaultdict(list)
    with IN_MEMORY_DATASETS:
        traced = list(shapes(ids, mask=ids > 0, connectivity=4, transform=transform))
    for geom, value in traced:
        parts[int(value)].append(shape(geom))
    return {k: v[0] if len(v) == 1 else shapely.union_all(v) for k, v in sorted(parts.items())}


@register("polygonize", needs=("mask", "prob"), gives=("objects",), drops=("prob", "mask", "instances"))
def polygonize(state: SceneState) -> SceneState:
    """Polygons of the instances (after a watershed) or of each connected region of a class in the mask.

    ``score`` is the mean probability of the object's class over its pixels (of its footprint, p(class) +
    p(border), for a border model). The rasters are dropped: only vector ops can follow.
    """
    ids = state.instances if state.instances is not None else label_classes(state.mask, lambda b: ndi.label(b)[0])
    n = int(ids.max()) + 1
    class_of = np.zeros(n, np.int32)
    class_of[ids.ravel()] = state.mask.ravel()
    p = state.footprint_prob(state.mask)
    pixels = np.maximum(np.bincount(ids.ravel(), minlength=n), 1)
    score = np.bincount(ids.ravel(), weights=p.ravel(), minlength=n) / pixels
    polygons = _polygons(ids.astype(np.int32), state.transform)
    keys = np.fromiter(polygons, np.int64, len(polygons))
    objects = gpd.GeoDataFrame(
        {
            "class_id": class_of[keys],
            "class_name": np.array([state.class_names[k - 1] for k in class_of[keys]], dtype=object),
            "score": score[keys],
        },
        geometry=gpd.GeoSeries(list(polygons.values()), crs=state.crs),
    )
    return replace(state, objects=objects, prob=None, mask=None, instances=None)


def shrunk(valid: np.ndarray, inset_px: int) -> np.ndarray:
    """``valid`` without the pixels within ``inset_px`` of an invalid one (outside the array is invalid)."""
    return ndi.binary_erosion(valid, iterations=inset_px, border_value=0) if inset_px else valid


def pixel_polygon(valid: np.ndarray, col_off: int = 0, row_off: int = 0) -> shapely.Geometry:
    """The True pixels of ``valid`` as one (multi)polygon (empty if none) in pixel coordinates, the array's top-left
    pixel at (``col_off``, ``row_off``): whole numbers, so polygons of adjacent arrays union without slivers."""
    return _polygons(valid.astype(np.int32), Affine.translation(col_off, row_off)).get(1, shapely.Polygon())


def on_grid(geom: shapely.Geometry, transform: Affine) -> shapely.Geometry:
    """``geom`` from pixel coordinates to ``transform``'s CRS, with the arithmetic GDAL uses for traced outlines."""
    a, b, c, d, e, f = transform[:6]
    return shapely.transform(geom, lambda p: np.column_stack([a * p[:, 0] + b * p[:, 1] + c,
                                                              d * p[:, 0] + e * p[:, 1] + f]))


def valid_area(state: SceneState, inset_px: int = 0) -> gpd.GeoSeries:
    """The valid pixels as one (multi)polygon in ``state.crs``, shrunk by ``inset_px`` (the raster edge is outside);
    by windows in the vector part of a windowed run."""
    pixels = state.outline(inset_px) if state.outline is not None else pixel_polygon(shrunk(state.valid, inset_px))
    return gpd.GeoSeries([on_grid(pixels, state.transform)], crs=state.crs)
