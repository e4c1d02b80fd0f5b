"""ONNX export of the deployed model: dynamic shapes, parity with PyTorch on real chips."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from geofoundry import export
from geofoundry.config import ExportConfig


def test_export_stage_parity_and_dynamic_shapes(chips_dir, tiny_model, tmp_path):
    onnx_path, metrics_path = tmp_path / "model.onnx", tmp_path / "export.json"
    metrics = export.run(ExportConfig(parity_chips=4), chips_dir, tiny_model, onnx_path, metrics_path)
    assert metrics["onnx"]["passed"] and metrics["onnx"]["max_abs_diff"] < 1e-3
    assert metrics["onnx"]["mask_agreement"] > 0.999
    assert json.loads(metrics_path.read_text()) == metrics
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 96, 160), (3, 3, 64, 64)]:
        probs = session.run(None, {"raw": np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)})[0]
        assert probs.shape == (shape[0], 2, *shape[2:])
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
