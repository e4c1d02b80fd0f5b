"""The data page: the catalog on a map and in facets, live counts per split of the selection query, and "use this
selection", which writes params.yaml's ``select:`` as ``geofoundry select --write`` does."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import GeofoundryError
from ..io.raw import read_labels
from ..select.changes import render_select, write_select
from ..select.geofence import parse_area
from ..select.query import Selection
from ..select.split import SPLITS
from .app import Page, refused_post
from .catalog_store import CatalogStore
from .files import Refused, SceneFiles

MAX_BODY = 20 * 1024 * 1024  # bytes of a request body (an uploaded geofence)
FENCE_SUFFIXES = (".geojson", ".json", ".gpkg")
NEXT = ["dvc repro select   # writes data/selection with this query", "dvc repro          # and every stage after it"]


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


async def _body(request: Request) -> bytes:
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY:
        raise BadRequest(f"request body of {size} bytes is over the limit of {MAX_BODY}", 413)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest(f"request body over the limit of {MAX_BODY} bytes", 413)
    return body


async def _changes(request: Request) -> dict:
    """The query of a request body: ``{"select": {key: value}}`` with keys of ``select:``."""
    try:
        doc = json.loads(await _body(request) or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"request body: not JSON ({e})") from None
    changes = doc.get("select", {}) if isinstance(doc, dict) else None
    if not isinstance(changes, dict):
        raise BadRequest('request body: expected {"select": {key: value, ...}}')
    return changes


def _error(e: Exception) -> JSONResponse:
    status = e.status if isinstance(e, BadRequest) else 422
    return JSONResponse({"error": str(e)}, status_code=status)


def _summary(store: CatalogStore, sel: Selection) -> dict:
    split = sel.summary
    return {
        "ok": True,
        "metrics": sel.metrics,
        "totals": {"scenes": int(len(sel.scenes)), "blocks": int(len(sel.blocks)),
                   "valid_km2": round(float(sel.blocks["valid_area_m2"].sum()) / 1e6, 4),
                   "objects": int(sum(split[s]["objects"] for s in SPLITS))},
        "levels": store.level_counts(sel),
        "histograms": store.histograms(sel),
        "scene_splits": dict(zip(sel.scenes["scene_id"], sel.scenes["splits"])),
    }


def _blocks(sel: Selection, size: float) -> dict:
    """The selected blocks as columns (grid cell, split, objects, contexts) for the map, which draws each as its
    grid cell; blocks clipped by the geofence come with their clipped outline (``clipped``: index → GeoJSON)."""
    b = sel.blocks
    cut = np.flatnonzero(shapely.area(b.geometry.values) < size * size * (1 - 1e-9))
    outlines = gpd.GeoSeries(b.geometry.values[cut], crs=b.crs).to_crs("EPSG:4326")
    clipped = {int(i): json.loads(shapely.to_geojson(shapely.set_precision(g, 1e-7)))
               for i, g in zip(cut, outlines.values)}
    contexts = {k: [None if np.isnan(v) else round(float(v), 3) for v in b[k]] for k in ("vegetation", "bright",
                                                                                          "cloud_haze", "water",
                                                                                          "nodata") if k in b}
    return {"ok": True, "ix": b["ix"].astype(int).tolist(), "iy": b["iy"].astype(int).tolist(),
            "split": b["split"].map(SPLITS.index).astype(int).tolist(), "splits": list(SPLITS),
            "n_objects": b["n_objects"].astype(int).tolist(), "contexts": contexts, "clipped": clipped}


def _fence(name: str, data: bytes) -> dict:
    """An uploaded area file (GeoJSON or GeoPackage, any CRS) as WKT in lon/lat, as select.geofence takes it."""
    suffix = Path(name).suffix.lower()
    if suffix not in FENCE_SUFFIXES:
        raise BadRequest(f"{name!r}: expected a {', '.join(FENCE_SUFFIXES)} file")
    with tempfile.TemporaryDirectory(prefix="geofoundry-fence-") as tmp:
        path = Path(tmp) / f"area{suffix}"
        path.write_bytes(data)
        geom = parse_area(str(path), f"uploaded file {name!r}")
    geom = shapely.set_precision(geom, 1e-7)
    return {"wkt": shapely.to_wkt(geom, rounding_precision=7, trim=True),
            "geojson": json.loads(shapely.to_geojson(geom))}


def data_page(store: CatalogStore, files: SceneFiles) -> Page:
    """The data page and its API under ``/api/data``."""
    token = secrets.token_urlsafe(32)  # "use this selection" writes params.yaml: only this page may ask
    facets = store.facets()

    async def catalog(request: Request) -> Response:
        return JSONResponse(facets)

    async def run_query(request: Request):
        changes = await _changes(request)
        return await run_in_threadpool(store.run, changes)

    def counted(changes: dict) -> tuple[dict, str]:
        """The counts of a query and a Server-Timing header: its wall and CPU milliseconds on the server."""
        wall, cpu = time.perf_counter(), time.thread_time()
        _, sel = store.run(changes)
        body = {"ok": False, "message": sel} if isinstance(sel, str) else _summary(store, sel)
        wall, cpu = (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000
        return body, f"query;dur={wall:.1f}, cpu;dur={cpu:.1f}"

    async def counts(request: Request) -> Response:
        try:
            body, timing = await run_in_threadpool(counted, await _changes(request))
        except (BadRequest, GeofoundryError) as e:
            return _error(e)
        return JSONResponse(body, headers={"Server-Timing": timing})

    async def blocks(request: Request) -> Response:
        try:
            _, sel = await run_query(request)
        except (BadRequest, GeofoundryError) as e:
            return _error(e)
        if isinstance(sel, str):
            return JSONResponse({"ok": False, "message": sel})
        return JSONResponse(await run_in_threadpool(_blocks, sel, store.source.select.split.block_size_m))

    def yaml_of(changes: dict) -> tuple[str, str]:
        text = render_select(store.source.params_path.read_text(), changes)
        start = text.index("\nselect:") + 1 if "\nselect:" in text else text.index("select:")
        lines = text[start:].splitlines()
        section = [lines[0], *_takewhile_indented(lines[1:])]
        while section and (not section[-1].strip() or section[-1].startswith("#")):
            section.pop()
        return text, "\n".join(section)

    async def params_preview(request: Request) -> Response:
        try:
            changes = await _changes(request)
            await run_in_threadpool(store.run, changes)
            _, section = await run_in_threadpool(yaml_of, changes)
        except (BadRequest, GeofoundryError) as e:
            return _error(e)
        return JSONResponse({"params": str(store.source.params_path), "select_yaml": section})

    async def use(request: Request) -> Response:
        refused = refused_post(request, token)
        if refused:
            return JSONResponse({"error": f"not written: {refused}"}, status_code=403)
        try:
            changes = await _changes(request)
            _, sel = await run_in_threadpool(store.run, changes)
        except (BadRequest, GeofoundryError) as e:
            return _error(e)
        if isinstance(sel, str):
            return JSONResponse({"error": f"not written: {sel}"}, status_code=409)
        await run_in_threadpool(write_select, store.source.params_path, changes)
        _, section = await run_in_threadpool(yaml_of, {})
        return JSONResponse({"written": str(store.source.params_path), "select_yaml": section, "next": NEXT})

    async def fence(request: Request) -> Response:
        try:
            data = await _body(request)
            return JSONResponse(await run_in_threadpool(_fence, request.query_params.get("name", ""), data))
        except (BadRequest, GeofoundryError) as e:
            return _error(e)

    async def labels(request: Request) -> Response:
        scene = request.path_params["scene_id"]
        try:
            path = files.labels(scene)
        except KeyError:
            return JSONResponse({"error": f"unknown scene {scene!r}"}, status_code=404)
        except Refused as e:
            return JSONResponse({"error": str(e)}, status_code=403)
        gdf: gpd.GeoDataFrame = await run_in_threadpool(read_labels, path)
        keep = [c for c in ("class_path", "class") if c in gdf]
        return Response(gdf[[*keep, "geometry"]].to_crs("EPSG:4326").to_json(drop_id=True),
                        media_type="application/geo+json")

    routes = [Route("/api/data/catalog", catalog), Route("/api/data/query", counts, methods=["POST"]),
              Route("/api/data/blocks", blocks, methods=["POST"]),
              Route("/api/data/params", params_preview, methods=["POST"]),
              Route("/api/data/use", use, methods=["POST"]), Route("/api/data/fence", fence, methods=["POST"]),
              Route("/api/data/labels/{scene_id}", labels)]
    return Page("/data", "Data", "data.html", routes, {"token": token})


def _takewhile_indented(lines: list[str]):
    for line in lines:
        if line and not line[0].isspace() and not line.startswith("#"):
            return
        yield line
