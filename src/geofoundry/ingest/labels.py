"""Labels in: one vector file in any format and CRS GDAL reads → class paths, then per scene the objects that touch
its valid area, as RFC 7946 GeoJSON in lon/lat."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyogrio.errors
import shapely

from ..config import check_class_path
from ..errors import GeofoundryError
from ..io.geometry import reproject

POLYGONAL = ("Polygon", "MultiPolygon")
LONLAT = "EPSG:4326"


def read_vector(path: Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """The polygons of a vector file (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, …), invalid ones repaired. Refused
    clearly: an unreadable file, several layers without ``layer``, no CRS, no polygon."""
    path = Path(path)
    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
        if layer is None and len(layers) > 1:
            raise GeofoundryError(f"{path}: has layers {layers}; choose one with --layer")
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError, ValueError) as e:
        raise GeofoundryError(f"{path}: cannot read it as a vector file ({' '.join(str(e).split())})") from None
    if gdf.crs is None:
        raise GeofoundryError(f"{path}: has no CRS (a Shapefile without its .prj?), so it cannot be placed on the "
                              f"scenes; declare it, e.g. ogr2ogr -a_srs EPSG:32636 fixed.gpkg {path}")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    polygonal = gdf.geometry.geom_type.isin(POLYGONAL)
    if not polygonal.any():
        raise GeofoundryError(f"{path}: no polygon among its {len(gdf)} features; labels are object outlines")
    if not polygonal.all():
        kinds = sorted(set(gdf.geometry.geom_type[~polygonal]))
        warnings.warn(f"{path}: {int((~polygonal).sum())} {'/'.join(kinds)} feature(s) are not outlines; "
                      "left out", stacklevel=2)
    gdf = gdf[polygonal].reset_index(drop=True)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        warnings.warn(f"{path}: repaired {int(invalid.sum())} invalid polygon(s) with make_valid", stacklevel=2)
        fixed = shapely.make_valid(gdf.geometry.values[invalid.values])
        gdf.loc[invalid, "geometry"] = [shapely.union_all([p for p in shapely.get_parts(g)
                                                           if p.geom_type in POLYGONAL]) for g in fixed]
    return gdf[~gdf.geometry.is_empty].reset_index(drop=True)


def with_classes(gdf: gpd.GeoDataFrame, path: Path, column: str | None, fixed: str | None) -> gpd.GeoDataFrame:
    """``gdf`` with ``class_path`` (1–4 levels, lower case, spaces as ``_``) and ``class`` (its last level): from
    ``fixed`` (--class) for every feature, else from ``column`` (--class-column), else from a ``class_path`` or
    ``class`` column."""
    if fixed is None:
        column = column or next((c for c in ("class_path", "class") if c in gdf.columns), None)
        if column is None or column not in gdf.columns:
            what = f"no column {column!r}" if column else "no class_path or class column"
            raise GeofoundryError(f"{path}: {what}; name the class column with --class-column (one of "
                                  f"{[c for c in gdf.columns if c != 'geometry']}) or give every label --class NAME")
        missing = gdf[column].isna()
        if missing.any():
            raise GeofoundryError(f"{path}: {int(missing.sum())} feature(s) have no value in column {column!r}")
        values = gdf[column].astype(str)
    else:
        values = np.full(len(gdf), fixed, dtype=object)
    try:
        paths = {v: check_class_path("_".join(str(v).lower().split())) for v in set(values)}
    except ValueError as e:
        raise GeofoundryError(f"{path}: {e}") from None
    out = gdf.drop(columns=[c for c in ("class", "class_path") if c in gdf.columns])
    out.insert(0, "class_path", [paths[v] for v in values])
    out.insert(0, "class", out["class_path"].str.rsplit("/", n=1).str[-1])
    if "id" not in out.columns:
        out.insert(2, "id", np.arange(len(out)))
    return out


def touching(gdf: gpd.GeoDataFrame, footprint: shapely.Geometry, footprint_crs) -> np.ndarray:
    """Indexes of the features of ``gdf`` that overlap ``footprint`` (a scene's valid area, in its own CRS)."""
    area = reproject(footprint, footprint_crs, gdf.crs, densify_parts=64)
    return np.unique(gdf.sindex.query(area, predicate="intersects"))


def write_geojson(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """RFC 7946 GeoJSON in lon/lat (no ``crs`` member); an empty FeatureCollection when there is nothing."""
    if gdf.empty:
        path.write_text(json.dumps({"type": "FeatureCollection", "features": []}) + "\n")
        return
    gdf.to_crs(LONLAT).to_file(path, driver="GeoJSON", engine="pyogrio", RFC7946="YES")
