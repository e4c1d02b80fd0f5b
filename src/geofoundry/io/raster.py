"""Raster helpers: band lookup by name, a model-grid view of a scene, valid footprints."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import shapes
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..errors import GeofoundryError

GSD_TOLERANCE = 0.01


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
        """Return (bands (C,h,w) in the source dtype, valid (h,w) bool) for a window; outside the raster is invalid."""
        h, w = int(window.height), int(window.width)
        data = np.zeros((len(self.indexes), h, w), dtype=self.ds.dtypes[0])
        valid = np.zeros((h, w), dtype=bool)
        c0, r0 = max(0, int(window.col_off)), max(0, int(window.row_off))
        c1 = min(self.ds.width, int(window.col_off) + w)
        r1 = min(self.ds.height, int(window.row_off) + h)
        if c1 > c0 and r1 > r0:
            inner = Window(c0, r0, c1 - c0, r1 - r0)
            rows = slice(r0 - int(window.row_off), r1 - int(window.row_off))
            cols = slice(c0 - int(window.col_off), c1 - int(window.col_off))
            data[:, rows, cols] = self.ds.read(self.indexes, window=inner)
            valid[rows, cols] = self.ds.dataset_mask(window=inner) > 0
        return data, valid


@contextlib.contextmanager
def open_model_grid(path: str, scene_gsd_m: float, target_gsd_m: float, indexes: list[int],
                    resampling: str = "bilinear") -> Iterator[ModelGrid]:
    """Open a scene resampled (GDAL warp, streamed by windows) so that one pixel is ``target_gsd_m`` on the ground."""
    with rasterio.open(path) as src:
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
    transform = ds.transform @ Affine.scale(ds.width / w, ds.height / h)
    polys = [shapely.geometry.shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=transform) if v]
    return shapely.union_all(polys) if polys else shapely.Polygon()


# --- warped views: target CRS and RPC orthorectification (additions; the functions above are used by predict) ---


def has_rpc_only(ds) -> bool:
    """True when a dataset is georeferenced only by RPCs (a raw satellite product): no CRS, no geotransform."""
    return ds.rpcs is not None and ds.crs is None and ds.transform.is_identity


def rpc_options(ds, dem: str | None = None, height: float | None = None) -> dict:
    """GDAL RPC transformer options: a DEM file, else a constant height (default: the RPC height offset)."""
    if not has_rpc_only(ds):
        return {}
    if dem:
        return {"RPC_DEM": str(dem)}
    return {"RPC_HEIGHT": float(ds.rpcs.height_off if height is None else height)}


def units_per_metre(crs, lon: float, lat: float) -> tuple[float, float]:
    """CRS units per ground metre eastwards and northwards at (lon, lat), measured on the WGS84 ellipsoid."""
    from pyproj import Geod, Transformer

    geod, tr = Geod(ellps="WGS84"), Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x0, y0 = tr.transform(lon, lat)
    out = []
    for azimuth in (90.0, 0.0):
        lon1, lat1, _ = geod.fwd(lon, lat, azimuth, 100.0)
        x1, y1 = tr.transform(lon1, lat1)
        out.append(math.hypot(x1 - x0, y1 - y0) / 100.0)
    return out[0], out[1]


def local_utm(lon: float, lat: float) -> str:
    """EPSG code of the UTM zone (WGS84) at a point."""
    zone = min(60, int((lon + 180) // 6) + 1)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _ground_centre(src, opts: dict) -> tuple[float, float]:
    if opts:
        return float(src.rpcs.long_off), float(src.rpcs.lat_off)
    from rasterio.warp import transform as warp_points

    x, y = src.xy(src.height / 2, src.width / 2)
    lon, lat = warp_points(src.crs, "EPSG:4326", [x], [y])
    return lon[0], lat[0]


@contextlib.contextmanager
def open_scene(path: str, scene_gsd_m: float, target_gsd_m: float, indexes: list[int],
               resampling: str = "bilinear", crs: str | None = None, dem: str | None = None,
               height: float | None = None) -> Iterator[ModelGrid]:
    """A scene on a model grid of ``target_gsd_m`` ground pixels, in ``crs`` (default: its own), streamed by windows.

    A scene with only RPCs is orthorectified (GDAL warp, RPC transformer with ``dem`` or a constant ``height``) into
    ``crs`` or, by default, its local UTM zone. Without a CRS change or RPCs this is :func:`open_model_grid`.
    """
    from rasterio.warp import calculate_default_transform

    with rasterio.open(path) as src:
        opts = rpc_options(src, dem, height)
        if not opts and (crs is None or rasterio.crs.CRS.from_user_input(crs) == src.crs):
            with open_model_grid(path, scene_gsd_m, target_gsd_m, indexes, resampling) as grid:
                yield grid
            return
        lon, lat = _ground_centre(src, opts)
        dst = rasterio.crs.CRS.from_user_input(crs or (local_utm(lon, lat) if opts else src.crs))
        ux, uy = units_per_metre(dst, lon, lat)
        src_bounds = {} if opts else dict(zip(("left", "bottom", "right", "top"), src.bounds))
        transform, width, height_px = calculate_default_transform(
            src.crs or "EPSG:4326", dst, src.width, src.height, rpcs=src.rpcs if opts else None,
            resolution=(target_gsd_m * ux, target_gsd_m * uy), **src_bounds, **opts)
        with WarpedVRT(src, crs=dst, transform=transform, width=width, height=height_px,
                       resampling=Resampling[resampling], add_alpha=src.nodata is None, **opts) as vrt:
            yield ModelGrid(vrt, indexes)


def scene_gsd_m(ds) -> float:
    """Ground sample distance (m) at the scene centre, from its transform and CRS (any CRS, geodesic on WGS 84).

    The geometric mean of one pixel's ground width and height: Web Mercator scale and degrees are handled alike.
    """
    from pyproj import Geod, Transformer

    if ds.crs is None:
        raise GeofoundryError(f"{ds.name}: no CRS, so its ground sample distance is unknown")
    cx, cy = ds.width / 2, ds.height / 2
    xs, ys = zip(ds.transform * (cx, cy), ds.transform * (cx + 1, cy), ds.transform * (cx, cy + 1))
    lon, lat = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    geod = Geod(ellps="WGS84")
    dx = geod.inv(lon[0], lat[0], lon[1], lat[1])[2]
    dy = geod.inv(lon[0], lat[0], lon[2], lat[2])[2]
    if not (math.isfinite(dx) and math.isfinite(dy)) or dx <= 0 or dy <= 0:
        raise GeofoundryError(f"{ds.name}: cannot compute a ground sample distance from its transform and CRS")
    return math.sqrt(dx * dy)
