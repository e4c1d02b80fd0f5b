"""Geofence of the selection: include/exclude areas (GeoJSON file or WKT, EPSG:4326) that clip the blocks."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from ..config import GeofenceConfig
from ..errors import GeofoundryError
from ..io.areas import area_in
from ..io.geometry import reproject
from ..io.grid import GRID_CRS, mercator_area_scale


def parse_area(value: str, key: str) -> shapely.Geometry:
    """A vector file (any CRS) or a WKT string in EPSG:4326 → one valid geometry in EPSG:4326; errors name ``key``."""
    text = value.strip()
    try:
        geom = shapely.make_valid(area_in(text, "EPSG:4326"))
    except Exception as e:  # noqa: BLE001 - any parse error becomes a message naming the key
        raise GeofoundryError(f"{key}: cannot read the area {text[:80]!r} ({e})") from None
    if geom.is_empty or geom.area == 0:
        raise GeofoundryError(f"{key}: the area {text[:80]!r} is empty or has no surface (lon/lat polygons needed)")
    return geom


def fence_3857(cfg: GeofenceConfig) -> shapely.Geometry | None:
    """The allowed ground in EPSG:3857 (include minus exclude), or None when there is no geofence."""
    if cfg.include is None and cfg.exclude is None:
        return None
    world = shapely.box(-180, -85.06, 180, 85.06)
    area = parse_area(cfg.include, "select.geofence.include") if cfg.include else world
    if cfg.exclude:
        area = area.difference(parse_area(cfg.exclude, "select.geofence.exclude"))
    return reproject(area.intersection(world), "EPSG:4326", GRID_CRS, densify_parts=256)


def clip_cells(cells: gpd.GeoDataFrame, footprints, fence: shapely.Geometry | None) -> gpd.GeoDataFrame:
    """Cells clipped to the fence, with their valid area recomputed (``footprints``: each row's scene footprint);
    cells inside it are kept as they are, cells left without valid ground are dropped."""
    if fence is None or cells.empty:
        return cells
    shapely.prepare(fence)
    geoms = np.asarray(cells.geometry.values)
    x0, y0, x1, y1 = fence.bounds
    box = shapely.bounds(geoms)
    near = np.flatnonzero((box[:, 0] <= x1) & (box[:, 2] >= x0) & (box[:, 1] <= y1) & (box[:, 3] >= y0))
    near = near[shapely.intersects(geoms[near], fence)]
    covered = shapely.covered_by(geoms[near], fence)
    inside, edge = np.zeros(len(geoms), bool), np.zeros(len(geoms), bool)
    inside[near[covered]], edge[near[~covered]] = True, True
    out = cells[inside | edge].copy()
    edge, footprints = edge[inside | edge], np.asarray(footprints, dtype=object)[inside | edge]
    if edge.any():
        cut = shapely.intersection(out.geometry.values[edge], fence)
        valid = shapely.intersection(cut, footprints[edge])
        scale = [mercator_area_scale(c.y) for c in shapely.centroid(out.geometry.values[edge])]
        out.loc[edge, "valid_area_m2"] = shapely.area(valid) * scale
        out.loc[edge, "geometry"] = cut
    return out[out["valid_area_m2"] > 0].reset_index(drop=True)
