"""What a delivered model needs to know about a client's scene: its band names and its ground sample distance."""

from __future__ import annotations

import warnings
from pathlib import Path

import rasterio

from ..errors import GeofoundryError
from ..io.read_errors import raster_errors
from ..io.units import ground_step_m


def scene_gsd_m(ds) -> float:
    """Ground sample distance (m) at the scene centre from its transform and CRS: geodesic width and height of the
    centre pixel, geometric mean. Works alike for projected, Web Mercator and lon/lat scenes."""
    if ds.crs is None or ds.transform.is_identity:
        raise GeofoundryError(f"{ds.name}: no CRS or geotransform, so its ground sample distance is unknown")
    x, y = ds.transform @ (ds.width / 2, ds.height / 2)
    return ground_step_m(ds.crs, x, y, ds.transform.a, ds.transform.e)


def scene_bands(path: Path, wanted: list[str], given: list[str] | None = None) -> list[str]:
    """Names of the scene's bands: ``given`` (--bands), else GDAL band descriptions, else the model's own order
    when the band count matches (with a warning). Fails clearly when the model's bands are not all there."""
    with raster_errors(path), rasterio.open(path) as ds:
        count, descriptions = ds.count, list(ds.descriptions)
    if given:
        names, source = [b.strip().lower() for b in given], "--bands"
        if len(names) != count:
            raise GeofoundryError(f"{path}: --bands names {len(names)} bands ({names}) but the scene has {count}")
    elif all(descriptions) and len(set(descriptions)) == count:
        names, source = [d.strip().lower() for d in descriptions], "band descriptions"
    elif count == len(wanted):
        warnings.warn(f"{path}: bands have no names; assuming the model's order {wanted} (name them with --bands)",
                      stacklevel=2)
        return list(wanted)
    else:
        raise GeofoundryError(f"{path}: {count} unnamed bands, the model needs {len(wanted)} ({wanted}); "
                              f"name the scene's bands with --bands {','.join(['NAME'] * count)}")
    missing = [b for b in wanted if b not in names]
    if missing:
        raise GeofoundryError(f"{path}: bands {names} (from {source}) lack {missing}; the model needs {wanted}")
    return names
