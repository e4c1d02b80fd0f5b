"""Label GeoJSON checked feature by feature: a feature that cannot be an object's footprint in lon/lat, or lacks
its class, is refused with the file and the features named, never trained on; a ``crs`` member that names another
CRS is honoured (reprojected, with a warning)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..errors import GeofoundryError

LONLAT = CRS.from_epsg(4326)
POLYGONAL = ("Polygon", "MultiPolygon")
REQUIRED = ("class", "class_path")  # properties every feature needs
SHOWN = 5  # features named in a message
CONTRACT = ("labels are Polygon or MultiPolygon features in EPSG:4326 lon/lat with the text properties 'class' and "
            "'class_path' (RAW_LAYOUT.md)")


def feature_name(feature: Any, index: int) -> str:
    """``feature 3 (id 'way/1')``: its index in the file and its id (the GeoJSON ``id``, else an ``id`` property)."""
    fid = None
    if isinstance(feature, dict):
        props = feature.get("properties")
        fid = feature.get("id", props.get("id") if isinstance(props, dict) else None)
    return f"feature {index}" + (f" (id {fid!r})" if fid is not None else "")


def _listed(items: list[str]) -> str:
    return ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _geometry(feature: Any) -> tuple[shapely.Geometry | None, str | None]:
    """The feature's geometry, or why it cannot be a footprint."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, "is not a GeoJSON Feature"
    geometry = feature.get("geometry")
    if geometry is None:
        return None, "has no geometry (null)"
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in POLYGONAL:
        return None, f"is a {kind}" if isinstance(kind, str) else "has a malformed geometry"
    try:
        geom = shapely.geometry.shape(geometry)
        coords = shapely.get_coordinates(geom)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, shapely.errors.ShapelyError):
        return None, "has malformed coordinates"
    if geom.is_empty:
        return None, "has an empty geometry"
    if not all(math.isfinite(v) for v in coords.ravel()):
        return None, "has NaN or infinite coordinates"
    return geom, None


def _declared_crs(path: Path, fc: dict) -> CRS:
    """The CRS of a ``crs`` member (GeoJSON 2008; GDAL writes one for other CRSs), else lon/lat."""
    member = fc.get("crs")
    if member is None:
        return LONLAT
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    try:
        crs = CRS.from_user_input(name)
    except (CRSError, TypeError):
        raise GeofoundryError(f"{path}: its 'crs' member {member!r} names no CRS that PROJ knows; {CONTRACT}") from None
    return LONLAT if crs.equals(LONLAT, ignore_axis_order=True) else crs


def label_features(path: Path, fc: Any) -> gpd.GeoDataFrame:
    """The features of the parsed GeoJSON ``fc`` (properties as columns) in EPSG:4326, after checking every one."""
    features = fc.get("features") if isinstance(fc, dict) and fc.get("type") == "FeatureCollection" else None
    if not isinstance(features, list):
        raise GeofoundryError(f"{path}: not a GeoJSON FeatureCollection; {CONTRACT}")
    crs = _declared_crs(path, fc)
    rows, refused = [], []
    for i, feature in enumerate(features):
        geom, problem = _geometry(feature)
        properties = feature.get("properties") if isinstance(feature, dict) else None
        properties = properties if isinstance(properties, dict) else {}
        lacking = [k for k in REQUIRED if not isinstance(properties.get(k), str) or not properties[k].strip()]
        if lacking and not problem:
            problem = f"lacks the text propert{'y' if len(lacking) == 1 else 'ies'} {', '.join(map(repr, lacking))}"
        if problem:
            refused.append(f"{feature_name(feature, i)} {problem}")
            continue
        rows.append({**{k: v for k, v in properties.items() if k != "geometry"}, "geometry": geom})
    if refused:
        raise GeofoundryError(f"{path}: {len(refused)} of {len(features)} features cannot be labels: "
                              f"{_listed(refused)}; {CONTRACT}: fix or remove them")
    if not rows:
        return gpd.GeoDataFrame(geometry=[], crs=LONLAT)
    gdf = gpd.GeoDataFrame(rows, crs=crs)  # columns as GeoPandas reads features: geometry first
    gdf = gdf[["geometry", *(c for c in gdf.columns if c != "geometry")]]
    if crs != LONLAT:
        warnings.warn(f"{path}: features are in {crs.to_string()} (its 'crs' member); reprojected to EPSG:4326",
                      stacklevel=3)
        gdf = gdf.to_crs(LONLAT)
    if len(gdf):
        x0, y0, x1, y1 = gdf.total_bounds
        if x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
            b = gdf.geometry.bounds
            first = int(((b.minx < -180) | (b.maxx > 180) | (b.miny < -90) | (b.maxy > 90)).to_numpy().argmax())
            raise GeofoundryError(
                f"{path}: coordinates are not longitude/latitude (x {x0:.6g} to {x1:.6g}, y {y0:.6g} to {y1:.6g}; "
                f"first: {feature_name(features[first], first)}), so the labels are in another CRS; reproject them to "
                "EPSG:4326 (e.g. ogr2ogr -s_srs <their CRS> -t_srs EPSG:4326)")
    return gdf
