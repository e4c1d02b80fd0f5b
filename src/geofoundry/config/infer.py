"""Sections of the stages after training: predict, postprocess, evaluate and export."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..choices import POSTPROCESS_OPS, unknown_op
from .base import MAX_BATCH, MAX_SIDE_PX, Codec, Device, Section, TtaMode, check_batch_pixels


class EnsembleMember(Section):
    path: str = Field(description="checkpoint (.pt) of another trained model with the same bands and classes")
    weight: float = Field(1.0, gt=0)


class PredictConfig(Section):
    tile: int = Field(512, ge=32, le=MAX_SIDE_PX)
    overlap: int = Field(128, ge=0, description="pixels shared by neighbouring tiles, blended with linear ramps")
    batch_size: int = Field(4, ge=1, le=MAX_BATCH)
    device: Device = "auto"
    tta: TtaMode = Field("none", description="test-time augmentation, averaged")
    ensemble: list[EnsembleMember] = Field([], description="models averaged with models/best.pt (weight 1)")
    geofence: str | None = Field(None, description="limit prediction to this area: WKT (EPSG:4326) or a vector file")
    overviews: bool = Field(True, description="internal overviews in the probability COG, for viewing; building them "
                                              "is most of the time left after inference on very large scenes")
    compress: Codec = Field("zstd", description="probability COG codec (level 1): zstd writes faster; deflate for "
                                                "readers without zstd")
    cuda_graphs: bool = Field(True, description="CUDA: replay the model's forward from a CUDA graph per batch shape "
                                                "(one launch per batch; costs GPU memory per shape)")
    engine: Literal["auto", "eager", "compiled", "onnx"] = Field(
        "auto", description="what runs the model: eager PyTorch, a compiled AOTInductor package, or ONNX Runtime "
                            "(bundles); auto = compiled on a GPU, else eager (stage) or onnx (bundles)")
    compiled_atol: float = Field(0.1, gt=0, le=1, description="compiled engine: largest |Δp| against the float32 "
                                                              "model on the first batch; beyond it, auto falls back")

    @model_validator(mode="after")
    def _overlap_fits(self) -> PredictConfig:
        if self.overlap * 2 > self.tile:
            raise ValueError(f"overlap ({self.overlap}) must be at most half the tile ({self.tile})")
        check_batch_pixels(self.tile, self.batch_size, "tile × batch_size")
        return self


class PostprocessConfig(Section):
    """A chain of registered operations: each item is ``{name: {param: value}}``."""

    steps: list[dict[str, dict[str, Any] | None]] = Field(
        [{"threshold": {"value": 0.5}}, {"open": {"radius_px": 2}}, {"fill_holes": {"max_area_m2": 10.0}},
         {"polygonize": {}}, {"simplify": {"tolerance_m": 0.3}}, {"min_area": {"area_m2": 10.0}}], min_length=1)
    window_px: int = Field(4096, ge=0, le=65536,
                           description="scenes larger than this run the raster part of the chain by windows of this "
                                       "side (bounded memory); 0 = whole scenes")
    halo_px: int = Field(256, ge=0, le=MAX_SIDE_PX,
                         description="pixels read around each window; wider than the largest object")
    workers: int = Field(2, ge=1, le=256,
                         description="windows post-processed at once (threads), each holding one window")

    @field_validator("steps")
    @classmethod
    def _one_op_per_item(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, item in enumerate(v):
            if len(item) != 1:
                raise ValueError(f"step {i} must have exactly one operation name, got {list(item)}")
            [name] = item
            if name not in POSTPROCESS_OPS:
                raise ValueError(f"step {i}: {unknown_op(name)}")
        return v


class EvaluateConfig(Section):
    iou_threshold: float = Field(0.5, gt=0, le=1)
    min_area_m2: float = Field(0.0, ge=0, description="truth and predictions smaller than this are left out")


class ExportConfig(Section):
    opset: int = Field(17, ge=13)
    parity_chips: int = Field(16, ge=1, le=10_000)
    parity_atol: float = Field(1e-3, gt=0)
    tensorrt: bool = Field(True, description="build and check an fp16 engine when TensorRT and a GPU are present")
    compiled: bool = Field(True, description="put an AOTInductor package compiled for this GPU in the bundle when "
                                             "a GPU is present (predict.engine: compiled)")
    docker_base: str = Field("python:3.11-slim", min_length=1, description="base image of the bundle's Dockerfile")
