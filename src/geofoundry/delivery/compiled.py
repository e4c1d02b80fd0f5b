"""A bundle's compiled package (``model.pt2``) as the model function of ``predict --bundle``: loaded from the verified
bytes, run on its device, checked on the first batch against the bundle's ONNX model in ONNX Runtime."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..bundle.manifest import PACKAGE
from ..bundle.reader import Bundle
from ..predict.arrays import TileModel
from ..predict.compiled import checked, package_fn
from ..predict.torch_model import TorchArrays


def compiled_model_fn(bundle: Bundle, onnx: Callable[[np.ndarray], np.ndarray], report: dict,
                      strict: bool) -> TileModel:
    """The package on the device it was compiled for; ``onnx`` (numpy batches on the host) is the reference of the
    first-batch check and, when that fails and not ``strict``, what runs the batches (copied to the host and back)."""
    cfg, arrays = bundle.predict, TorchArrays(torch.device(bundle.compiled["device"]))
    with tempfile.TemporaryDirectory(prefix="geofoundry-compiled-") as tmp:
        path = Path(tmp) / PACKAGE
        path.write_bytes(bundle.files[PACKAGE])  # the verified bytes, not the file on disk
        compiled = package_fn(path, arrays.cuda, arrays.cuda and cfg.cuda_graphs, report)

    def on_host(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(onnx(batch.cpu().numpy())).to(batch.device)

    fn = checked(compiled, on_host, on_host, cfg.compiled_atol, report, strict=strict,
                 names=("ONNX model", "onnx"), setting="the tolerance")
    return TileModel(fn, arrays, [report])
