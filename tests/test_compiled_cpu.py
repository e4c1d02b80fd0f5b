"""The compiled engine for real on the CPU: an AOTInductor package compiled here (float32) is cached, shipped in a
bundle by the export's writer, run by `geofoundry predict --bundle --engine compiled` and by the predict stage on a
real DEV crop, checked on the first batch, refused or set aside with the reason where it does not fit.

GPU packages are compiled the same way (bf16, on the GPU): ``tests/test_compiled_gpu.py``."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import segmentation_models_pytorch as smp
import torch

from geofoundry.bundle import open_bundle
from geofoundry.config import PredictConfig
from geofoundry.delivery.predict import bundle_model_fn
from geofoundry.delivery.scene import scene_gsd_m
from geofoundry.errors import GeofoundryError
from geofoundry.export.bundle import write_bundle
from geofoundry.export.onnx_export import export_onnx
from geofoundry.models.compat import make_exportable
from geofoundry.models.compiled import PackageLoadError, cached_package, probe_package
from geofoundry.models.deployed import DeployedModel
from geofoundry.models.engines import machine
from geofoundry.predict.compiled import checked, loaded, package_fn
from geofoundry.predict.run import predict_scene
from geofoundry.predict.torch_model import engine_model_fn, torch_model_fn

from .project import env
from .test_bundle_format import CURRENT, as_json, dev_crop, rewrite  # noqa: F401 - dev_crop: a fixture

pytestmark = pytest.mark.slow  # compiling a package takes minutes on two cores
PREDICT = PredictConfig(tile=256, overlap=32, batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def model() -> DeployedModel:
    """A small real U-Net (MobileNet-V2 encoder cut after stride 8) with seeded weights, with the kept bundle's
    stretch."""
    torch.manual_seed(0)
    net = make_exportable(smp.create_model("Unet", encoder_name="mobilenet_v2", encoder_weights=None, in_channels=3,
                                           classes=2, encoder_depth=3, decoder_channels=(32, 16, 8)))
    spec = open_bundle(CURRENT).spec
    return DeployedModel(net, spec.low, spec.high).eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory, model) -> Path:
    """A package cache holding the model's CPU package (compiled once for the module)."""
    folder = tmp_path_factory.mktemp("cache")
    cached_package(model, PREDICT.tile, PREDICT.batch_size, "cpu", folder)
    return folder


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, model, cache) -> Path:
    """A bundle as the export writes it on a machine with a package: the kept bundle's contracts, this model."""
    out = tmp_path_factory.mktemp("export")
    kept = open_bundle(CURRENT)
    export_onnx(model, 3, out / "model.onnx", 17, {})
    package = cached_package(model, PREDICT.tile, PREDICT.batch_size, "cpu", cache)
    write_bundle(out / "bundle", out / "model.onnx", kept.spec, kept.outputs, kept.postprocess, kept.predict,
                 kept.card, "python:3.11-slim", package)
    return out / "bundle"


def predict_cli(bundle: Path, scene: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geofoundry", "predict", "--bundle", str(bundle), str(scene),
                           "--out", str(out), *args], env=env(), capture_output=True, text=True)


def gsd(scene: Path) -> float:
    with rasterio.open(scene) as ds:
        return scene_gsd_m(ds)


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask()


def test_a_package_is_compiled_once_and_shipped_with_its_record(model, cache, bundle):
    path, record = cached_package(copy.deepcopy(model), PREDICT.tile, PREDICT.batch_size, "cpu", cache)
    assert list(cache.rglob("*.pt2")) == [path], "found in the cache, not compiled again"
    here = machine("cpu")
    assert record == {**here, "precision": "float32", "bands": 3, "tile": 256, "max_batch": 4, "recipe": 1,
                      "compile_seconds": record["compile_seconds"]}
    assert {"model.pt2", "compiled.json"} <= {p.name for p in bundle.iterdir()}
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=bundle, check=True)
    assert (bundle / "model.pt2").read_bytes() == path.read_bytes()
    assert open_bundle(bundle).compiled == record


