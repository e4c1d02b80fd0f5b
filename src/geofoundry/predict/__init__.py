"""Predict whole scenes by streaming, blended sliding windows into probability GeoTIFFs."""

try:
    from .run import run
except ModuleNotFoundError as e:  # a machine with torch but not the geo stack: the sliding window, the tile model
    if (e.name or "").split(".")[0] not in ("rasterio", "shapely", "pyproj", "affine"):  # functions still load
        raise

__all__ = ["run"]
