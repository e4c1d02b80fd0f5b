"""Geographic blocks: cells of one global EPSG:3857 grid, shared by every scene that covers them.

Because a cell is defined by the grid and not by a scene, the z19, z20 and z21 versions of a site (or any scenes
over the same ground) fall into the same cells, and a split by cell can never put the same ground in two splits.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

GRID_CRS = "EPSG:3857"


def cell_polygon(ix: int, iy: int, size: float) -> shapely.Polygon:
    return shapely.box(ix * size, iy * size, (ix + 1) * size, (iy + 1) * size)


def scene_cells(footprint_3857: shapely.Geometry, size: float) -> gpd.GeoDataFrame:
    """Grid cells that hold valid pixels of a footprint, with the valid ground area in each (m²)."""
    if footprint_3857.is_empty:
        return gpd.GeoDataFrame({"ix": [], "iy": [], "valid_area_m2": []}, geometry=[], crs=GRID_CRS)
    x0, y0, x1, y1 = footprint_3857.bounds
    rows = []
    for ix in range(math.floor(x0 / size), math.ceil(x1 / size)):
        for iy in range(math.floor(y0 / size), math.ceil(y1 / size)):
            cell = cell_polygon(ix, iy, size)
            inter = footprint_3857.intersection(cell)
            if inter.area > 0:
                rows.append((ix, iy, inter.area * mercator_area_scale(cell.centroid.y), cell))
    ix, iy, area, geom = zip(*rows) if rows else ([], [], [], [])
    return gpd.GeoDataFrame({"ix": ix, "iy": iy, "valid_area_m2": area}, geometry=list(geom), crs=GRID_CRS)


def mercator_area_scale(y: float) -> float:
    """Ground m² per EPSG:3857 unit² at northing ``y`` (Web Mercator inflates areas by 1/cos²(lat))."""
    lat = math.degrees(2 * math.atan(math.exp(y / 6378137.0)) - math.pi / 2)
    return math.cos(math.radians(lat)) ** 2


def block_id(ix: int, iy: int) -> str:
    return f"{ix}_{iy}"


def count_objects(cells: gpd.GeoDataFrame, labels_3857: gpd.GeoDataFrame, size: float) -> np.ndarray:
    """Objects per cell, each object counted once in the cell of its representative point."""
    if labels_3857.empty or cells.empty:
        return np.zeros(len(cells), dtype=int)
    pts = labels_3857.geometry.representative_point()
    keys = pd.Series([block_id(math.floor(p.x / size), math.floor(p.y / size)) for p in pts]).value_counts()
    return np.array([int(keys.get(block_id(ix, iy), 0)) for ix, iy in zip(cells["ix"], cells["iy"])])