def test_predict_bundle_with_the_compiled_engine_matches_onnx(bundle, dev_crop, tmp_path):  # noqa: F811
    runs = {e: predict_cli(bundle, dev_crop, tmp_path / e, "--engine", e) for e in ("compiled", "onnx")}
    for proc in runs.values():
        assert proc.returncode == 0, proc.stderr[-3000:]
    said = {e: " ".join(proc.stderr.split()) for e, proc in runs.items()}
    assert "(compiled engine, max |Δp|" in said["compiled"] and "against the ONNX model)" in said["compiled"]
    assert "(onnx engine)" in said["onnx"]
    (a, ma), (b, mb) = (read(tmp_path / e / "kampala_crop.tif") for e in runs)
    assert np.array_equal(ma, mb) and ma.any() and np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.ptp(a[:, ma > 0]) > 0  # a map, not a constant (random weights: near p = 0.5)


def test_auto_loads_the_package_only_from_a_pinned_bundle_for_a_gpu(bundle, caplog):
    unpinned = bundle_model_fn(open_bundle(bundle), "auto")
    assert unpinned.engines == [{"model": str(bundle), "requested": "auto", "engine": "onnx", "reason": (
        "its compiled package (model.pt2, machine code) is loaded only from a bundle pinned with --sha256, or with "
        "--engine compiled")}]
    pinned = bundle_model_fn(open_bundle(bundle, open_bundle(bundle).digest), "auto")
    assert pinned.engines[0]["engine"] == "onnx" and pinned.engines[0]["reason"].endswith("(auto uses GPU packages only)")
    assert "running model.onnx in ONNX Runtime on the CPU" in caplog.text


def test_a_package_that_does_not_fit_falls_back_or_stops_with_the_reason(bundle, tmp_path, caplog):
    """A bundle exported on an H200 and delivered to a CPU machine; and a CPU package for another torch."""
    gpu = shutil.copytree(bundle, tmp_path / "gpu")
    record = json.loads((gpu / "compiled.json").read_text())
    h200 = {"device": "cuda", "gpu": "NVIDIA H200", "capability": "9.0", "torch": record["torch"], "cuda": "13.0"}
    rewrite(gpu, {"compiled.json": as_json({k: v for k, v in {**record, **h200}.items() if k != "cpu"})})
    auto = bundle_model_fn(open_bundle(gpu, open_bundle(gpu).digest), "auto")
    reason = ("its compiled package does not fit this machine: it was compiled for NVIDIA H200 (compute capability "
              f"9.0, CUDA 13.0), torch {record['torch']}; torch has no cuda device on this machine")
    assert auto.engines[0]["engine"] == "onnx" and auto.engines[0]["reason"] == reason
    assert [r.levelname for r in caplog.records] == ["WARNING"] and reason in caplog.text
    with pytest.raises(GeofoundryError, match=re.escape(f"--engine compiled: {reason}")):
        bundle_model_fn(open_bundle(gpu), "compiled")
    old = shutil.copytree(bundle, tmp_path / "old")
    rewrite(old, {"compiled.json": as_json({**record, "torch": "0.0.0"})})
    with pytest.raises(GeofoundryError, match=re.escape(f"it was compiled for {record['cpu']} CPU, torch 0.0.0; this "
                                                        f"machine has {record['cpu']} CPU, torch {record['torch']}")):
        bundle_model_fn(open_bundle(old), "compiled")


