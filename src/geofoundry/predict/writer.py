"""Probability GeoTIFF writer: strips into temporary tiled files, then one Cloud-Optimized GeoTIFF, renamed.

The full-resolution rows go to one temporary file, their 1-bit mask to another, and each overview level's rows
(built on the model's device, :mod:`.pyramid`) with their mask to one more; three threads write them side by side
(GDAL releases the GIL and compresses on its own threads). The files are tiled in the COG's blocks and codec, so the
COG is their tiles copied behind one header (:func:`..io.cog_layout.write_cog`): nothing is decoded or encoded
again after the last strip. Rows without any valid pixel are not written; blocks that hold none stay sparse (no
tile, read as 0 and masked), so stretches of nodata cost neither compression nor bytes.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..io.atomic import atomic_path
from ..io.cog_layout import Ifd, read_ifds, write_cog
from .pyramid import overview_factors
from .sliding import Strip

THREADS = str(min(4, os.cpu_count() or 1))  # GDAL compression threads per file
PENDING = 2  # strips queued for the writing thread before ``write`` waits
LEVEL = 1  # zstd and deflate: several times faster than GDAL's defaults (9 and 6), files a few % larger
LEVEL_OPTION = {"zstd": "zstd_level", "deflate": "zlevel"}
COG_BLOCK = 512
TAGS = {"scale": "1/255", "content": "class probability"}


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
                "tiled": True, "blockxsize": COG_BLOCK, "blockysize": COG_BLOCK, "BIGTIFF": "IF_SAFER",
                "compress": self.compress, LEVEL_OPTION[self.compress]: LEVEL, "num_threads": THREADS,
                "photometric": "minisblack",  # probabilities, even three bands of them, are not RGB
                "sparse_ok": True, **options}  # blocks never written (no valid pixel) get no tile at all

    def __enter__(self) -> ProbabilityWriter:
        self._atomic = atomic_path(self.path)
        self._final = self._atomic.__enter__()
        bands = len(self.descriptions)
        self._paths = [self._final.with_suffix(f".x{f}.tif") for f in [1, *self.factors]]
        self._mask_path = self._final.with_suffix(".mask.tif")
        self._level_rows = [0] * len(self.factors)  # rows written so far, per overview level
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            self._files = [rasterio.open(p, "w", **self._profile(f, bands))
                           for p, f in zip(self._paths, [1, *self.factors])]
            self._files[0].descriptions = self.descriptions
            self._files[0].update_tags(**TAGS)
            # the mask is 1 bit per pixel and DEFLATE-compressed, as GDAL's internal masks are
            self._mask = rasterio.open(self._mask_path, "w",
                                       **self._profile(1, 1, compress="deflate", zlevel=LEVEL, nbits=1))
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
        if strip.rows.values is not None:
            self._files[0].write(strip.rows.values, window=Window(0, strip.top, self.width, strip.rows.n))

    def _write_mask(self, strip: Strip) -> None:
        if strip.rows.valid is not None:
            self._mask.write(strip.rows.valid.view(np.uint8), 1, window=Window(0, strip.top, self.width, strip.rows.n))

    def _write_levels(self, strip: Strip) -> None:
        for ds, top, rows in zip(self._files[1:], self._level_rows, strip.levels):
            if rows.values is not None and rows.n:
                window = Window(0, top, ds.width, rows.n)
                ds.write(rows.values, window=window)
                ds.write_mask(rows.valid.view(np.uint8) * np.uint8(255), window=window)
        self._level_rows = [top + rows.n for top, rows in zip(self._level_rows, strip.levels)]

    def __exit__(self, exc_type, exc, tb) -> None:
        closed = [lane.submit(_close, files)  # each lane closes its own files, after its last write
                  for lane, files in zip(self._lanes, ([self._files[0]], [self._mask], self._files[1:]))]
        for lane in self._lanes:
            lane.shutdown(wait=True)
        failed = next((f.exception() for fs in [*self._pending, closed] for f in fs if f.exception() is not None), None)
        try:
            if exc_type is None and failed is None:
                self._assemble()
        finally:
            for p in [*self._paths, self._mask_path]:
                p.unlink(missing_ok=True)
            if failed is not None and exc_type is None:
                self._atomic.__exit__(type(failed), failed, failed.__traceback__)
                raise failed
            self._atomic.__exit__(exc_type, exc, tb)

    def _assemble(self) -> None:
        """The temporary files' tiles as one COG at the temporary final path."""
        full, mask = read_ifds(self._paths[0])[0], read_ifds(self._mask_path)[0]
        write_cog([(full, mask), *(self._level(p) for p in self._paths[1:])], self._final)

    @staticmethod
    def _level(path: Path) -> tuple[Ifd, Ifd]:
        """An overview level's image and internal mask IFDs."""
        image, mask = read_ifds(path)
        return image, mask


def _close(files: list) -> None:
    """Close every file, even when one fails (then raise its error)."""
    with contextlib.ExitStack() as stack:
        for ds in files:
            stack.callback(ds.close)
