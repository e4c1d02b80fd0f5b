"""Scenes through a verified bundle on CPU (onnxruntime), then the bundle's postprocess chain.

Uses the predict stage's :func:`~geofoundry.predict.run.predict_scene` and the postprocess stage's ``run`` with an
onnxruntime model function: no params.yaml, no checkpoint, no training code.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from ..errors import GeofoundryError
from ..io.folders import writable_folder
from ..predict.arrays import TileModel
from .reader import MODEL, Bundle
from .scene import scene_bands, scene_gsd_m

log = logging.getLogger(__name__)


def onnx_model_fn(model: bytes, n_bands: int, threads: int = 0, source: str | Path = "model.onnx") -> TileModel:
    """(B, C, h, w) raw float32 → (B, K, h, w) probabilities with onnxruntime on CPU (numpy arrays). ``source``
    names the model in errors: one onnxruntime cannot load, or that does not take ``n_bands`` bands."""
    import onnxruntime as ort

    if threads < 0:
        raise GeofoundryError(f"--threads {threads}: give 0 (all cores) or a number of threads")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        detail = " ".join(str(e).split())[:300]
        raise GeofoundryError(f"{source}: onnxruntime cannot load this model ({type(e).__name__}: {detail})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise GeofoundryError(f"{source}: expected one input of shape (batch, bands, height, width), got "
                              f"{[(i.name, i.shape) for i in inputs]}")
    inp = inputs[0]
    if isinstance(inp.shape[1], int) and inp.shape[1] != n_bands:
        raise GeofoundryError(f"{source} takes {inp.shape[1]} bands but stats.json names {n_bands}")

    def fn(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {inp.name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return TileModel(fn)


def predict_bundle(bundle: Bundle, scenes: list[Path], out_dir: Path, bands: list[str] | None = None,
                   threads: int = 0) -> dict:
    """Write ``out_dir/<stem>.tif`` (probabilities) and ``out_dir/<stem>.gpkg`` (objects) for every scene."""
    from .. import postprocess
    from ..predict.run import predict_scene

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
    spec, cfg, chain = bundle.spec, bundle.predict, bundle.postprocess
    model_fn = onnx_model_fn(bundle.model, len(spec.bands), threads, bundle.root / MODEL)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".predict-") as tmp:
        preds, vectors = Path(tmp) / "predictions", Path(tmp) / "vectors"
        preds.mkdir()
        done = []
        for scene in map(Path, scenes):
            names = scene_bands(scene, spec.bands, bands)
            with rasterio.open(scene) as ds:
                gsd = scene_gsd_m(ds)
            log.info("%s: bands %s, gsd %.3f m → model grid %.3f m", scene, names, gsd, spec.gsd_m)
            if predict_scene(str(scene), names, gsd, None, spec, model_fn, cfg, preds / f"{scene.stem}.tif",
                             bundle.outputs):
                done.append(scene.stem)
        summary = postprocess.run(chain, preds, vectors, spec.classes[1:]) if done else {"objects": 0}
        for stem in done:
            os.replace(preds / f"{stem}.tif", out_dir / f"{stem}.tif")
            os.replace(vectors / f"{stem}.gpkg", out_dir / f"{stem}.gpkg")
    return {"scenes": done, "objects": summary["objects"], "bundle_sha256": bundle.digest}