def test_the_stage_s_compiled_engine_matches_eager(model, cache, dev_crop, tmp_path):  # noqa: F811
    spec = open_bundle(CURRENT).spec
    cfg = PREDICT.model_copy(update={"engine": "compiled"})
    compiled = engine_model_fn(copy.deepcopy(model), cfg, cache)
    maps = []
    for name, fn in (("compiled", compiled), ("eager", torch_model_fn(copy.deepcopy(model), "cpu"))):
        assert predict_scene(str(dev_crop), spec.bands, gsd(dev_crop), None, spec, fn, cfg, tmp_path / f"{name}.tif")
        maps.append(read(tmp_path / f"{name}.tif"))
    (a, ma), (b, mb) = maps
    assert np.array_equal(ma, mb) and np.abs(a.astype(int) - b.astype(int)).max() <= 1
    report, = compiled.engines
    assert report["engine"] == "compiled" and report["requested"] == "compiled" and report["device"] == "cpu"
    assert report["cuda_graphs"] is False
    assert report["parity"]["passed"] and report["parity"]["max_abs_diff"] < 1e-4 and 1 <= report["parity"]["tiles"] <= 4
    assert report["package"]["path"].startswith(str(cache)) and report["package"]["tile"] == 256


def test_a_first_batch_beyond_the_tolerance_stops_or_falls_back(model, cache, dev_crop, tmp_path):  # noqa: F811
    spec = open_bundle(CURRENT).spec
    strict = PREDICT.model_copy(update={"engine": "compiled", "compiled_atol": 1e-12})
    with pytest.raises(GeofoundryError, match=r"compiled engine: the compiled package's probabilities differ from "
                                              r"the float32 eager model's by up to .* on the first batch, more than "
                                              r"predict.compiled_atol \(1e-12\)"):
        predict_scene(str(dev_crop), spec.bands, gsd(dev_crop), None, spec,
                      engine_model_fn(copy.deepcopy(model), strict, cache), strict, tmp_path / "p.tif")
    assert not list(tmp_path.iterdir()), "nothing half-written"
    path, _ = cached_package(model, PREDICT.tile, PREDICT.batch_size, "cpu", cache)
    eager = torch_model_fn(copy.deepcopy(model), "cpu")
    report: dict = {}
    fn = checked(package_fn(path, False, False, report), model, eager.fn, 1e-12, report, strict=False,
                 names=("float32 eager model", "eager"), setting="predict.compiled_atol")
    batch = torch.rand(3, 3, 256, 256) * 255
    with torch.inference_mode():
        assert torch.equal(fn(batch), eager.fn(batch)) and torch.equal(fn(batch), eager.fn(batch))
    assert report["engine"] == "eager" and not report["parity"]["passed"]
    assert report["reason"].startswith("the compiled package's probabilities differ from the float32 eager model's")


def test_a_package_that_does_not_load_in_a_separate_process_is_set_aside(model, cache, dev_crop, tmp_path):  # noqa: F811
    """Loading runs first in a child process: a package that ends it (some torch builds crash there) is refused or
    set aside, and this process lives on."""
    path, _ = cached_package(model, PREDICT.tile, PREDICT.batch_size, "cpu", cache)
    broken = shutil.copytree(cache, tmp_path / "cache")
    bad = broken / "compiled" / path.name
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(PackageLoadError, match=rf"loading {path.name} in a separate process ended with exit status 1: "):
        probe_package(bad)
    cfg = PREDICT.model_copy(update={"engine": "compiled"})
    with pytest.raises(GeofoundryError, match=r"predict.engine: compiled: model: could not compile or load it for cpu "
                                              r"\(PackageLoadError: loading .* in a separate process ended with"):
        engine_model_fn(copy.deepcopy(model), cfg, broken)


def test_graph_runner_that_does_not_load_falls_back_to_the_synchronised_one(model, cache, tmp_path, caplog):
    """Where CUDA graphs would capture the package, the runner without thread synchronisation is loaded; where that
    one fails to load, the synchronised runner is tried (without graphs), and a package that neither loads is refused."""
    path, _ = cached_package(model, PREDICT.tile, PREDICT.batch_size, "cpu", cache)
    with torch.inference_mode():
        for graphs in (True, False):
            run, graphed = loaded(path, graphs)
            assert graphed is graphs and run(torch.rand(1, 3, 256, 256) * 255).shape == (1, 2, 256, 256)
    bad = tmp_path / path.name
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PackageLoadError, match=r"ended with exit status 1"):
        loaded(bad, True)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "loading its synchronised runner instead, without CUDA graphs" in warned[0]
