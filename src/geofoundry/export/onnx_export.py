"""Write the deployed model (raw bands in, probabilities out) to ONNX with dynamic batch, height and width."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from ..bundle.format import INPUT, OUTPUT
from ..io.atomic import atomic_path
from ..models.deployed import DeployedModel


def export_onnx(model: DeployedModel, n_bands: int, path: Path, opset: int, metadata: dict[str, str]) -> None:
    """Legacy TorchScript-based exporter (one self-contained file); metadata goes into the model's properties."""
    model = model.eval().cpu()
    example = torch.rand(1, n_bands, 256, 256) * 255
    dynamic = {INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch", 2: "height", 3: "width"}}
    with atomic_path(path) as tmp:
        torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
