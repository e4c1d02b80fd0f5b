"""Reproject shapely geometries (vectorised pyproj), optionally densified so curved edges stay close."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS, Transformer


def reproject(geom: shapely.Geometry, src_crs, dst_crs, densify_parts: int = 0) -> shapely.Geometry:
    """``geom`` from ``src_crs`` to ``dst_crs``; ``densify_parts`` > 0 adds vertices first (about that many)."""
    if CRS.from_user_input(src_crs) == CRS.from_user_input(dst_crs):
        return geom
    if densify_parts and not geom.is_empty:
        geom = shapely.segmentize(geom, max(geom.length / densify_parts, 1e-9))
    transformer = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
