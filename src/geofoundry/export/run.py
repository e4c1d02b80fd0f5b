"""The export stage: ONNX model with stretch and softmax inside, checked against PyTorch on real val chips, a TensorRT
engine check where TensorRT exists, a package compiled for the GPU where one is present, and the delivery bundle
``export/bundle/``."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..bundle.engine import engine_metrics
from ..config import ExportConfig, PredictConfig
from ..errors import GeofoundryError
from ..io.atomic import write_json
from ..models.checkpoint import load_checkpoint, model_from_checkpoint, output_classes
from ..models.compiled import cached_package
from ..models.deployed import DeployedModel
from ..models.input_spec import InputSpec
from ..models.stretch import raw_chips
from .bundle import write_bundle
from .card import Provenance, build_card
from .delivery import inference_pins
from .onnx_export import export_onnx
from .parity import check_parity

log = logging.getLogger(__name__)


Package = tuple[Path, dict]  # a compiled package and its record


def bundle_package(model: DeployedModel, predict: PredictConfig, enabled: bool) -> tuple[Package | None, dict]:
    """The package compiled for this machine's GPU (the one the predict stage compiled, when cached), and what
    ``metrics/export.json`` records of it: its build target, or why there is none."""
    if not enabled:
        return None, {"built": False, "reason": "export.compiled is false"}
    if not torch.cuda.is_available():
        return None, {"built": False, "reason": "no CUDA GPU here: a package is compiled for the GPU it runs on"}
    try:
        path, record = cached_package(model, predict.tile, predict.batch_size, "cuda")
    except Exception as e:  # noqa: BLE001 - compiling raises many types; the bundle is complete without it
        log.warning("no compiled package in the bundle: compiling failed (%s: %s)", type(e).__name__, e)
        return None, {"built": False, "reason": f"compiling failed ({type(e).__name__}: {e})"}
    return (path, record), {"built": True, **record}


def run(cfg: ExportConfig, chips_dir: Path, model_path: Path, onnx_path: Path, metrics_path: Path,
        bundle_dir: Path, prov: Provenance) -> dict:
    spec = InputSpec.load(chips_dir / "stats.json")
    ckpt = load_checkpoint(model_path, spec.bands)
    outputs = output_classes(ckpt, spec.classes, model_path)
    model = DeployedModel(model_from_checkpoint(ckpt), spec.low, spec.high)
    meta = {"geofoundry.preset": ckpt["preset"], "geofoundry.bands": json.dumps(spec.bands),
            "geofoundry.classes": json.dumps(outputs), "geofoundry.target_classes": json.dumps(spec.classes),
            "geofoundry.auxiliary_classes": json.dumps(outputs[len(spec.classes):]),
            "geofoundry.gsd_m": str(spec.gsd_m)}
    export_onnx(model, len(spec.bands), onnx_path, cfg.opset, meta)
    images = np.load(chips_dir / "val" / "images.npy", mmap_mode="r")
    if len(images) == 0:
        raise GeofoundryError(f"{chips_dir}/val: no chips to check ONNX parity on")
    batch = raw_chips(np.asarray(images[: cfg.parity_chips]), spec.low, spec.high)
    parity = check_parity(model, onnx_path, batch)
    metrics = {"onnx": {**parity, "passed": parity["max_abs_diff"] <= cfg.parity_atol, "opset": cfg.opset,
                        "size_mb": round(onnx_path.stat().st_size / 2**20, 2)}}
    if cfg.tensorrt:
        with tempfile.TemporaryDirectory() as tmp:  # engines are machine-specific: checked here, never shipped
            pred = prov.params.predict
            metrics["tensorrt"] = engine_metrics(onnx_path, spec, pred.tile, pred.batch_size, chips_dir,
                                                 Path(tmp) / "model_fp16.plan")
    else:
        metrics["tensorrt"] = {"built": False, "exercised": False, "reason": "export.tensorrt is false"}
    if metrics["onnx"]["passed"]:
        package, metrics["compiled"] = bundle_package(model, prov.params.predict, cfg.compiled)
        card = build_card(prov, spec, outputs, ckpt["preset"], metrics, inference_pins())
        digest = write_bundle(bundle_dir, onnx_path, spec, outputs, prov.params.postprocess, prov.params.predict,
                              card, cfg.docker_base, package)
        metrics["bundle"] = {"path": str(bundle_dir), "sha256sums_sha256": digest,
                             "git_revision": card["code"]["git_revision"]}
    write_json(metrics_path, metrics)
    if not metrics["onnx"]["passed"]:
        raise GeofoundryError(f"ONNX parity failed: max |Δp| = {parity['max_abs_diff']:.2e} > {cfg.parity_atol}")
    log.info("onnx parity: %s; tensorrt: %s; compiled: %s; bundle: %s", parity, metrics["tensorrt"],
             metrics.get("compiled"), metrics.get("bundle"))
    return metrics
