"""Scenes on a warped model grid: a target CRS and GSD, and RPC orthorectification with a DEM or a constant height.

Pixels are computed window by window with GDAL's warper (``rasterio.warp.reproject``), so memory is bounded by the
window, whatever the scene size. Validity comes from the source mask or nodata, carried as a warped alpha band.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import rasterio
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from .raster import ModelGrid, has_rpc_only, open_model_grid
from .read_errors import raster_errors


def rpc_options(ds, dem: str | None = None, height: float | None = None) -> dict:
    """GDAL RPC transformer options: a DEM file, else a constant height (default: the RPC height offset)."""
    if not has_rpc_only(ds):
        return {}
    if dem:
        return {"RPC_DEM": str(dem)}
    return {"RPC_HEIGHT": float(ds.rpcs.height_off if height is None else height)}


def units_per_metre(crs, lon: float, lat: float) -> tuple[float, float]:
    """CRS units per ground metre eastwards and northwards at (lon, lat), measured on the WGS84 ellipsoid."""
    geod, tr = Geod(ellps="WGS84"), Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x0, y0 = tr.transform(lon, lat)
    out = []
    for azimuth in (90.0, 0.0):
        lon1, lat1, _ = geod.fwd(lon, lat, azimuth, 100.0)
        x1, y1 = tr.transform(lon1, lat1)
        out.append(math.hypot(x1 - x0, y1 - y0) / 100.0)
    return out[0], out[1]


def local_utm(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone at a point."""
    return f"EPSG:{(32600 if lat >= 0 else 32700) + min(60, int((lon + 180) // 6) + 1)}"


class WarpedView:
    """A read-only, dataset-like view of ``src`` on another grid (the calls that ModelGrid, the scan and
    ``valid_footprint`` make), computed per window by GDAL's warper with ``options`` (e.g. RPC_DEM)."""

    def __init__(self, src, crs, transform: Affine, width: int, height: int, resampling: str, options: dict):
        self.src, self.crs, self.transform, self.width, self.height = src, crs, transform, width, height
        self.count, self.dtypes, self.nodata, self.rpcs = src.count, src.dtypes, None, None
        self.resampling, self.options = Resampling[resampling], options

    @property
    def bounds(self):
        return rasterio.coords.BoundingBox(*window_bounds(Window(0, 0, self.width, self.height), self.transform))

    def window_transform(self, window) -> Affine:
        return window_transform(window, self.transform)

    def _warp(self, indexes: list[int], window, out_shape) -> np.ndarray:
        """(len(indexes) + 1, h, w): the bands and, last, the alpha (255 valid, 0 not)."""
        window = window or Window(0, 0, self.width, self.height)
        h, w = out_shape or (int(window.height), int(window.width))
        t = self.window_transform(window) * Affine.scale(window.width / w, window.height / h)
        out = np.zeros((len(indexes) + 1, h, w), dtype=self.dtypes[0])
        src_georef = {"rpcs": self.src.rpcs, "src_crs": "EPSG:4326"} if has_rpc_only(self.src) else {}
        with raster_errors(self.src.name):
            reproject(rasterio.band(self.src, indexes), out, dst_transform=t, dst_crs=self.crs,
                      resampling=self.resampling, dst_alpha=len(indexes) + 1, **src_georef, **self.options)
        return out

    def read(self, indexes=None, window=None, out=None, out_shape=None, resampling=None, **_) -> np.ndarray:
        single = isinstance(indexes, int)
        idx = [indexes] if single else list(indexes or range(1, self.count + 1))
        shape = out.shape if out is not None else out_shape
        data = self._warp(idx, window, shape[-2:] if shape else None)[:-1]
        data = data[0] if single else data
        if out is None:
            return data
        out[...] = data
        return out

    def dataset_mask(self, window=None, out_shape=None, **_) -> np.ndarray:
        alpha = self._warp([1], window, out_shape[-2:] if out_shape else None)[-1]
        return np.where(alpha > 0, 255, 0).astype(np.uint8)


def _ground_centre(src, rpc: bool) -> tuple[float, float]:
    if rpc:
        return float(src.rpcs.long_off), float(src.rpcs.lat_off)
    x, y = src.xy(src.height / 2, src.width / 2)
    lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return lon, lat


@contextlib.contextmanager
def open_scene(path: str, scene_gsd_m: float, target_gsd_m: float, indexes: list[int],
               resampling: str = "bilinear", crs: str | None = None, dem: str | None = None,
               height: float | None = None) -> Iterator[ModelGrid]:
    """A scene on a model grid of ``target_gsd_m`` ground pixels in ``crs`` (default: its own CRS).

    A scene with only RPCs is orthorectified (RPC transformer with the ``dem`` file, else a constant ``height``)
    into ``crs`` or, by default, its local UTM zone. Without either this is :func:`open_model_grid`.
    """
    with raster_errors(path):
        src = rasterio.open(path)
    with src:
        opts = rpc_options(src, dem, height)
        if not opts and (crs is None or rasterio.crs.CRS.from_user_input(crs) == src.crs):
            with open_model_grid(path, scene_gsd_m, target_gsd_m, indexes, resampling) as grid:
                yield grid
            return
        lon, lat = _ground_centre(src, bool(opts))
        dst = rasterio.crs.CRS.from_user_input(crs or (local_utm(lon, lat) if opts else src.crs))
        ux, uy = units_per_metre(dst, lon, lat)
        georef = {"rpcs": src.rpcs} if opts else dict(zip(("left", "bottom", "right", "top"), src.bounds))
        transform, width, height_px = calculate_default_transform(
            src.crs or "EPSG:4326", dst, src.width, src.height, resolution=(target_gsd_m * ux, target_gsd_m * uy),
            **georef, **opts)
        yield ModelGrid(WarpedView(src, dst, transform, width, height_px, resampling, opts), indexes)
