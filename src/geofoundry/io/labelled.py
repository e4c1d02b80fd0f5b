"""Labelled area: the ground where a scene's labels are complete (``scenes.csv`` column ``labelled_area``).

A scene without one is labelled wherever it has valid pixels. Valid pixels outside it are unlabelled, not negatives:
training and evaluation leave them out. The file is a GeoJSON of ``Polygon``/``MultiPolygon`` features in EPSG:4326
(RFC 7946); active learning (``geofoundry al import``) grows it as new ground is labelled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio.features import geometry_mask

from ..errors import GeofoundryError
from .geometry import reproject

COLUMN = "labelled_area"  # in scenes.csv: a path relative to the dataset root, or empty (labelled everywhere)
PATH_COLUMN = "labelled_area_path"  # added by the raw-layout reader: the absolute path, or empty


def read_area(path: str | Path) -> shapely.Geometry:
    """The union of a labelled-area GeoJSON's polygons (EPSG:4326); an empty geometry when it has none."""
    path = Path(path)
    try:
        fc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GeofoundryError(f"{path}: cannot read the labelled area ({e})") from None
    geoms = []
    for i, feature in enumerate(fc.get("features", [])):
        geom = shapely.geometry.shape(feature.get("geometry") or {"type": "Polygon", "coordinates": []})
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise GeofoundryError(f"{path}: feature {i} is a {geom.geom_type}; a labelled area is made of polygons")
        geoms.append(shapely.make_valid(geom) if not geom.is_valid else geom)
    return shapely.union_all(geoms) if geoms else shapely.Polygon()


def area_geojson(geom: shapely.Geometry) -> str:
    """GeoJSON text of a labelled area ``geom`` (EPSG:4326): one feature, RFC 7946."""
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(geom)}
    return json.dumps({"type": "FeatureCollection", "features": [feature]}) + "\n"


def scene_area(row: pd.Series, crs) -> shapely.Geometry | None:
    """The scene's labelled area in ``crs``, or None when the scene is labelled wherever it has valid pixels."""
    path = str(row.get(PATH_COLUMN, "") or "")
    if not path:
        return None
    return reproject(read_area(path), "EPSG:4326", crs, densify_parts=256)


def area_mask(area: shapely.Geometry | None, transform: Affine, shape: tuple[int, int]) -> np.ndarray | None:
    """True on the pixels (centres) of a grid inside ``area``; None when ``area`` is None (labelled everywhere)."""
    if area is None:
        return None
    if area.is_empty:
        return np.zeros(shape, dtype=bool)
    return geometry_mask([area], out_shape=shape, transform=transform, invert=True)
