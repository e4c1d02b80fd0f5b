"""Areas given as WKT (EPSG:4326 lon/lat) or as a vector file path: geofences for select, predict, postprocess."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import shapely


@lru_cache(maxsize=16)
def load_area(spec: str) -> tuple[shapely.Geometry, str]:
    """(geometry, CRS) of a WKT string in EPSG:4326 or of a vector file (all its features unioned)."""
    try:
        return shapely.from_wkt(spec), "EPSG:4326"
    except shapely.errors.GEOSException:
        pass
    if not Path(spec).is_file():
        raise ValueError(f"{spec!r} is neither WKT (EPSG:4326) nor an existing vector file")
    frame = gpd.read_file(spec)
    if frame.crs is None:
        raise ValueError(f"{spec}: the file has no CRS")
    return frame.geometry.union_all(), frame.crs.to_string()


def area_in(spec: str, crs) -> shapely.Geometry:
    """The area of ``spec`` in ``crs``."""
    geom, source_crs = load_area(spec)
    return gpd.GeoSeries([geom], crs=source_crs).to_crs(crs).iloc[0]
