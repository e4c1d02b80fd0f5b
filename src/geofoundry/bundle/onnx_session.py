"""The bundle's ONNX model in an onnxruntime CPU session, as a function of numpy batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import GeofoundryError


def onnx_session(model: bytes, n_bands: int, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """(B, C, h, w) raw float32 → (B, K, h, w) probabilities with onnxruntime on CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    if isinstance(inp.shape[1], int) and inp.shape[1] != n_bands:
        raise GeofoundryError(f"model.onnx takes {inp.shape[1]} bands but stats.json names {n_bands}")

    def fn(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {inp.name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return fn
