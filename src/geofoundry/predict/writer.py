"""Probability GeoTIFF writer: strips into temporary tiled files, then one Cloud-Optimized GeoTIFF, renamed.

The full-resolution rows go to one temporary file, their mask to another, and each overview level's rows (built on
the model's device, :mod:`.pyramid`) to one more; three threads write them side by side (GDAL releases the GIL). A
VRT joins the mask to the rows and names the levels as their overviews, and the COG driver copies them
(``OVERVIEWS=FORCE_USE_EXISTING``) instead of reading the whole map back to average it.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from ..io.atomic import atomic_path
from .pyramid import overview_factors
from .sliding import Strip

PENDING = 2  # strips queued for the writing thread before ``write`` waits
LEVEL = 1  # zstd and deflate: several times faster than GDAL's defaults (9 and 6), files a few % larger
CONVERT_CACHE_MB = 64  # GDAL block cache for the conversion: each source block is read once, so more only adds RSS
COG_BLOCK = 512
TAGS = {"scale": "1/255", "content": "class probability"}


def _vrt(raw: Path, mask: Path, levels: list[Path], descriptions: list[str], width: int, height: int, crs,
         transform) -> str:
    """VRT XML of the bands of ``raw`` with band 1 of ``mask`` as their per-dataset mask, and ``levels`` (bands and
    internal mask) as the overviews of every band and of the mask."""
    def overviews(band: str) -> str:
        return "".join(f"<Overview><SourceFilename>{escape(str(p))}</SourceFilename><SourceBand>{band}</SourceBand>"
                       "</Overview>" for p in levels)

    def source(path: Path, band: str) -> str:
        return (f"<SimpleSource><SourceFilename>{escape(str(path))}</SourceFilename><SourceBand>{band}</SourceBand>"
                "</SimpleSource>")

    masks = (f"<MaskBand><VRTRasterBand dataType='Byte'>{source(mask, '1')}{overviews('mask,1')}</VRTRasterBand>"
             "</MaskBand>")
    bands = "".join(f"<VRTRasterBand dataType='Byte' band='{b}'><Description>{escape(d)}</Description>"
                    f"{source(raw, str(b))}{overviews(str(b))}</VRTRasterBand>" for b, d in enumerate(descriptions, 1))
    tags = "".join(f"<MDI key='{k}'>{escape(v)}</MDI>" for k, v in TAGS.items())
    return (f"<VRTDataset rasterXSize='{width}' rasterYSize='{height}'><SRS>{escape(crs.to_wkt())}</SRS>"
            f"<GeoTransform>{', '.join(map(repr, transform.to_gdal()))}</GeoTransform>"
            f"<Metadata>{tags}</Metadata>{masks}{bands}</VRTDataset>")


class ProbabilityWriter:
    """Context manager: ``write(strip)`` for the strips of :func:`.sliding.predict_region`, in order; on success
    the COG appears at ``path``, compressed with ``compress`` (a GDAL codec name). ``factors``: the overview levels
    the strips must carry ([] without overviews).

    Three threads write the rows, their mask and the overview levels; at most ``PENDING`` strips are queued.
    """

    def __init__(self, path: Path, crs, transform, width: int, height: int, class_names: list[str],
                 overviews: bool = True, compress: str = "zstd"):
        self.path, self.descriptions, self.compress = Path(path), [f"p({name})" for name in class_names], compress
        self.crs, self.transform, self.width, self.height = crs, transform, width, height
        self.factors = overview_factors(width, height, COG_BLOCK) if overviews else []

    def _profile(self, factor: int, count: int, **options) -> dict:
        width, height = -(-self.width // factor), -(-self.height // factor)
        return {"driver": "GTiff", "dtype": "uint8", "count": count, "crs": self.crs,
                "transform": self.transform * self.transform.scale(factor), "width": width, "height": height,
                "tiled": True, "blockxsize": 256, "blockysize": 256, "BIGTIFF": "IF_SAFER", **options}

    def __enter__(self) -> ProbabilityWriter:
        self._atomic = atomic_path(self.path)
        self._final = self._atomic.__enter__()
        bands = len(self.descriptions)
        self._paths = [self._final.with_suffix(f".x{f}.tif") for f in [1, *self.factors]]
        self._mask_path, self._vrt_path = self._final.with_suffix(".mask.tif"), self._final.with_suffix(".vrt")
        self._level_rows = [0] * len(self.factors)  # rows written so far, per overview level
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            self._files = [rasterio.open(p, "w", **self._profile(f, bands))
                           for p, f in zip(self._paths, [1, *self.factors])]
            # the mask is runs of 0 and 255: PackBits keeps the file small at memcpy speed
            self._mask = rasterio.open(self._mask_path, "w", **self._profile(1, 1, compress="packbits"))
        self._lanes = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{n}")
                       for n in ("rows", "mask", "levels")]
        self._pending: deque = deque()
        return self

    def write(self, strip: Strip) -> None:
        """Queue one strip (its full-resolution rows and mask, if any are wanted, and its rows of every level)."""
        while len(self._pending) >= PENDING:
            for f in self._pending.popleft():
                f.result()
        jobs = (self._write_rows, self._write_mask, self._write_levels)
        self._pending.append([lane.submit(job, strip) for lane, job in zip(self._lanes, jobs)])

    def _write_rows(self, strip: Strip) -> None:
        if strip.values is not None:
            self._files[0].write(strip.values, window=Window(0, strip.top, self.width, len(strip.wanted)))

    def _write_mask(self, strip: Strip) -> None:
        if strip.values is not None:
            self._mask.write(strip.wanted.view(np.uint8) * np.uint8(255), 1,
                             window=Window(0, strip.top, self.width, len(strip.wanted)))

    def _write_levels(self, strip: Strip) -> None:
        for ds, top, (values, valid) in zip(self._files[1:], self._level_rows, strip.levels):
            if len(valid):
                window = Window(0, top, ds.width, len(valid))
                ds.write(values, window=window)
                ds.write_mask(valid.view(np.uint8) * np.uint8(255), window=window)
        self._level_rows = [top + len(valid) for top, (_, valid) in zip(self._level_rows, strip.levels)]

    def __exit__(self, exc_type, exc, tb) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True)
        failed = next((f.exception() for fs in self._pending for f in fs if f.exception() is not None), None)
        try:
            for ds in [*self._files, self._mask]:
                ds.close()
            if exc_type is None and failed is None:
                self._convert()
        finally:
            for p in [*self._paths, self._mask_path, self._vrt_path]:
                p.unlink(missing_ok=True)
            if failed is not None and exc_type is None:
                self._atomic.__exit__(type(failed), failed, failed.__traceback__)
                raise failed
            self._atomic.__exit__(exc_type, exc, tb)

    def _convert(self) -> None:
        """The temporary files as one COG at the temporary final path."""
        self._vrt_path.write_text(_vrt(self._paths[0], self._mask_path, self._paths[1:], self.descriptions,
                                       self.width, self.height, self.crs, self.transform))
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True, GDAL_CACHEMAX=CONVERT_CACHE_MB * 2**20):
            rio_copy(self._vrt_path, self._final, driver="COG", compress=self.compress.upper(), level=LEVEL,
                     blocksize=COG_BLOCK, overviews="FORCE_USE_EXISTING" if self.factors else "NONE",
                     num_threads="ALL_CPUS")
