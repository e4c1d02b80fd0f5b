"""Command lines of NVIDIA's TensorRT tools for a bundle's ``model.onnx``: ``trtexec`` builds engines, ``polygraphy``
calibrates int8 engines and runs an engine or onnxruntime on saved inputs. ``geofoundry build-engine`` and the
bundle's ``build_engine.sh`` run the same lines."""

from __future__ import annotations

from dataclasses import dataclass

from .format import INPUT

MIN_SIDE = 32  # smallest tile side the presets accept


@dataclass(frozen=True)
class Profile:
    """The engine's optimisation profile: batches of 1 to ``batch`` tiles of ``bands`` bands, sides ``MIN_SIDE``
    to ``tile`` (the bundle's ``predict.yaml``), tuned for full batches of full tiles."""

    bands: int
    tile: int
    batch: int

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes."""
        full = (self.batch, self.bands, self.tile, self.tile)
        return (1, self.bands, MIN_SIDE, MIN_SIDE), full, full


def _x(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _list(shape: tuple[int, ...]) -> str:
    return f"{INPUT}:[{','.join(map(str, shape))}]"


def trtexec_build(onnx: str, engine: str, profile: Profile, calib: str | None = None) -> list[str]:
    """``trtexec``: an fp16 engine, or fp16 + int8 with the scales of a calibration cache ``calib``; build only."""
    low, opt, high = profile.shapes()
    cmd = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}", f"--minShapes={INPUT}:{_x(low)}",
           f"--optShapes={INPUT}:{_x(opt)}", f"--maxShapes={INPUT}:{_x(high)}", "--fp16"]
    if calib is not None:
        cmd += ["--int8", f"--calib={calib}"]
    return [*cmd, "--skipInference"]


def polygraphy_calibrate(onnx: str, engine: str, profile: Profile, inputs: str, cache: str, side: int) -> list[str]:
    """``polygraphy convert``: an fp16 + int8 engine calibrated on the chips saved in ``inputs`` (one ``side`` px
    chip per iteration), writing the calibration cache ``cache``. Polygraphy calibrates with the last profile, which
    must be static: a second profile of the chips' shape follows the engine's own."""
    low, opt, high = profile.shapes()
    chip = (1, profile.bands, side, side)
    return ["polygraphy", "convert", onnx, "--convert-to", "trt", "-o", engine, "--fp16", "--int8",
            "--load-inputs", inputs, "--calibration-cache", cache,
            "--trt-min-shapes", _list(low), "--trt-opt-shapes", _list(opt), "--trt-max-shapes", _list(high),
            "--trt-min-shapes", _list(chip), "--trt-opt-shapes", _list(chip), "--trt-max-shapes", _list(chip)]


def polygraphy_run(model: str, inputs: str, outputs: str, engine: bool) -> list[str]:
    """``polygraphy run``: a serialized TensorRT engine (``engine``) or the ONNX model in onnxruntime on the inputs
    saved in ``inputs``, saving what it returns to ``outputs``."""
    runner = ["--model-type", "engine", "--trt"] if engine else ["--onnxrt"]
    return ["polygraphy", "run", model, *runner, "--load-inputs", inputs, "--save-outputs", outputs]
