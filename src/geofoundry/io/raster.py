"""Raster helpers: band lookup by name, a model-grid view of a scene, valid footprints."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.windows
import shapely
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.features import shapes
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..errors import GeofoundryError
from .mask_blocks import MaskBlocks, mask_blocks
from .read_errors import raster_errors
from .tiling import block_window

GSD_TOLERANCE = 0.01
# rasterio's rasterize and shapes build in-memory GDAL datasets; threads that build them at once make it warn
# (NotGeoreferencedWarning), so calls that may run on several threads hold this one lock
IN_MEMORY_DATASETS = threading.Lock()


def band_indexes(path: str, band_names: list[str], wanted: list[str]) -> list[int]:
    """1-based band indexes of ``wanted`` names in a scene whose bands are ``band_names``."""
    missing = [b for b in wanted if b not in band_names]
    if missing:
        raise GeofoundryError(f"{path}: has bands {band_names}, missing {missing} (preprocess.bands)")
    return [band_names.index(b) + 1 for b in wanted]


@dataclass(frozen=True)
class ModelGrid:
    """A scene seen on the model's grid: same CRS and bounds, pixel size scaled to the target GSD."""

    ds: rasterio.io.DatasetReaderBase
    indexes: list[int]

    @property
    def transform(self) -> Affine:
        return self.ds.transform

    @property
    def shape(self) -> tuple[int, int]:
        return self.ds.height, self.ds.width

    def read(self, window) -> tuple[np.ndarray, np.ndarray]:
        """Return (bands (C,h,w) in the source dtype, valid (h,w) bool) for a window; outside the raster is invalid,
        and so are float pixels with a NaN or infinite band value."""
        bands, valid = self.bands(window), self.valid(window)
        if bands.dtype.kind == "f":
            valid &= np.isfinite(bands).all(axis=0)
        return bands, valid

    def bands(self, window, out: np.ndarray | None = None) -> np.ndarray:
        """Bands (C,h,w) in the source dtype, read into ``out`` when given; 0 outside the raster."""
        shape = (len(self.indexes), int(window.height), int(window.width))
        out = np.empty(shape, dtype=self.ds.dtypes[0]) if out is None else out
        inner, rows, cols = self._inside(window)
        if inner is None or (inner.height, inner.width) != shape[1:]:
            out[:] = 0
        if inner is not None:
            with raster_errors(self.path):
                self.ds.read(self.indexes, window=inner, out=out[:, rows, cols])
        return out

    def valid(self, window) -> np.ndarray:
        """Valid pixels (h,w) bool (the dataset mask); False outside the raster."""
        return self.mask(window) > 0

    def mask(self, window, out: np.ndarray | None = None) -> np.ndarray:
        """The dataset mask (h,w) uint8, 255 valid and 0 not (nor outside the raster), read into ``out`` when given."""
        out = np.empty((int(window.height), int(window.width)), np.uint8) if out is None else out
        inner, rows, cols = self._inside(window)
        if inner is None or (inner.height, inner.width) != out.shape:
            out[:] = 0
        if inner is not None:
            if (value := self.mask_blocks and self.mask_blocks.constant(inner)) is not None:
                out[rows, cols] = value  # blocks of nodata collar (or all valid): nothing to decode
            elif self.one_mask:  # reading it is several times faster than rasterio's dataset_mask
                with raster_errors(self.path):
                    self.ds.read_masks(1, window=inner, out=out[rows, cols])
            else:
                with raster_errors(self.path):
                    out[rows, cols] = self.ds.dataset_mask(window=inner)
        return out

    @property
    def path(self) -> str:
        """The scene's file (for messages), also through a warped view of it."""
        source = getattr(self.ds, "src_dataset", None) or getattr(self.ds, "src", None) or self.ds
        return source.name

    @functools.cached_property
    def one_mask(self) -> bool:
        """Whether all bands share one per-dataset mask."""
        return _one_mask(self.ds)

    def valid_window(self, pad: int = 2) -> Window | None:
        """A window of the grid that holds every valid pixel, known from the blocks of the file's internal mask
        without reading them (:mod:`.mask_blocks`), ``pad`` pixels wider for resampling; the whole grid when they
        are not known (e.g. a mask made from a nodata value); None when no block holds a valid pixel."""
        whole = Window(0, 0, self.ds.width, self.ds.height)
        source = getattr(self.ds, "src_dataset", None) or self.ds  # a WarpedVRT keeps the CRS and the bounds
        if source is self.ds:
            blocks = self.mask_blocks
        else:
            with raster_errors(self.path):
                blocks = mask_blocks(source) if _one_mask(source) else None
        if blocks is None:
            return whole
        found = blocks.valid_window()
        if found is None:
            return None
        window = block_window(shapely.box(*rasterio.windows.bounds(found, source.transform)), self.transform,
                              self.shape) or whole
        c0, r0 = max(0, int(window.col_off) - pad), max(0, int(window.row_off) - pad)
        c1 = min(self.ds.width, int(window.col_off + window.width) + pad)
        r1 = min(self.ds.height, int(window.row_off + window.height) + pad)
        return Window(c0, r0, c1 - c0, r1 - r0)

    def share_mask_facts(self, other: ModelGrid) -> None:
        """Take what ``other``, a handle of the same scene, knows of the mask (whether the bands share one mask, and
        its constant blocks) instead of looking it up again through this handle."""
        self.__dict__.update(one_mask=other.one_mask, mask_blocks=other.mask_blocks)  # the cached properties

    def known_invalid(self, window) -> bool:
        """Whether no pixel of ``window`` is valid, known without reading: outside the raster, or in blocks of the
        mask that are all invalid."""
        inner, _, _ = self._inside(window)
        return inner is None or (self.mask_blocks is not None and self.mask_blocks.constant(inner) == 0)

    @functools.cached_property
    def mask_blocks(self) -> MaskBlocks | None:
        """The blocks of the scene's internal mask that are constant (a GeoTIFF on the model grid itself, whose bands
        share one mask); None otherwise."""
        with raster_errors(self.path):
            return mask_blocks(self.ds) if self.one_mask else None

    def _inside(self, window) -> tuple[Window | None, slice, slice]:
        """The part of ``window`` inside the raster, and where it lies in the window's array."""
        c0, r0 = max(0, int(window.col_off)), max(0, int(window.row_off))
        c1 = min(self.ds.width, int(window.col_off) + int(window.width))
        r1 = min(self.ds.height, int(window.row_off) + int(window.height))
        if c1 <= c0 or r1 <= r0:
            return None, slice(0), slice(0)
        rows = slice(r0 - int(window.row_off), r1 - int(window.row_off))
        cols = slice(c0 - int(window.col_off), c1 - int(window.col_off))
        return Window(c0, r0, c1 - c0, r1 - r0), rows, cols


