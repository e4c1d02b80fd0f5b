"""Scenes through a verified bundle, then the bundle's postprocess chain.

Uses the predict stage's :func:`~geofoundry.predict.run.predict_scene` and the postprocess stage's ``run`` with the
bundle's ONNX model in onnxruntime on the CPU or, on a GPU it fits, its compiled package (engines:
:func:`~geofoundry.models.engines.bundle_engine`): no params.yaml, no checkpoint, no training code; torch only for
the compiled package.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import rasterio

from ..bundle.onnx_session import onnx_session
from ..bundle.reader import MODEL, POSTPROCESS, Bundle
from ..config import PostprocessConfig
from ..errors import GeofoundryError
from ..io.atomic import temporary_folder
from ..io.folders import writable_folder
from ..io.lock import output_lock
from ..io.read_errors import raster_errors
from ..io.signals import deferred
from ..models.engines import bundle_engine
from ..predict.arrays import TileModel
from .scene import scene_bands, scene_gsd_m

log = logging.getLogger(__name__)


def onnx_model_fn(model: bytes, n_bands: int, threads: int = 0, source: str | Path = "model.onnx") -> TileModel:
    """(B, C, h, w) raw float32 → (B, K, h, w) probabilities with onnxruntime on CPU (numpy arrays). ``source``
    names the model in errors."""
    return TileModel(onnx_session(model, n_bands, threads, source))


def bundle_chain(bundle: Bundle) -> PostprocessConfig:
    """The bundle's postprocess chain, checked: every operation known, with valid parameters, in a workable order."""
    from ..postprocess import build_chain

    cfg = bundle.postprocess
    try:
        build_chain(cfg.steps)
    except GeofoundryError as e:
        raise GeofoundryError(f"{bundle.root / POSTPROCESS}: {e}") from None
    return cfg


def bundle_model_fn(bundle: Bundle, engine: str = "auto", threads: int = 0) -> TileModel:
    """The bundle's model run by ``engine`` (auto, compiled or onnx); the tile model's ``engines`` says which ran
    and why, and the compiled package's first-batch parity."""
    onnx = onnx_model_fn(bundle.model, len(bundle.spec.bands), threads, bundle.root / MODEL)
    chosen, reason = bundle_engine(engine, bundle.compiled, bundle.pinned)
    report = {"model": str(bundle.root), "requested": engine, "engine": chosen}
    if chosen == "compiled":
        from .compiled import compiled_model_fn  # torch only here

        try:
            return compiled_model_fn(bundle, onnx.fn, report, strict=engine == "compiled")
        except Exception as e:  # noqa: BLE001 - loading raises many types; each means no compiled engine
            if engine == "compiled":
                raise GeofoundryError(f"--engine compiled: {bundle.root}/model.pt2 did not load "
                                      f"({type(e).__name__}: {e})") from e
            reason = f"its compiled package did not load ({type(e).__name__}: {e})"
    if reason:
        (log.warning if bundle.compiled else log.info)("%s: %s; running model.onnx in ONNX Runtime on the CPU",
                                                       bundle.root, reason)
        report.update(engine="onnx", reason=reason)
    return TileModel(onnx.fn, onnx.arrays, [report])


def predict_bundle(bundle: Bundle, scenes: list[Path], out_dir: Path, bands: list[str] | None = None,
                   threads: int = 0, engine: str = "auto") -> dict:
    """Write ``out_dir/<stem>.tif`` (probabilities) and ``out_dir/<stem>.gpkg`` (objects) for every scene, with the
    bundle's model run by ``engine`` (:func:`bundle_model_fn`); ``out_dir`` is locked: one run at a time."""
    stems = [Path(s).stem for s in scenes]
    if len(set(stems)) != len(stems):
        raise GeofoundryError(f"scene file names must differ (outputs are named after them): {stems}")
    for scene in scenes:
        if Path(scene).is_dir():
            raise GeofoundryError(f"{scene}: a folder, not a scene file")
        if not Path(scene).is_file():
            raise GeofoundryError(f"{scene}: scene not found")
    if Path(out_dir).resolve().is_relative_to(bundle.root.resolve()):
        raise GeofoundryError(f"{out_dir}: outputs must go outside the bundle {bundle.root} (it must stay unchanged)")
    writable_folder(out_dir, "--out")
    chain = bundle_chain(bundle)
    model_fn = bundle_model_fn(bundle, engine, threads)
    with output_lock(out_dir, recursive=False):  # a failed run removes the folders it made
        out_dir.mkdir(parents=True, exist_ok=True)
        result = _predict(bundle, list(map(Path, scenes)), out_dir, bands, model_fn, chain)
    return {**result, "bundle_sha256": bundle.digest, "engines": model_fn.engines}


def predict_one(bundle: Bundle, scene: str, out_path: Path, bands: list[str] | None, model_fn: TileModel) -> bool:
    """One scene (a file or a GDAL path such as ``/vsicurl/…``) → the probability COG ``out_path``; False when no
    pixel is valid."""
    from ..predict.run import predict_scene

    spec = bundle.spec
    names = scene_bands(scene, spec.bands, bands)
    with raster_errors(scene), rasterio.open(scene) as ds:
        gsd = scene_gsd_m(ds)
    log.info("%s: bands %s, gsd %.3f m → model grid %.3f m", scene, names, gsd, spec.gsd_m)
    return predict_scene(scene, names, gsd, None, spec, model_fn, bundle.predict, out_path, bundle.outputs)


def _predict(bundle: Bundle, scenes: list[Path], out_dir: Path, bands: list[str] | None, model_fn: TileModel,
             chain: PostprocessConfig) -> dict:
    from .. import postprocess

    spec = bundle.spec
    # a hidden temporary folder: a killed run's is removed by the next run into out_dir (io.debris)
    with temporary_folder(out_dir, "predict") as tmp:
        preds, vectors = tmp / "predictions", tmp / "vectors"
        preds.mkdir()
        done = [scene.stem for scene in scenes
                if predict_one(bundle, str(scene), preds / f"{scene.stem}.tif", bands, model_fn)]
        summary = postprocess.run(chain, preds, vectors, spec.classes[1:]) if done else {"objects": 0}
        with deferred():  # every scene's pair of files, or none
            for stem in done:
                os.replace(preds / f"{stem}.tif", out_dir / f"{stem}.tif")
                os.replace(vectors / f"{stem}.gpkg", out_dir / f"{stem}.gpkg")
    return {"scenes": done, "objects": summary["objects"]}
