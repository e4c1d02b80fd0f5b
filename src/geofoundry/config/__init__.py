"""Typed, validated configuration: one pydantic model per ``params.yaml`` section.

Library code takes these objects; only ``stages/`` and the CLI read ``params.yaml`` (see :mod:`geofoundry.pipeline.params`).
Every model forbids unknown keys, so a typo fails with a message that names the key. The sections live in modules
by the stages that read them; this package gathers them and the whole file's model, :class:`Params`.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ..choices import ARCHS, unknown_arch
from .base import (MAX_BATCH, MAX_BATCH_PIXELS, MAX_CLASS_DEPTH, MAX_SIDE_PX, Codec, Device, Section, TtaMode,
                   check_batch_pixels, check_class_path, format_validation_error)
from .data import (BALANCE_KEYS, CONTEXTS, ChipConfig, GeofenceConfig, PreprocessConfig, RpcConfig, SelectConfig,
                   SplitConfig, StretchConfig)
from .infer import EnsembleMember, EvaluateConfig, ExportConfig, PostprocessConfig, PredictConfig
from .loops import AL_STRATEGIES, AlConfig, RpsConfig
from .pretrain import PretrainConfig
from .train import AdamConfig, DeviceAugmentConfig, OptimizerConfig, SGDConfig, TrainConfig

__all__ = ["AL_STRATEGIES", "BALANCE_KEYS", "CONTEXTS", "MAX_BATCH", "MAX_BATCH_PIXELS", "MAX_CLASS_DEPTH", "MAX_SIDE_PX",
           "AdamConfig", "AlConfig", "ChipConfig", "Codec", "Device", "DeviceAugmentConfig", "EnsembleMember",
           "EvaluateConfig", "ExportConfig", "GeofenceConfig", "OptimizerConfig", "Params", "PostprocessConfig",
           "PredictConfig", "PreprocessConfig", "PretrainConfig", "RpcConfig", "RpsConfig", "SGDConfig", "Section",
           "SelectConfig", "SplitConfig", "StretchConfig", "TrainConfig", "TtaMode", "check_batch_pixels",
           "check_class_path", "format_validation_error"]


class Params(Section):
    """The whole ``params.yaml``."""

    arch: str = Field("unet", description="the model preset (geofoundry models lists them)")
    select: SelectConfig = SelectConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    pretrain: PretrainConfig = PretrainConfig()
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
    al: AlConfig = AlConfig()
    rps: RpsConfig = RpsConfig()

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v not in ARCHS:
            raise ValueError(unknown_arch(v))
        return v

    @model_validator(mode="after")
    def _train_batch_pixels(self) -> Params:
        check_batch_pixels(self.preprocess.chip.size, self.train.batch_size, "preprocess.chip.size × train.batch_size")
        check_batch_pixels(self.pretrain.view_px, 2 * self.pretrain.batch_size,
                           "pretrain.view_px × 2 views × pretrain.batch_size")
        return self
