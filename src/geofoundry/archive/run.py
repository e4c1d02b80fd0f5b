"""A bundle over an archive: each rank predicts its share of the scenes one by one (skipping those a previous run
finished), records each as it finishes, and goes on past a scene that fails; rank 0 then merges every finished
scene's objects into one GeoPackage, writes the STAC catalog and the run's summary (``run.json``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from pathlib import Path

import rasterio

from .. import postprocess
from ..bundle.reader import Bundle
from ..delivery.predict import bundle_chain, bundle_model_fn, predict_one
from ..delivery.scene import scene_gsd_m
from ..errors import GeofoundryError
from ..io.atomic import temporary_folder, write_json
from ..io.folders import writable_folder
from ..io.lock import output_lock
from ..io.signals import deferred
from ..predict.ranks import Group, balance, join, launched, leave, pin
from ..progress import task
from .identity import identity
from .merge import merge
from .records import append_record, is_finished, read_records
from .sources import Scene
from .stac import write_catalog

log = logging.getLogger(__name__)
SCENES = "scenes"  # <out>/scenes/<name>.tif, .gpkg


def predict_archive(bundle: Bundle, scenes: list[Scene], out: Path, bands: list[str] | None = None,
                    threads: int = 0, engine: str = "auto", iou: float = 0.5) -> dict:
    """Predict ``scenes`` into ``out`` (module docstring) on this rank; the run's summary on rank 0 (``failed``
    lists the scenes that failed on any rank), this rank's on the others."""
    if Path(out).resolve().is_relative_to(bundle.root.resolve()):
        raise GeofoundryError(f"{out}: outputs must go outside the bundle {bundle.root} (it must stay unchanged)")
    group = launched()
    chain = bundle_chain(bundle)
    if group.world > 1 and not threads:
        threads = max(1, (os.cpu_count() or 1) // group.local_world)  # the host's cores shared by its ranks
    pin(group)
    model_fn = bundle_model_fn(bundle, engine, threads)
    joined = join(group, model_fn.engines[0]["engine"] == "compiled")
    try:
        with contextlib.ExitStack() as held:
            refusal = None
            if group.main:
                try:
                    writable_folder(out, "--out")
                    held.enter_context(output_lock(out, recursive=False))
                    (out / SCENES).mkdir(parents=True, exist_ok=True)
                except GeofoundryError as e:
                    refusal = str(e)
            refusal = next((r for r in group.gather(refusal) if r), None)
            if refusal:
                raise GeofoundryError(refusal)
            mine = _share(bundle, scenes, group)
            ran = _predict(bundle, mine, out, bands, model_fn, chain, group)
            every = [r for part in group.gather(ran) for r in part]
            summary = (_finish(bundle, scenes, out, every, iou) if group.main else
                       {"scenes": ran, "failed": [s for s in every if s["status"] == "failed"]})
    finally:
        leave(joined)
    return {**summary, "engines": model_fn.engines, "rank": group.rank, "world": group.world}


def _area(scene: Scene, gsd_m: float) -> float:
    """Pixels of the scene on the model grid (0 when it cannot be read: it fails where it is predicted)."""
    try:
        with rasterio.open(scene.path) as ds:
            return ds.width * ds.height * (scene_gsd_m(ds) / gsd_m) ** 2
    except Exception:  # noqa: BLE001 - any failure is reported by the rank that predicts the scene
        return 0.0


def _share(bundle: Bundle, scenes: list[Scene], group: Group) -> list[Scene]:
    if group.world == 1:
        return scenes
    areas = [_area(s, bundle.spec.gsd_m) for s in scenes]
    return [scenes[i] for i in balance(areas, group.world)[group.rank]]


def _predict(bundle: Bundle, scenes: list[Scene], out: Path, bands, model_fn, chain, group: Group) -> list[dict]:
    """This rank's scenes: each skipped (finished before), predicted, or failed; one status dict per scene."""
    records = read_records(out)
    statuses = []
    with task("scenes", len(scenes), enabled=group.main) as bar, temporary_folder(out, "archive") as tmp:
        for scene in scenes:
            start = time.monotonic()
            try:
                status = _scene(bundle, scene, out, tmp, bands, model_fn, chain, records.get(scene.name), group)
            except Exception as e:  # noqa: BLE001 - one scene's failure, whatever it is, must not stop the others
                why = str(e) if isinstance(e, GeofoundryError) else f"{type(e).__name__}: {e}"
                log.error("%s: failed: %s", scene.name, why)
                status = {"name": scene.name, "source": scene.path, "status": "failed", "error": why}
            status["seconds"] = round(time.monotonic() - start, 3)
            statuses.append(status)
            bar.advance(info=f"{scene.name}: {status['status']}")
    return statuses


def _scene(bundle: Bundle, scene: Scene, out: Path, tmp: Path, bands, model_fn, chain, record: dict | None,
           group: Group) -> dict:
    ident = identity(scene.path)
    if is_finished(record, scene.path, ident, bundle.digest, out):
        log.info("%s: finished before with this bundle; skipped", scene.name)
        return {**record, "status": "skipped"}
    work = tmp / scene.name
    preds, vectors = work / "predictions", work / "vectors"
    preds.mkdir(parents=True)
    outputs = []
    objects = 0
    if predict_one(bundle, scene.path, preds / f"{scene.name}.tif", bands, model_fn):
        objects = postprocess.run(chain, preds, vectors, bundle.spec.classes[1:])["objects"]
        outputs = [f"{SCENES}/{scene.name}.tif", f"{SCENES}/{scene.name}.gpkg"]
    record = {"name": scene.name, "source": scene.path, "identity": ident, "bundle_sha256": bundle.digest,
              "outputs": outputs, "objects": objects, "status": "predicted" if outputs else "empty",
              "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"), "rank": group.rank}
    with deferred():  # the pair of files, then the record: a scene is finished only with both in place
        for name, folder in (("tif", preds), ("gpkg", vectors)):
            if outputs:
                os.replace(folder / f"{scene.name}.{name}", out / SCENES / f"{scene.name}.{name}")
        append_record(out, group.rank, record)
    return record


def _finish(bundle: Bundle, scenes: list[Scene], out: Path, statuses: list[dict], iou: float) -> dict:
    by_name = {s["name"]: s for s in statuses}
    done = [(scene, out / SCENES / f"{scene.name}.tif", out / SCENES / f"{scene.name}.gpkg") for scene in scenes
            if by_name.get(scene.name, {}).get("status") in ("predicted", "skipped")
            and by_name[scene.name]["outputs"]]
    merged = merge({scene.name: gpkg for scene, _, gpkg in done}, out / "objects.gpkg", iou)
    when = dt.datetime.now(dt.timezone.utc)
    catalog = write_catalog(out / "stac", bundle, done, when)
    failed = [s for s in statuses if s["status"] == "failed"]
    summary = {"bundle_sha256": bundle.digest, "scenes": [by_name[s.name] for s in scenes if s.name in by_name],
               "failed": failed, "objects": merged["objects"], "duplicates_removed": merged["duplicates"],
               "dedup_iou": iou, "catalog": str(catalog.relative_to(out)), "finished": when.isoformat()}
    write_json(out / "run.json", summary)
    return summary
