"""The pretrain section: self-supervised learning of an encoder on the scenes' pixels (docs/TRAINING.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..choices import PRETRAIN_METHODS
from .base import MAX_BATCH, MAX_SIDE_PX, Device, Section
from .train import DeviceAugmentConfig


class PretrainAugmentConfig(DeviceAugmentConfig):
    """Stronger colour changes than supervised training: the views of one tile must differ in more than geometry.
    Its own defaults, so that a partial mapping in params.yaml keeps the others."""

    brightness: float = Field(0.4, ge=0, le=1, description="max additive shift, as a fraction of the range")
    contrast: float = Field(0.4, ge=0, le=1, description="max multiplicative change: a factor in [1 - c, 1 + c]")
    noise: float = Field(0.02, ge=0, le=1, description="std of added Gaussian noise, as a fraction of the range")
    p_color: float = Field(0.8, ge=0, le=1, description="chance that brightness, contrast and noise change a sample")


class PretrainConfig(Section):
    epochs: int = Field(0, ge=0, le=100_000, description="0 = off: the stage only records that nothing was pretrained")
    method: Literal[PRETRAIN_METHODS] = "simclr"  # type: ignore[valid-type]
    scenes: Literal["all", "selection"] = Field(
        "all", description="all: every scene of data/raw (other zooms and sites too), warped to preprocess.gsd_m; "
                           "selection: the selected scenes only")
    include_eval_ground: bool = Field(
        False, description="also learn on the validation and test blocks (inflates the evaluation: docs)")
    tile_px: int = Field(256, ge=32, le=MAX_SIDE_PX, description="tiles cut from the scenes (stride = tile)")
    view_px: int = Field(128, ge=32, le=MAX_SIDE_PX, description="side of each augmented view (multiple of 32)")
    scale: tuple[float, float] = Field((0.25, 1.0), description="area of a view's crop, as a fraction of its tile")
    min_valid_frac: float = Field(0.5, gt=0, le=1, description="tiles with less usable ground are not drawn")
    max_tiles: int = Field(4096, ge=1, le=10**6, description="tiles held in memory, drawn evenly when more")
    samples_per_epoch: int = Field(2048, ge=1, le=10**8)
    batch_size: int = Field(64, ge=2, le=MAX_BATCH, description="tiles per step (two views each)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    temperature: float = Field(0.2, gt=0, le=10, description="NT-Xent temperature")
    projection_dim: int = Field(128, ge=8, le=8192, description="output of the projection head")
    device_augment: PretrainAugmentConfig = PretrainAugmentConfig()
    seed: int = Field(0, ge=0)
    device: Device = "auto"
    threads: int = Field(0, ge=0, le=4096, description="torch CPU threads, 0 = all cores")

    @field_validator("view_px")
    @classmethod
    def _multiple_of_32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be a multiple of 32 (the encoder's stride), got {v}")
        return v

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 1:
            raise ValueError(f"scale {list(v)} must satisfy 0 < min <= max <= 1")
        return v

    @model_validator(mode="after")
    def _view_fits_tile(self) -> PretrainConfig:
        if self.view_px > self.tile_px:
            raise ValueError(f"view_px {self.view_px} is larger than tile_px {self.tile_px}")
        return self
