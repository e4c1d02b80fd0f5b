"""Imagery as web map tiles (EPSG:3857 z/x/y PNG) rendered from the scenes' GeoTIFFs by rio-tiler, with a
per-band percentile stretch; shared by every page. A local basemap raster can be served the same way."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .files import Refused, SceneFiles

TILE = 256
PCT = (2.0, 98.0)  # stretch: these percentiles of each band's valid pixels (on a decimated read) map to 0..255
CACHE = "private, max-age=3600"
WEB_MERCATOR = CRS.from_epsg(3857)


class Tiler:
    """Opens each raster once (per thread) and renders tiles with its stretch."""

    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self._info: dict[Path, dict] = {}

    def _reader(self, path: Path) -> Reader:
        readers = self._local.__dict__.setdefault("readers", {})
        if path not in readers:
            readers[path] = Reader(str(path))
        return readers[path]

    def info(self, path: Path) -> dict:
        """Zoom range, lon/lat bounds, bands read (the first three, or one) and the stretch of a raster."""
        with self._lock:
            if path in self._info:
                return self._info[path]
        r = self._reader(path)
        bands = (1, 2, 3) if r.dataset.count >= 3 else (1,)
        preview = r.preview(max_size=1024, indexes=bands)
        data = np.ma.MaskedArray(preview.data, mask=np.broadcast_to(preview.mask == 0, preview.data.shape))
        ranges = []
        for band in data:
            valid = band.compressed()
            lo, hi = np.percentile(valid, PCT) if valid.size else (0.0, 255.0)
            ranges.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
        bounds = r.get_geographic_bounds("EPSG:4326")
        info = {"minzoom": int(r.minzoom), "maxzoom": int(r.maxzoom), "bounds": [float(b) for b in bounds],
                "bands": bands, "stretch": ranges}
        with self._lock:
            self._info[path] = info
        return info

    def tile(self, path: Path, z: int, x: int, y: int) -> bytes | None:
        """PNG of tile z/x/y (transparent where the raster has no valid pixel); None outside the raster."""
        info = self.info(path)
        try:
            img = self._reader(path).tile(x, y, z, tilesize=TILE, indexes=info["bands"])
        except TileOutsideBounds:
            return None
        img = img.rescale(in_range=info["stretch"])
        return img.render(img_format="PNG")

    def picture(self, path: Path, max_size: int) -> tuple[bytes, list[float]]:
        """The whole raster as one PNG in EPSG:3857 (longest side at most ``max_size``), with the tiles' stretch,
        and its lon/lat bounds [west, south, east, north]: an image a web map stretches over those bounds."""
        info = self.info(path)
        r = self._reader(path)
        bbox = transform_bounds(r.dataset.crs, WEB_MERCATOR, *r.dataset.bounds)
        img = r.part(bbox, dst_crs=WEB_MERCATOR, bounds_crs=WEB_MERCATOR, max_size=max_size, indexes=info["bands"])
        png = img.rescale(in_range=info["stretch"]).render(img_format="PNG")
        return png, [float(v) for v in transform_bounds(WEB_MERCATOR, "EPSG:4326", *img.bounds)]


def _int(request: Request, key: str) -> int:
    try:
        return int(request.path_params[key])
    except ValueError:
        raise ValueError(f"{key}: not an integer") from None


async def _serve_tile(tiler: Tiler, path: Path, request: Request) -> Response:
    try:
        z, x, y = (_int(request, k) for k in ("z", "x", "y"))
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    info = await run_in_threadpool(tiler.info, path)
    if not (max(0, info["minzoom"] - 2) <= z <= info["maxzoom"] + 3) or not (0 <= x < 2**z and 0 <= y < 2**z):
        return JSONResponse({"error": f"tile {z}/{x}/{y} is outside the zooms {info['minzoom'] - 2}-"
                                      f"{info['maxzoom'] + 3} or the grid of this raster"}, status_code=404)
    png, timing = await run_in_threadpool(_timed, tiler, path, z, x, y)
    if png is None:
        return Response(status_code=204, headers={"Server-Timing": timing})
    return Response(png, media_type="image/png", headers={"Cache-Control": CACHE, "Server-Timing": timing})


def _timed(tiler: Tiler, path: Path, z: int, x: int, y: int) -> tuple[bytes | None, str]:
    """A tile and its Server-Timing header: wall and CPU milliseconds of the read and the PNG."""
    wall, cpu = time.perf_counter(), time.thread_time()
    png = tiler.tile(path, z, x, y)
    return png, f"tile;dur={(time.perf_counter() - wall) * 1000:.1f}, cpu;dur={(time.thread_time() - cpu) * 1000:.1f}"


def tile_routes(files: SceneFiles, basemap: Path | None = None) -> list[Route]:
    """``/tiles/scene/{scene_id}/{z}/{x}/{y}.png`` for the scenes of ``scenes.csv``, ``/tiles/basemap/...`` for the
    configured basemap raster; ``/api/tiles/scene/{scene_id}`` and ``/api/tiles/basemap`` give a raster's zooms,
    bounds and stretch."""
    tiler = Tiler()

    def image(request: Request) -> Path | Response:
        """The scene's image, or the answer that refuses it (unknown: 404, outside the dataset: 403)."""
        scene = request.path_params["scene_id"]
        try:
            return files.image(scene)
        except KeyError:
            return JSONResponse({"error": f"unknown scene {scene!r}"}, status_code=404)
        except Refused as e:
            return JSONResponse({"error": str(e)}, status_code=403)

    async def scene_tile(request: Request) -> Response:
        path = image(request)
        return path if isinstance(path, Response) else await _serve_tile(tiler, path, request)

    async def scene_info(request: Request) -> Response:
        path = image(request)
        return path if isinstance(path, Response) else JSONResponse(await run_in_threadpool(tiler.info, path))

    async def basemap_tile(request: Request) -> Response:
        if basemap is None:
            return JSONResponse({"error": "no basemap configured (geofoundry dashboard --basemap FILE)"},
                                status_code=404)
        return await _serve_tile(tiler, basemap, request)

    async def basemap_info(request: Request) -> Response:
        if basemap is None:
            return JSONResponse({"configured": False})
        return JSONResponse({"configured": True, **await run_in_threadpool(tiler.info, basemap)})

    return [Route("/tiles/scene/{scene_id}/{z}/{x}/{y}.png", scene_tile),
            Route("/api/tiles/scene/{scene_id}", scene_info),
            Route("/tiles/basemap/{z}/{x}/{y}.png", basemap_tile), Route("/api/tiles/basemap", basemap_info)]
