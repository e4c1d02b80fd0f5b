"""Probability GeoTIFF writer: strips cut into compressed tiles as they come, then one Cloud-Optimized GeoTIFF.

Each level of the map (the full resolution and every overview level, built on the model's device, :mod:`.pyramid`)
is cut into compressed tiles as its rows arrive (:mod:`.tiles`): one thread gathers the full resolution, one the
overview levels, and a pool of threads compresses each block row once complete. GDAL writes the map's tags
(georeferencing, band descriptions, metadata, codec) into an empty template GeoTIFF and its mask's into another;
every level takes them with its own size, so the COG is those tags and the tiles copied behind one header
(:func:`..io.cog_layout.write_cog`): nothing is decoded or encoded again, and closing only compresses the last
block rows. Rows without any valid pixel are not written: tiles that hold none are sparse (no bytes, read as 0
and masked), so stretches of nodata cost neither compression nor bytes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from pathlib import Path

import rasterio

from ..config import Codec
from ..io.atomic import atomic_path
from ..io.signals import ThreadPool, deferred
from ..io.tiff import read_ifds
from .cog_layout import write_cog
from .pyramid import overview_factors
from .sliding import Strip
from .tiles import LevelTiles, encoder

THREADS = min(8, os.cpu_count() or 1)  # tile compression
PENDING = 2  # strips queued for the writing threads before ``write`` waits
LEVEL = 1  # zstd and deflate: much faster than GDAL's defaults (9 and 6), for slightly larger files
LEVEL_OPTION: dict[Codec, str] = {"zstd": "zstd_level", "deflate": "zlevel"}
COG_BLOCK = 512
TAGS = {"scale": "1/255", "content": "class probability"}
SCALE = 1 / 255  # stored uint8 value v means p = v / 255


class ProbabilityWriter:
    """Context manager: ``write(strip)`` for the strips of :func:`.sliding.predict_region`, in order; on success
    the COG appears at ``path``, compressed with ``compress`` (a GDAL codec name). ``factors``: the overview levels
    the strips must carry ([] without overviews).

    Two threads gather the full resolution and the overview levels; at most ``PENDING`` strips are queued.
    """

    def __init__(self, path: Path, crs, transform, width: int, height: int, class_names: list[str],
                 overviews: bool = True, compress: Codec = "zstd"):
        self.path, self.descriptions, self.compress = Path(path), [f"p({name})" for name in class_names], compress
        self.crs, self.transform, self.width, self.height = crs, transform, width, height
        self.factors = overview_factors(width, height, COG_BLOCK) if overviews else []

    def _profile(self, count: int, **options) -> dict:
        return {"driver": "GTiff", "dtype": "uint8", "count": count, "crs": self.crs, "transform": self.transform,
                "width": self.width, "height": self.height, "tiled": True, "blockxsize": COG_BLOCK,
                "blockysize": COG_BLOCK, "compress": self.compress, LEVEL_OPTION[self.compress]: LEVEL,
                "photometric": "minisblack",  # probabilities are not RGB
                "sparse_ok": True, **options}  # a template: no tile is ever written into it

    def __enter__(self) -> ProbabilityWriter:
        self._atomic = atomic_path(self.path)
        self._final = self._atomic.__enter__()
        try:
            with deferred():  # a signal waits until __exit__ knows every temporary file made here
                self._open()
        except BaseException:
            self.__exit__(*sys.exc_info())  # removes the tile files opened so far
            raise
        return self

    def _open(self) -> None:
        """The threads, then each level's tile file (``_tiles`` grows as they open: ``__exit__`` removes those)."""
        self._templates = (self._final.with_suffix(".template.tif"), self._final.with_suffix(".mask.tif"))
        self._templates_made = None  # see _start_templates
        self._pending: deque = deque()
        self._pool = ThreadPool(max_workers=THREADS, thread_name_prefix="compress")
        self._lanes = [ThreadPool(max_workers=1, thread_name_prefix=f"write-{n}") for n in ("full", "levels")]
        self._tiles: list[LevelTiles] = []
        encode, encode_mask = encoder(self.compress, LEVEL), encoder("deflate", LEVEL)
        for f in [1, *self.factors]:
            self._tiles.append(LevelTiles(self._final.with_suffix(f".tiles{f}"), len(self.descriptions),
                                          -(-self.width // f), -(-self.height // f), COG_BLOCK, encode, encode_mask,
                                          self._pool))

    def _start_templates(self) -> None:
        """Have the templates made on the pool, once. They are needed only at the end, so not before the first write:
        at the start, GDAL making them (holding the GIL) would hold up the threads that start reading."""
        if self._templates_made is None:
            self._templates_made = self._pool.submit(self._make_templates, len(self.descriptions))

    def _make_templates(self, bands: int) -> None:
        """GDAL's empty GeoTIFFs whose tags the COG's images and masks take."""
        image, mask = self._templates
        with rasterio.open(image, "w", **self._profile(bands)) as ds:
            ds.descriptions = self.descriptions
            ds.scales, ds.offsets = [SCALE] * bands, [0.0] * bands  # GIS software then shows p in 0..1
            ds.update_tags(**TAGS)
        # masks are 1 bit per pixel and DEFLATE-compressed, as GDAL's internal masks are
        rasterio.open(mask, "w", **self._profile(1, compress="deflate", zlevel=LEVEL, nbits=1)).close()

    def write(self, strip: Strip) -> None:
        """Queue one strip (its full-resolution rows and mask, if any are wanted, and its rows of every level)."""
        if strip.rows.values is None and all(rows.values is None for rows in strip.levels):
            return  # nothing valid: those tiles stay sparse
        self._start_templates()
        while len(self._pending) >= PENDING:
            for f in self._pending.popleft():
                f.result()
        jobs = (self._write_full, self._write_levels)
        self._pending.append([lane.submit(job, strip) for lane, job in zip(self._lanes, jobs)])

    def _write_full(self, strip: Strip) -> None:
        if strip.rows.values is not None:
            self._tiles[0].add(strip.rows.top, strip.rows.values, strip.rows.valid)

    def _write_levels(self, strip: Strip) -> None:
        for tiles, rows in zip(self._tiles[1:], strip.levels):
            if rows.values is not None and rows.n:
                tiles.add(rows.top, rows.values, rows.valid)

    def __exit__(self, exc_type, exc, tb) -> None:
        with deferred():  # a signal waits: the COG is finished or its temporary files removed, not half of either
            self._exit(exc_type, exc, tb)

    def _exit(self, exc_type, exc, tb) -> None:
        self._start_templates()
        closed = [lane.submit(_close, tiles)  # each thread writes the last block rows of its own levels
                  for lane, tiles in zip(self._lanes, (self._tiles[:1], self._tiles[1:]))]
        for lane in self._lanes:
            lane.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        jobs = [*self._pending, closed, [self._templates_made]]
        failed = next((f.exception() for fs in jobs for f in fs if f.exception() is not None), None)
        try:
            if exc_type is None and failed is None:
                self._assemble()
        except BaseException as e:  # noqa: BLE001 - the COG is incomplete: never renamed into place
            failed = e
        finally:
            for p in [*self._templates, *(t.path for t in self._tiles)]:
                p.unlink(missing_ok=True)
        if failed is not None and exc_type is None:
            self._atomic.__exit__(type(failed), failed, failed.__traceback__)
            raise failed
        self._atomic.__exit__(exc_type, exc, tb)

    def _assemble(self) -> None:
        """The tiles written, behind the templates' tags, as one COG at the temporary final path."""
        image, mask = (read_ifds(template)[0].tags for template in self._templates)
        write_cog([tiles.ifds(image, mask) for tiles in self._tiles], self._final)


def _close(tiles: list[LevelTiles]) -> None:
    """Write the last block rows of every level, all compressed at once; every file is closed even when one fails
    (then its error is raised)."""
    with contextlib.ExitStack() as stack:
        for close in [t.finish() for t in tiles]:
            stack.callback(close)
