"""The bundle's ONNX model in an onnxruntime CPU session, as a function of numpy batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import GeofoundryError


def onnx_session(model: bytes, n_bands: int, threads: int = 0,
                 source: str | Path = "model.onnx") -> Callable[[np.ndarray], np.ndarray]:
    """(B, C, h, w) raw float32 → (B, K, h, w) probabilities with onnxruntime on CPU. ``source`` names the model in
    errors: one onnxruntime cannot load, or that does not take ``n_bands`` bands."""
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

    return fn
