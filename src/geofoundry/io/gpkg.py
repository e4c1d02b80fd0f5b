"""GeoPackages written atomically and byte for byte the same for the same features, so that DVC sees no change
when a stage re-runs on the same input."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import pyogrio
import pyogrio.errors

from .atomic import atomic_path

_CONFIG = threading.Lock()  # GDAL config options are process-wide


def last_change() -> str:
    """The ``gpkg_contents.last_change`` stamp GDAL writes: ``SOURCE_DATE_EPOCH`` when set (the reproducible-builds
    convention), else 1970-01-01: the file's content, not the time of writing, decides its bytes."""
    when = datetime.fromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", "0")), timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def write_gpkg(frame: gpd.GeoDataFrame, path: Path, layer: str, **options) -> None:
    """Write ``frame`` as ``layer`` of a new GeoPackage at ``path`` (atomically); ``options`` go to pyogrio."""
    with atomic_path(path) as tmp, _CONFIG:
        before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": last_change()})
        try:
            pyogrio.write_dataframe(frame, tmp, layer=layer, driver="GPKG", **options)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as e:
            # as an OSError without errno: atomic_path tells a full device from the free space left
            raise OSError(None, f"cannot write the GeoPackage ({' '.join(str(e).split())[:300]})", str(path)) from e
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": before})
