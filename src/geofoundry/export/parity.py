"""Check the ONNX model against PyTorch with onnxruntime on real chips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ..models.deployed import DeployedModel
from .onnx_export import INPUT


def check_parity(model: DeployedModel, onnx_path: Path, batch: np.ndarray) -> dict[str, float]:
    """Max/mean absolute probability difference and argmax agreement, PyTorch vs onnxruntime (CPU)."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model.eval().cpu()(torch.from_numpy(batch)).numpy()
    got = session.run(None, {INPUT: batch})[0]
    diff = np.abs(expected - got)
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "mask_agreement": float((expected.argmax(1) == got.argmax(1)).mean()), "chips": int(len(batch))}
