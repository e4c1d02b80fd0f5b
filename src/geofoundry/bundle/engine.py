"""TensorRT engines from a bundle's ONNX model, built and checked with NVIDIA's own tools.

``trtexec`` builds the fp16 engine; ``polygraphy convert`` builds the int8 one, calibrated on train chips, and
writes the calibration cache that ``build_engine.sh int8`` reuses. ``polygraphy run`` then runs the ONNX model in
onnxruntime and the engine on the same real val chips; their argmax masks must agree. Engines are specific to one GPU
model and TensorRT version, so bundles carry the ONNX model and ``build_engine.sh``, never an engine.

Not exercised on the project's own machines, which have no TensorRT: what is tested there is the command lines,
the message naming the missing tools, and polygraphy's onnxruntime run on saved chips.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..errors import GeofoundryError
from ..io.atomic import atomic_path
from ..models.input_spec import InputSpec
from .format import INPUT, OUTPUT
from .trt_commands import MIN_SIDE, Profile, polygraphy_calibrate, polygraphy_run, trtexec_build

log = logging.getLogger(__name__)

TOOLS = {
    "trtexec": "trtexec (in bin/ of TensorRT's tar and deb packages and of the nvcr.io/nvidia/tensorrt containers; "
               "put it on PATH)",
    "polygraphy": "polygraphy (pip install polygraphy, into this Python environment)",
    "tensorrt": "TensorRT's Python bindings, which polygraphy runs (pip install tensorrt, or the wheel in TensorRT's "
                "tar package)",
}


def tools_missing(path: str | None = None) -> str | None:
    """Why engines cannot be built and checked here (the NVIDIA tools that are missing; ``path`` is the search
    PATH, the environment's by default), or None when all are there."""
    missing = []
    if shutil.which("trtexec", path=path) is None:
        missing.append(TOOLS["trtexec"])
    if shutil.which("polygraphy", path=path) is None or find_spec("polygraphy") is None:
        missing.append(TOOLS["polygraphy"])
    if find_spec("tensorrt") is None:
        missing.append(TOOLS["tensorrt"])
    if not missing:
        return None
    return ("TensorRT tools not found: " + "; ".join(missing) + ". Install them on the target GPU machine, or run "
            "the bundle's build_engine.sh where trtexec is")


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


def save_inputs(path: Path, chips: np.ndarray, batch: int, tile: int) -> None:
    """Chips as polygraphy input data (``--load-inputs``): one feed of up to ``batch`` chips per iteration."""
    from polygraphy.json import save_json

    side = chips.shape[-1]
    if chips.shape[-2] != side or not MIN_SIDE <= side <= tile:
        raise GeofoundryError(f"chips of {chips.shape[-2]}x{side} px do not fit the engine's tiles "
                              f"({MIN_SIDE} to {tile} px square, from predict.yaml)")
    feeds = [{INPUT: np.ascontiguousarray(chips[i:i + batch], dtype=np.float32)} for i in range(0, len(chips), batch)]
    save_json(feeds, str(path), description="inputs")


def load_outputs(path: Path) -> np.ndarray:
    """The model outputs of every iteration saved by ``polygraphy run --save-outputs``, concatenated."""
    from polygraphy.comparator import RunResults

    (_, iterations), = RunResults.load(str(path)).items()
    return np.concatenate([np.asarray(it[OUTPUT]) for it in iterations])


def run_tool(cmd: list[str]) -> None:
    """Run one NVIDIA tool; its output goes to the debug log, or into the error when it fails."""
    log.info("%s", shlex.join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise GeofoundryError(f"{cmd[0]} is not on PATH: {TOOLS.get(cmd[0], cmd[0])}") from None
    log.debug("%s", proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise GeofoundryError(f"{cmd[0]} failed (exit {proc.returncode}): {shlex.join(cmd)}\n{tail}")


def _versions() -> dict[str, str]:
    """TensorRT's and polygraphy's versions and the GPU's name (engines are specific to them)."""
    found = {}
    for dist in ("tensorrt", "polygraphy"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "unknown"
    smi = shutil.which("nvidia-smi")
    names = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                           text=True, check=False).stdout.split("\n") if smi else []
    found["gpu"] = (names[0].strip() or "unknown") if names else "unknown"
    return found


def build_and_check(onnx: bytes, spec: InputSpec, tile: int, batch: int, chips_dir: Path, out_path: Path,
                    int8: bool = False, calib_chips: int = 64, check_chips: int = 16,
                    min_agreement: float = 0.98) -> dict:
    """Build an engine into ``out_path`` (int8: and its calibration cache beside it) and compare its masks with
    onnxruntime on val chips; metrics as a dict."""
    reason = tools_missing()
    if reason:
        raise GeofoundryError(reason)
    profile, out_path = Profile(len(spec.bands), tile, batch), Path(out_path)
    with tempfile.TemporaryDirectory(prefix="geofoundry-engine-") as tmp:
        work = Path(tmp)
        model, val, ref, got = work / "model.onnx", work / "val.json", work / "onnxrt.json", work / "trt.json"
        model.write_bytes(onnx)  # the verified bytes, not the file on disk
        chips = load_chips(chips_dir, "val", check_chips, spec)
        save_inputs(val, chips, batch, tile)
        with atomic_path(out_path) as engine:
            if int8:
                calib = load_chips(chips_dir, "train", calib_chips, spec)
                save_inputs(work / "calib.json", calib, 1, tile)
                with atomic_path(out_path.with_suffix(".calibration.cache")) as cache:  # always a fresh calibration
                    run_tool(polygraphy_calibrate(str(model), str(engine), profile, str(work / "calib.json"),
                                                  str(cache), calib.shape[-1]))
            else:
                run_tool(trtexec_build(str(model), str(engine), profile))
        run_tool(polygraphy_run(str(model), str(val), str(ref), engine=False))
        run_tool(polygraphy_run(str(out_path), str(val), str(got), engine=True))
        expected, result = load_outputs(ref), load_outputs(got)
    if expected.shape != result.shape:
        raise GeofoundryError(f"{out_path}: outputs of shape {result.shape}, onnxruntime's are {expected.shape}")
    agreement = float((expected.argmax(1) == result.argmax(1)).mean())
    metrics = {"built": True, "exercised": True, "precision": "int8" if int8 else "fp16", "engine": str(out_path),
               **_versions(), "chips": len(chips), "max_abs_diff": float(np.abs(expected - result).max()),
               "mask_agreement": agreement, "passed": agreement >= min_agreement}
    log.info("tensorrt engine: %s", metrics)
    return metrics


def engine_metrics(onnx_path: Path, spec: InputSpec, tile: int, batch: int, chips_dir: Path, out_path: Path) -> dict:
    """What the export stage records: the fp16 build and check, or why it was not done."""
    reason = tools_missing()
    if reason:
        return {"built": False, "exercised": False, "reason": reason}
    try:
        return build_and_check(onnx_path.read_bytes(), spec, tile, batch, chips_dir, out_path)
    except GeofoundryError as e:
        return {"built": False, "exercised": True, "reason": str(e)}
