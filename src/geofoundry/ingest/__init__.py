"""Bring your own data: scenes (GeoTIFF, JPEG2000, VRT, any raster GDAL reads) and one labels file (any vector
format GDAL reads, any CRS) → a dataset in the raw layout (docs/RAW_LAYOUT.md) that every stage takes."""

from .run import IngestOptions, ingest

__all__ = ["IngestOptions", "ingest"]
