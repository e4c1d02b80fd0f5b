"""The train section: optimiser, schedule, loss and device augmentations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..choices import CLASS_WEIGHTED_LOSSES, LOSSES, SCHEDULES, TARGETS
from .base import MAX_BATCH, Device, Section


class DeviceAugmentConfig(Section):
    """Augmentations of the whole batch where it lives (GPU or CPU), after the uint8 transfer."""

    d4: bool = Field(True, description="one of the 8 flips/rotations per sample, image and target alike")
    brightness: float = Field(0.2, ge=0, le=1, description="max additive shift, as a fraction of the range")
    contrast: float = Field(0.2, ge=0, le=1, description="max multiplicative change: a factor in [1 - c, 1 + c]")
    noise: float = Field(0.0, ge=0, le=1, description="std of added Gaussian noise, as a fraction of the range")
    p_color: float = Field(0.3, ge=0, le=1, description="chance that brightness, contrast and noise change a sample")


class AdamConfig(Section):
    """``adamw`` (decoupled weight decay) or ``adam`` (weight decay added to the gradient), torch's."""

    name: Literal["adamw", "adam"]
    betas: tuple[float, float] = Field((0.9, 0.999), description="decay rates of the gradient's moving averages")
    eps: float = Field(1e-8, gt=0)

    @field_validator("betas")
    @classmethod
    def _betas_below_one(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"betas must be in [0, 1), got {list(v)}")
        return v


class SGDConfig(Section):
    """``sgd``: stochastic gradient descent with momentum (weight decay added to the gradient), torch's."""

    name: Literal["sgd"]
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDConfig:
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov needs momentum > 0")
        return self


