"""The compiled engine on a CUDA GPU (skipped without one; run on the H200): the package's maps equal the eager
forward's within the tolerance it is held to, on a real DEV scene; a bundle carries it and runs it where it fits,
and falls back to ONNX Runtime with the reason where it does not.

Compiling a package takes a minute or two: set ``GEOFOUNDRY_CACHE`` to a folder to reuse it across runs (the
model, tile and batch are those of ``bench/predict.py``'s defaults on the GPU, so it finds the same package)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from geofoundry.bundle import open_bundle
from geofoundry.config import PredictConfig
from geofoundry.delivery.predict import bundle_model_fn
from geofoundry.errors import GeofoundryError
from geofoundry.export.bundle import write_bundle
from geofoundry.export.onnx_export import export_onnx
from geofoundry.models.compiled import cached_package
from geofoundry.models.deployed import DeployedModel
from geofoundry.models.input_spec import InputSpec
from geofoundry.models.registry import build_model
from geofoundry.predict.run import predict_scene
from geofoundry.predict.torch_model import engine_model_fn

from .test_bundle_format import CURRENT, as_json, rewrite

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
RGB = ["red", "green", "blue"]
CFG = PredictConfig(tile=512, overlap=128, batch_size=16, device="cuda")
SCENE = "kampala_ug_z19"


@pytest.fixture(scope="module")
def model() -> DeployedModel:
    torch.manual_seed(0)
    return DeployedModel(build_model("unet", 3, 2), [0.0] * 3, [255.0] * 3).eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return Path(os.environ["GEOFOUNDRY_CACHE"]) if os.environ.get("GEOFOUNDRY_CACHE") else tmp_path_factory.mktemp("c")


@pytest.fixture(scope="module")
def scene(dev_root) -> tuple[str, InputSpec, float]:
    row = pd.read_csv(dev_root / "scenes.csv").set_index("scene_id").loc[SCENE]
    spec = InputSpec(bands=RGB, gsd_m=float(row["gsd_m"]), source_dtype="uint8", low=[0.0] * 3, high=[255.0] * 3,
                     classes=["background", "building"], class_paths=[None, "structure/building"])
    return str(dev_root / row["image"]), spec, float(row["gsd_m"])


def predict_map(scene, fn, path: Path) -> tuple[np.ndarray, np.ndarray]:
    image, spec, gsd = scene
    assert predict_scene(image, RGB, gsd, None, spec, fn, CFG, path)
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask()


def test_compiled_maps_equal_eager_within_the_tolerance_on_a_dev_scene(model, cache, scene, tmp_path):
    compiled = engine_model_fn(copy.deepcopy(model), CFG.model_copy(update={"engine": "compiled"}), cache)
    eager = engine_model_fn(copy.deepcopy(model), CFG.model_copy(update={"engine": "eager"}), cache)
    (a, ma), (b, mb) = predict_map(scene, compiled, tmp_path / "c.tif"), predict_map(scene, eager, tmp_path / "e.tif")
    report, = compiled.engines
    parity, name = report["parity"], torch.cuda.get_device_name()
    assert report["engine"] == "compiled" and parity["passed"] and parity["tiles"] == CFG.batch_size
    assert report["package"]["device"] == "cuda" and report["package"]["gpu"] == name
    assert report["package"]["precision"] == "bfloat16" and report["package"]["tile"] == CFG.tile
    diff = np.abs(a.astype(int) - b.astype(int))[:, ma > 0]
    print(f"\n{name}: first batch max |Δp| {parity['max_abs_diff']:.4f} against the float32 model "
          f"(tolerance {CFG.compiled_atol}); maps against eager bf16: max {diff.max()}/255, mean {diff.mean():.3f}/255, "
          f"99.9th percentile {np.percentile(diff, 99.9)}/255; package compiled in {report['package']['compile_seconds']}"
          " s")
    assert np.array_equal(ma, mb) and ma.any()
    assert parity["max_abs_diff"] <= CFG.compiled_atol and diff.max() <= round(255 * CFG.compiled_atol) + 1
    assert diff.mean() < 1.0


@pytest.fixture(scope="module")
def gpu_bundle(tmp_path_factory, model, cache, scene) -> Path:
    """A bundle as the export writes it on this GPU: ONNX and the package of the same model."""
    out = tmp_path_factory.mktemp("export")
    kept = open_bundle(CURRENT)
    export_onnx(copy.deepcopy(model).cpu(), 3, out / "model.onnx", 17, {})
    package = cached_package(model, CFG.tile, CFG.batch_size, "cuda", cache)
    write_bundle(out / "bundle", out / "model.onnx", scene[1], kept.outputs, kept.postprocess, CFG, kept.card,
                 "python:3.11-slim", package)
    return out / "bundle"


def test_a_bundle_runs_its_package_where_it_fits(gpu_bundle, scene, tmp_path):
    pinned = open_bundle(gpu_bundle, open_bundle(gpu_bundle).digest)
    fn = bundle_model_fn(pinned, "auto")
    _, mask = predict_map(scene, fn, tmp_path / "b.tif")
    report, = fn.engines
    print(f"\nbundle: {report['engine']} engine, first batch max |Δp| {report['parity']['max_abs_diff']:.4f} "
          f"against the ONNX model (onnxruntime, CPU), CUDA graphs: {report['cuda_graphs']}")
    assert report["engine"] == "compiled" and report["parity"]["passed"] and mask.any()


@pytest.mark.parametrize("field, value", [("capability", "8.0"), ("torch", "2.10.0+cu128")])
def test_a_mismatched_package_falls_back_with_the_message(gpu_bundle, tmp_path, caplog, field, value):
    odd = shutil.copytree(gpu_bundle, tmp_path / "bundle")
    record = json.loads((odd / "compiled.json").read_text())
    rewrite(odd, {"compiled.json": as_json({**record, field: value})})
    fn = bundle_model_fn(open_bundle(odd, open_bundle(odd).digest), "auto")
    report, = fn.engines
    assert report["engine"] == "onnx" and report["reason"].startswith("its compiled package does not fit this "
                                                                      "machine: it was compiled for ")
    assert f"{field} {value}" in report["reason"].replace("compute capability", "capability")
    assert f"{report['reason']}; running model.onnx in ONNX Runtime on the CPU" in caplog.text
    with pytest.raises(GeofoundryError, match=re.escape(f"--engine compiled: {report['reason']}")):
        bundle_model_fn(open_bundle(odd), "compiled")
