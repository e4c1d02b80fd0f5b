"""Labelled ground per block: the part of its valid area where the scene's labels are complete."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from ..io.grid import mercator_area_scale


def labelled_area_m2(cells: gpd.GeoDataFrame, footprint: shapely.Geometry,
                     area: shapely.Geometry | None) -> np.ndarray:
    """Ground m² of each cell's valid area inside the scene's labelled ``area`` (EPSG:3857; None: all of it)."""
    valid = cells["valid_area_m2"].to_numpy(dtype=float)
    if area is None or cells.empty:
        return valid
    inside = shapely.intersection(shapely.intersection(cells.geometry.values, footprint), area)
    scale = np.array([mercator_area_scale(c.y) for c in shapely.centroid(cells.geometry.values)])
    return np.minimum(shapely.area(inside) * scale, valid)
