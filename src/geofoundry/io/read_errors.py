"""Scenes that GDAL cannot read (not a TIFF, truncated, a corrupt block anywhere): one error that names the file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from ..errors import GeofoundryError

RASTER_ERRORS = (RasterioError, CPLE_BaseError)


@contextlib.contextmanager
def raster_errors(path) -> Iterator[None]:
    """Turn GDAL's failures to open or read ``path`` in the block into a :class:`GeofoundryError` naming it."""
    try:
        yield
    except RASTER_ERRORS as e:
        detail = e.__cause__ or e  # rasterio's "Read failed" wraps GDAL's message, which says which block
        raise GeofoundryError(f"{path}: cannot read the image ({detail}); is the file corrupt or truncated, or not "
                              "a GeoTIFF?") from None