def _one_mask(ds) -> bool:
    """Whether all bands of ``ds`` share one per-dataset mask."""
    return all(f == [MaskFlags.per_dataset] for f in getattr(ds, "mask_flag_enums", [[]]))


@contextlib.contextmanager
def open_model_grid(path: str, scene_gsd_m: float, target_gsd_m: float, indexes: list[int],
                    resampling: str = "bilinear") -> Iterator[ModelGrid]:
    """Open a scene resampled (GDAL warp, streamed by windows) so that one pixel is ``target_gsd_m`` on the ground."""
    with raster_errors(path):
        src = rasterio.open(path)
    with src:
        scale = target_gsd_m / scene_gsd_m
        if abs(scale - 1) <= GSD_TOLERANCE:
            yield ModelGrid(src, indexes)
            return
        width, height = max(1, math.ceil(src.width / scale)), max(1, math.ceil(src.height / scale))
        transform = src.transform @ Affine.scale(src.width / width, src.height / height)
        # Without a nodata value the source's internal mask only survives the warp as an alpha band.
        with WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height,
                       resampling=Resampling[resampling], add_alpha=src.nodata is None) as vrt:
            yield ModelGrid(vrt, indexes)


def valid_footprint(ds, max_side: int = 2048) -> shapely.Geometry:
    """Valid area of a dataset as a (multi)polygon in its CRS, traced on a decimated mask (uses overviews)."""
    factor = max(1, math.ceil(max(ds.width, ds.height) / max_side))
    h, w = math.ceil(ds.height / factor), math.ceil(ds.width / factor)
    mask = ds.dataset_mask(out_shape=(h, w), resampling=Resampling.nearest) > 0
    return mask_outline(mask, ds.transform @ Affine.scale(ds.width / w, ds.height / h))


def mask_outline(mask: np.ndarray, transform: Affine) -> shapely.Geometry:
    """The True pixels of ``mask`` (their squares) as one (multi)polygon in ``transform``'s CRS; empty if none."""
    polys = [shapely.geometry.shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=transform) if v]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def has_rpc_only(ds) -> bool:
    """True when a dataset is georeferenced only by RPCs (a raw satellite product): no CRS, no geotransform."""
    return ds.rpcs is not None and ds.crs is None and ds.transform.is_identity


GDAL_CACHE_MB = 256


def bounded_gdal_cache(mb: int = GDAL_CACHE_MB) -> rasterio.Env:
    """A rasterio environment whose GDAL block cache is capped (GDAL's default is 5 % of RAM)."""
    return rasterio.Env(GDAL_CACHEMAX=mb * 2**20)
