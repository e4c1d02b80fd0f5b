"""Metres, whatever the CRS: the one place that decides how lengths and areas are measured (postprocess, evaluate).

- A CRS projected in metres (UTM, national grids) is used in its own units.
- Other projected CRSs (Web/World Mercator, whose scale grows as 1/cos(latitude); feet) are scaled uniformly about
  the data centre by the ground metres per CRS unit there, so shapes and angles in the file's CRS are kept exactly.
- A geographic CRS (EPSG:4326) is measured in the local UTM zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer


def _units_are_metres(crs: CRS) -> bool:
    method = crs.coordinate_operation.method_name.lower() if crs.coordinate_operation else ""
    mercator = "mercator" in method and "transverse" not in method
    return crs.is_projected and crs.axis_info[0].unit_name == "metre" and not mercator


def ground_step_m(crs, x: float, y: float, step_x: float = 1.0, step_y: float = 1.0) -> float:
    """Ground metres of a (step_x, step_y) step at (x, y): geometric mean of the geodesic lengths along x and y."""
    crs = CRS.from_user_input(crs)
    lon, lat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(
        [x, x + step_x, x], [y, y, y + step_y])
    geod = crs.get_geod()
    dx = geod.inv(lon[0], lat[0], lon[1], lat[1])[2]
    dy = geod.inv(lon[0], lat[0], lon[2], lat[2])[2]
    return float(np.sqrt(dx * dy))


@dataclass(frozen=True)
class Metric:
    """Geometries in a frame whose unit is the ground metre; :meth:`back` returns results to the source CRS."""

    geoms: gpd.GeoSeries
    crs: CRS
    origin: np.ndarray | None = None  # set for a scaled frame: metres = (xy - origin) * scale
    scale: float = 1.0

    def back(self, geoms: gpd.GeoSeries) -> gpd.GeoSeries:
        if self.origin is not None:
            values = shapely.transform(geoms.to_numpy(), lambda xy: xy / self.scale + self.origin)
            return gpd.GeoSeries(values, index=geoms.index, crs=self.crs)
        return geoms if geoms.crs == self.crs else geoms.to_crs(self.crs)


def to_metres(geoms: gpd.GeoSeries) -> Metric:
    """``geoms`` in metres (see the module docstring for how each kind of CRS is handled)."""
    crs = CRS.from_user_input(geoms.crs)
    if geoms.empty or _units_are_metres(crs):
        return Metric(geoms, crs)
    if crs.is_geographic:
        return Metric(geoms.to_crs(geoms.estimate_utm_crs()), crs)
    x0, y0, x1, y1 = geoms.total_bounds
    origin = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    scale = ground_step_m(crs, *origin)
    values = shapely.transform(geoms.to_numpy(), lambda xy: (xy - origin) * scale)
    return Metric(gpd.GeoSeries(values, index=geoms.index), crs, origin, scale)


def map_in_metres(geoms: gpd.GeoSeries, fn: Callable[[gpd.GeoSeries], gpd.GeoSeries]) -> gpd.GeoSeries:
    """Apply ``fn`` to ``geoms`` expressed in metres and return the result in the original CRS."""
    metric = to_metres(geoms)
    return metric.back(fn(metric.geoms))


def area_m2(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    return to_metres(geoms).geoms.area


def pixel_area_m2(transform: Affine, crs, shape: tuple[int, int]) -> float:
    """Ground area of one pixel at the centre of a raster of ``shape`` on ``transform``/``crs``."""
    row, col = shape[0] // 2, shape[1] // 2
    corners = [transform @ xy for xy in ((col, row), (col + 1, row), (col + 1, row + 1), (col, row + 1))]
    return float(area_m2(gpd.GeoSeries([shapely.Polygon(corners)], crs=crs)).iloc[0])