# train.optimizer, by ``name``; the names are those of train.optim.OPTIMIZERS (tests/test_registries.py)
OptimizerConfig = Annotated[AdamConfig | SGDConfig, Field(discriminator="name")]


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, le=100_000)
    samples_per_epoch: int = Field(512, ge=1, le=10**8, description="chips drawn per epoch (positives oversampled)")
    positive_fraction: float = Field(0.6, ge=0, le=1, description="share of drawn chips that hold a target")
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="per process (DDP: per GPU)")
    grad_accum: int = Field(1, ge=1, le=MAX_BATCH, description="batches per optimiser step")
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    optimizer: OptimizerConfig = Field(
        AdamConfig(name="adamw"), description="an optimiser's name, or {name: …, setting: value, …}")
    schedule: Literal[SCHEDULES] = "onecycle"  # type: ignore[valid-type]
    ema: float = Field(0.0, ge=0, lt=1, description="decay of an exponential moving average of the weights, updated "
                                                    "every optimiser step, that validation and checkpoints use "
                                                    "(e.g. 0.999); 0 = off")
    loss: dict[str, float] = Field({"ce": 1.0, "dice": 1.0}, description="loss name -> weight")
    class_weights: dict[str, float] = Field(
        {}, description="output class name (e.g. border, contact) -> weight in the loss terms that take class "
                        "weights (ce, dice, focal, tversky); classes not named weigh 1")
    augment: list[dict[str, dict[str, Any] | None]] = Field(
        [], description="albumentations transforms by class name with their arguments, applied to image and mask")
    device_augment: DeviceAugmentConfig = Field(
        DeviceAugmentConfig(), description="D4 and brightness/contrast/noise on the device, after `augment`")
    target: Literal[tuple(TARGETS)] = Field(  # type: ignore[valid-type]
        "classes", description="class masks, or + border (+ contact) classes to split touching objects")
    border_px: int = Field(2, ge=1, description="border class: object pixels this close to their edge")
    contact_px: int = Field(3, ge=1, description="contact class: background pixels this close to 2+ objects")
    monitor: Literal["val/iou", "val/object_f1"] = "val/iou"
    patience: int = Field(0, ge=0, description="stop after this many epochs without improvement; 0 = never")
    seed: int = Field(0, ge=0)
    init_from: str | None = Field(
        None, description="start from these weights instead of random ones: a checkpoint (.pt) or an encoder weights "
                          "file (.safetensors) in init/ (docs/TRAINING.md, Fine-tuning); null = random")
    init_parts: Literal["all", "encoder"] = Field(
        "all", description="what init_from gives: every tensor that matches, or the encoder's only")
    freeze_encoder_epochs: int = Field(
        0, ge=0, le=100_000, description="the encoder is frozen (weights and batch-norm statistics) for this many "
                                         "first epochs, then trained; 0 = never")
    resume: bool = Field(True, description="continue an interrupted run from models/last.pt (same settings)")
    chips_on_device: bool | Literal["auto"] = Field(
        "auto", description="hold the train chips and their encoded targets on the device and gather batches "
                            "there (needs augment: []); auto: on CUDA, when they take at most a quarter of its "
                            "free memory")
    num_workers: int = Field(0, ge=0, le=256, description="DataLoader worker processes (persistent); 0 = in the loop")
    prefetch: int = Field(4, ge=1, le=256, description="batches each worker prepares ahead")
    device: Device = "auto"
    compile: bool = Field(False, description="torch.compile the training model")
    threads: int = Field(0, ge=0, le=4096, description="torch CPU threads, 0 = all cores")

    @field_validator("optimizer", mode="before")
    @classmethod
    def _optimizer_by_name(cls, v: Any) -> Any:
        """A bare name is that optimiser with its default settings."""
        return {"name": v} if isinstance(v, str) else v

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(LOSSES)
        if unknown or not v:
            raise ValueError(f"unknown loss {sorted(unknown)}; choose from {list(LOSSES)}")
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("loss weights must be >= 0 with a positive sum")
        return v

    @field_validator("class_weights")
    @classmethod
    def _positive_class_weights(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w <= 0 for w in v.values()):
            raise ValueError(f"class weights must be > 0: {v}")
        return v

    @model_validator(mode="after")
    def _d4_square(self) -> TrainConfig:
        """D4 turns chips a quarter: an ``augment`` step must not leave them oblong."""
        if not self.device_augment.d4:
            return self
        for i, step in enumerate(self.augment):
            for name, args in step.items():
                args = args or {}
                sides = args.get("size")
                if not isinstance(sides, (list, tuple)) or len(sides) != 2:
                    sides = (args.get("height"), args.get("width"))
                if None not in sides and sides[0] != sides[1]:
                    raise ValueError(f"augment[{i}] ({name}) makes {sides[0]}×{sides[1]} chips, but "
                                     f"device_augment.d4 needs square ones: make them square or turn d4 off")
        return self

    @field_validator("init_from")
    @classmethod
    def _init_path(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("an empty path; null starts from random weights")
        return v

    @model_validator(mode="after")
    def _freeze_fits(self) -> TrainConfig:
        if self.freeze_encoder_epochs and self.init_from is None:
            raise ValueError("freeze_encoder_epochs needs init_from: a frozen random encoder learns nothing")
        if self.freeze_encoder_epochs > self.epochs:
            raise ValueError(f"freeze_encoder_epochs {self.freeze_encoder_epochs} > epochs {self.epochs}")
        return self

    @model_validator(mode="after")
    def _chips_on_device_unaugmented(self) -> TrainConfig:
        if self.chips_on_device is True and self.augment:
            raise ValueError("chips_on_device: true needs augment: [] (host augmentations change each chip per "
                             "draw); use device_augment, or chips_on_device: auto")
        return self

    @model_validator(mode="after")
    def _class_weights_taken(self) -> TrainConfig:
        unweighted = [k for k, w in self.loss.items() if w > 0 and k not in CLASS_WEIGHTED_LOSSES]
        if self.class_weights and unweighted:
            raise ValueError(f"class_weights: the loss terms {unweighted} take no class weights "
                             f"(those that do: {list(CLASS_WEIGHTED_LOSSES)})")
        return self
