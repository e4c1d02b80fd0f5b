"""TensorRT engines from the ONNX model (fp16; int8 with an entropy calibrator over train chips), checked against
onnxruntime on val chips.

Engines are specific to one GPU model and TensorRT version, so bundles carry the ONNX model and ``build_engine.sh``,
never an engine. NOT EXERCISED where it was written (TensorRT could not be installed there): the TensorRT calls follow
the TensorRT 10 Python API but have never run; ``tensorrt_missing`` and its message are what was tested.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import GeofoundryError
from ..io.atomic import atomic_path
from ..models.input_spec import InputSpec

log = logging.getLogger(__name__)
NOT_INSTALLED = "TensorRT is not installed on this machine; run build_engine.sh on the target GPU"
MIN_SIDE = 32


def tensorrt_missing() -> str | None:
    """Why an engine cannot be built here, or None when TensorRT and a CUDA GPU (via torch) are available."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return NOT_INSTALLED
    try:
        import torch
    except ImportError:
        return "TensorRT is installed but torch (used for CUDA buffers) is not"
    return None if torch.cuda.is_available() else "TensorRT is installed but no CUDA GPU is visible"


def load_chips(chips_dir: Path, split: str, n: int, spec: InputSpec) -> np.ndarray:
    """Up to ``n`` chips of ``split`` spread over the set, as raw band values (the model's input)."""
    from ..models.stretch import raw_chips

    path = Path(chips_dir) / split / "images.npy"
    if not path.is_file():
        raise GeofoundryError(f"{path}: no chips (calibration and checks need the preprocess stage's chips)")
    images = np.load(path, mmap_mode="r")
    if len(images) == 0:
        raise GeofoundryError(f"{path}: no chips")
    idx = np.unique(np.linspace(0, len(images) - 1, min(n, len(images))).astype(int))
    return raw_chips(np.asarray(images[idx]), spec.low, spec.high)


def _calibrator(trt, torch, chips: np.ndarray, cache_path: Path | None):
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds one chip per call (explicit-batch network: the calibration profile fixes the shape)."""

        def __init__(self):
            super().__init__()
            self.i, self.buf = 0, None

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.i >= len(chips):
                return None
            self.buf = torch.from_numpy(np.ascontiguousarray(chips[self.i:self.i + 1])).cuda()
            self.i += 1
            return [int(self.buf.data_ptr())]

        def read_calibration_cache(self):
            return None  # always calibrate on the chips given

        def write_calibration_cache(self, cache):
            if cache_path is not None:
                cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_engine(onnx: bytes, n_bands: int, tile: int, batch: int, calib: np.ndarray | None = None,
                 cache_path: Path | None = None) -> bytes:
    """Serialized engine: fp16, plus int8 when calibration chips are given; batch 1..``batch``, sides up to ``tile``."""
    import tensorrt as trt
    import torch

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise GeofoundryError(f"TensorRT cannot parse model.onnx: {errors}")
    name = network.get_input(0).name
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(name, (1, n_bands, MIN_SIDE, MIN_SIDE), (batch, n_bands, tile, tile),
                      (batch, n_bands, tile, tile))
    config.add_optimization_profile(profile)
    if calib is not None:
        config.set_flag(trt.BuilderFlag.INT8)
        shape = (1, *calib.shape[1:])
        calib_profile = builder.create_optimization_profile()
        calib_profile.set_shape(name, shape, shape, shape)
        config.set_calibration_profile(calib_profile)
        config.int8_calibrator = _calibrator(trt, torch, calib, cache_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise GeofoundryError("TensorRT failed to build the engine (its log above says why)")
    return bytes(plan)


def run_engine(plan: bytes, x: np.ndarray, batch: int) -> np.ndarray:
    """Probabilities of raw chips ``x`` (N, C, h, w) through a serialized engine."""
    import tensorrt as trt
    import torch

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inp = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    out = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    ctx, stream, results = engine.create_execution_context(), torch.cuda.Stream(), []
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)).cuda()
        ctx.set_input_shape(inp, tuple(xb.shape))
        yb = torch.empty(tuple(ctx.get_tensor_shape(out)), dtype=torch.float32, device="cuda")
        ctx.set_tensor_address(inp, xb.data_ptr())
        ctx.set_tensor_address(out, yb.data_ptr())
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise GeofoundryError("TensorRT failed to run the engine")
        stream.synchronize()
        results.append(yb.cpu().numpy())
    return np.concatenate(results)


def build_and_check(onnx: bytes, spec: InputSpec, tile: int, batch: int, chips_dir: Path, out_path: Path,
                    int8: bool = False, calib_chips: int = 64, check_chips: int = 16,
                    min_agreement: float = 0.98) -> dict:
    """Build an engine into ``out_path`` and compare its masks with onnxruntime on val chips; metrics as a dict."""
    reason = tensorrt_missing()
    if reason:
        raise GeofoundryError(reason)
    import tensorrt as trt
    import torch

    from .onnx_session import onnx_session

    calib = load_chips(chips_dir, "train", calib_chips, spec) if int8 else None
    cache = out_path.with_suffix(".calibration.cache") if int8 else None
    plan = build_engine(onnx, len(spec.bands), tile, batch, calib, cache)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(plan)
    x = load_chips(chips_dir, "val", check_chips, spec)
    expected, got = onnx_session(onnx, len(spec.bands))(x), run_engine(plan, x, batch)
    agreement = float((expected.argmax(1) == got.argmax(1)).mean())
    metrics = {"built": True, "exercised": True, "precision": "int8" if int8 else "fp16", "engine": str(out_path),
               "tensorrt": trt.__version__, "gpu": torch.cuda.get_device_name(), "chips": int(len(x)),
               "max_abs_diff": float(np.abs(expected - got).max()), "mask_agreement": agreement,
               "passed": agreement >= min_agreement}
    log.info("tensorrt engine: %s", metrics)
    return metrics


def engine_metrics(onnx_path: Path, spec: InputSpec, tile: int, batch: int, chips_dir: Path, out_path: Path) -> dict:
    """What the export stage records: the fp16 build and check, or why it was not done."""
    reason = tensorrt_missing()
    if reason:
        return {"built": False, "exercised": False, "reason": reason}
    try:
        return build_and_check(onnx_path.read_bytes(), spec, tile, batch, chips_dir, out_path)
    except GeofoundryError as e:
        return {"built": False, "exercised": True, "reason": str(e)}
