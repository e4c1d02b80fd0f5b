"""The compare page: the experiments table (DVC's), the metric difference of two rows, their detections side by side
as true/false positives and misses, their plots, "save as report", and promotion to a model version (GTO)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import GeofoundryError
from .app import Page, refused_post
from .compare_report import report_html
from .detections import PREDICTIONS, SELECTION, VECTORS, detections, plots
from .experiments import WORKSPACE, Experiments, Row, metrics_diff
from .files import SceneFiles
from .promote import plan, register
from .revisions import RevisionFiles, Scratch
from .tiles import Tiler

MAX_BODY = 64 * 1024
REPORT_IMAGE_PX = 1280  # longest side of each scene's picture in a saved report


def _workspace_stamp(root: Path) -> tuple:
    """Sizes and mtimes of the workspace files that its detections are read from."""
    paths = [root / "params.yaml", root / "dvc.lock"]
    for rel in (PREDICTIONS, VECTORS, SELECTION):
        folder = root / rel
        paths += sorted(folder.iterdir()) if folder.is_dir() else [folder]
    stamp = []
    for p in paths:
        try:
            st = p.stat()
            stamp.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append((str(p), None, None))
    return tuple(stamp)


class Comparison:
    """The page's state: the table, the files of revisions, and each revision's detections once computed."""

    def __init__(self, root: Path, scenes: SceneFiles):
        self.root = Path(root).resolve()
        self.experiments = Experiments(self.root)
        self.scenes = scenes
        self.scratch = Scratch()
        self.tiler = Tiler()
        self._lock = threading.Lock()
        self._done: dict[tuple, tuple[dict, dict]] = {}

    def warm(self) -> None:
        """Collect the table once ahead of the first request (a failure is reported to that request)."""
        try:
            self.experiments.collect()
        except GeofoundryError:
            pass

    def row(self, rev: str) -> Row:
        try:
            return self.experiments.row(rev)
        except KeyError:
            raise LookupError(f"unknown revision {rev!r}: not a row of the table (reload it)") from None

    def files(self, rev: str) -> RevisionFiles:
        row = self.row(rev)
        return RevisionFiles(self.root, row.id, row.name, self.scratch.path)

    def judged(self, rev: str) -> tuple[dict, dict]:
        """(detections, plots) of a revision, computed once (the workspace's again when its files change)."""
        files = self.files(rev)
        key = (rev, _workspace_stamp(self.root) if rev == WORKSPACE else None)
        with self._lock:
            if key not in self._done:
                self._done[key] = (detections(files), plots(files))
            return self._done[key]

    def side(self, rev: str) -> dict:
        """One side of a comparison: the row, its detections and plots (or why they cannot be shown)."""
        out = {"row": self.row(rev).public}
        try:
            out["detections"], out["plots"] = self.judged(rev)
        except GeofoundryError as e:
            out["error"] = str(e)
        return out

    def report(self, a: str, b: str) -> str:
        sides = [self.side(a), self.side(b)]
        scenes = sorted({s for side in sides for s in side.get("detections", {}).get("scenes", {})})
        imagery = {}
        for scene in scenes:
            try:
                png, bounds = self.tiler.picture(self.scenes.image(scene), REPORT_IMAGE_PX)
            except (KeyError, GeofoundryError):
                continue
            imagery[scene] = {"png": png, "bounds": bounds}
        diff = metrics_diff(self.row(a), self.row(b))
        return report_html(sides, diff, imagery, time.strftime("%Y-%m-%d %H:%M"))


async def _json_body(request: Request) -> dict:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ValueError(f"request body over {MAX_BODY} bytes")
    doc = json.loads(body or b"{}")
    if not isinstance(doc, dict) or not isinstance(doc.get("rev"), str) or not isinstance(doc.get("version"), str):
        raise ValueError('expected {"rev": "<row id>", "version": "v1.2.3"}')
    return doc


def compare_page(root: Path, scenes: SceneFiles, warm: bool = True) -> Page:
    """The compare page and its API under ``/api/compare``; ``warm`` starts collecting the table at once."""
    cmp = Comparison(root, scenes)
    token = secrets.token_urlsafe(32)
    if warm:
        threading.Thread(target=cmp.warm, name="experiments", daemon=True).start()

    def failed(e: Exception) -> JSONResponse:
        status = 404 if isinstance(e, LookupError) else 400 if isinstance(e, ValueError) else 409
        return JSONResponse({"error": str(e)}, status_code=status)

    def listed() -> tuple[list[dict], str]:
        """The rows, and a Server-Timing header: the wall and CPU milliseconds of their collection."""
        wall, cpu = time.perf_counter(), time.thread_time()
        rows = [r.public for r in cmp.experiments.collect()]
        wall, cpu = (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000
        return rows, f"collect;dur={wall:.1f}, cpu;dur={cpu:.1f}"

    async def table(request: Request) -> Response:
        try:
            rows, timing = await run_in_threadpool(listed)
        except GeofoundryError as e:
            return failed(e)
        return JSONResponse({"rows": rows, "root": str(cmp.root)}, headers={"Server-Timing": timing})

    async def diff(request: Request) -> Response:
        try:
            a, b = (cmp.row(request.query_params.get(k, "")) for k in ("a", "b"))
        except LookupError as e:
            return failed(e)
        return JSONResponse({"a": a.id, "b": b.id, "diff": metrics_diff(a, b)})

    async def side(request: Request) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(cmp.side, request.path_params["rev"]))
        except LookupError as e:
            return failed(e)

    async def report(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        try:
            html = await run_in_threadpool(cmp.report, a, b)
        except LookupError as e:
            return failed(e)
        name = f"compare-{cmp.row(a).name}-vs-{cmp.row(b).name}.html".replace("/", "_")
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def promotion(run: bool):
        async def endpoint(request: Request) -> Response:
            refused = refused_post(request, token)
            if refused:
                return JSONResponse({"error": refused}, status_code=403)
            try:
                doc = await _json_body(request)
                row, files = cmp.row(doc["rev"]), cmp.files(doc["rev"])
                step = register if run else plan
                out = await run_in_threadpool(step, cmp.root, row, files, doc["version"], cmp.experiments.tags)
            except (ValueError, LookupError, GeofoundryError) as e:
                return failed(e)
            except Exception as e:  # DVC or GTO failing (an upload, a tag): said as it is, never a traceback
                return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=500)
            if run:
                await run_in_threadpool(cmp.experiments.collect)
            return JSONResponse(out)
        return endpoint

    routes = [Route("/api/compare/experiments", table), Route("/api/compare/diff", diff),
              Route("/api/compare/side/{rev}", side), Route("/api/compare/report", report),
              Route("/api/compare/promote/check", promotion(False), methods=["POST"]),
              Route("/api/compare/promote", promotion(True), methods=["POST"])]
    return Page("/compare", "Compare", "compare.html", routes, {"token": token})
