"""Typed, validated configuration: one pydantic model per ``params.yaml`` section.

Library code takes these objects; only ``stages/`` and the CLI read ``params.yaml`` (see :mod:`geofoundry.params`).
Every model forbids unknown keys, so a typo fails with a message that names the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_CLASS_DEPTH = 4


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_class_path(path: str) -> str:
    """Validate a slash-separated class path of 1–4 levels, e.g. ``structure/building``."""
    parts = path.strip("/").split("/")
    if not path or any(not p for p in parts):
        raise ValueError(f"class path {path!r} is empty or has an empty level")
    if len(parts) > MAX_CLASS_DEPTH:
        raise ValueError(
            f"class path {path!r} has {len(parts)} levels; at most {MAX_CLASS_DEPTH} are supported"
        )
    return "/".join(parts)


class SplitConfig(Section):
    """Geographic block split: blocks are cells of a global EPSG:3857 grid, assigned once for every scene."""

    block_size_m: float = Field(150.0, gt=0, description="grid cell size in EPSG:3857 metres")
    fractions: dict[Literal["train", "val", "test"], float] = {"train": 0.7, "val": 0.15, "test": 0.15}
    seed: int = 0

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != {"train", "val", "test"}:
            raise ValueError("fractions needs train, val and test")
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1) > 1e-6:
            raise ValueError(f"fractions must be >= 0 and sum to 1, got {v}")
        return v


class SelectConfig(Section):
    """Which scenes and classes to use, and how to split them."""

    classes: list[str] = Field(["structure/building"], min_length=1, description="class path prefixes = targets")
    sites: list[str] = []
    sensors: list[str] = []
    gsd_range: tuple[float, float] = (0.0, 1e9)
    min_valid_frac: float = Field(0.0, ge=0, le=1)
    split: SplitConfig = SplitConfig()

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, v: list[str]) -> list[str]:
        return [check_class_path(p) for p in v]


class StretchConfig(Section):
    """Per-band percentile stretch to 8 bit, computed on train-split valid pixels."""

    low_pct: float = Field(0.5, ge=0, lt=100)
    high_pct: float = Field(99.5, gt=0, le=100)
    sample_pixels: int = Field(2_000_000, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> StretchConfig:
        if self.low_pct >= self.high_pct:
            raise ValueError("low_pct must be below high_pct")
        return self


class ChipConfig(Section):
    size: int = Field(256, ge=32)
    stride: int = Field(192, ge=8)
    min_valid_frac: float = Field(0.25, ge=0, le=1)


class PreprocessConfig(Section):
    bands: list[str] = Field(["red", "green", "blue"], min_length=1)
    gsd_m: float = Field(0.3, gt=0)
    resampling: Literal["nearest", "bilinear", "cubic", "average", "lanczos"] = "bilinear"
    stretch: StretchConfig = StretchConfig()
    chip: ChipConfig = ChipConfig()
    ignore_index: int = Field(255, ge=0, le=255)


LOSSES = ("ce", "dice", "focal", "lovasz", "tversky")


class TrainConfig(Section):
    epochs: int = Field(12, ge=1)
    samples_per_epoch: int = Field(1024, ge=1, description="chips drawn per epoch (positives oversampled)")
    positive_fraction: float = Field(0.5, ge=0, le=1, description="share of drawn chips that hold a target")
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1, description="batches per optimiser step")
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    loss: dict[str, float] = Field({"ce": 1.0, "dice": 1.0}, description="loss name -> weight")
    augment: list[dict[str, dict[str, Any] | None]] = Field(
        [{"D4": {"p": 1.0}}, {"RandomBrightnessContrast": {"p": 0.3}}],
        description="albumentations transforms by class name with their arguments, applied to image and mask")
    monitor: Literal["val/iou", "val/object_f1"] = "val/iou"
    patience: int = Field(0, ge=0, description="stop after this many epochs without improvement; 0 = never")
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0, description="torch CPU threads, 0 = all cores")

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(LOSSES)
        if unknown or not v:
            raise ValueError(f"unknown loss {sorted(unknown)}; choose from {list(LOSSES)}")
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("loss weights must be >= 0 with a positive sum")
        return v


class PredictConfig(Section):
    tile: int = Field(512, ge=32)
    overlap: int = Field(128, ge=0)
    batch_size: int = Field(4, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _overlap_fits(self) -> PredictConfig:
        if self.overlap * 2 > self.tile:
            raise ValueError(f"overlap ({self.overlap}) must be at most half the tile ({self.tile})")
        return self


class PostprocessConfig(Section):
    """A chain of registered operations: each item is ``{name: {param: value}}``."""

    steps: list[dict[str, dict[str, Any] | None]] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _one_op_per_item(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, item in enumerate(v):
            if len(item) != 1:
                raise ValueError(f"step {i} must have exactly one operation name, got {list(item)}")
        return v


class EvaluateConfig(Section):
    iou_threshold: float = Field(0.5, gt=0, le=1)
    min_area_m2: float = Field(0.0, ge=0, description="truth and predictions smaller than this are left out")


class ExportConfig(Section):
    opset: int = Field(17, ge=13)
    parity_chips: int = Field(16, ge=1)
    parity_atol: float = Field(1e-3, gt=0)


class Params(Section):
    """The whole ``params.yaml``."""

    arch: str = "unet"
    select: SelectConfig = SelectConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()
    postprocess: PostprocessConfig
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
