"""Typed, validated configuration: one pydantic model per ``params.yaml`` section.

Library code takes these objects; only ``stages/`` and the CLI read ``params.yaml`` (see :mod:`geofoundry.pipeline.params`).
Every model forbids unknown keys, so a typo fails with a message that names the key.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .choices import (ARCHS, CLASS_WEIGHTED_LOSSES, LOSSES, POSTPROCESS_OPS, RPS_OBJECTIVES, RPS_SEARCHES, SCHEDULES,
                      TARGETS, TTA, unknown_arch, unknown_op)

MAX_CLASS_DEPTH = 4
# Upper bounds of sizes: far above any real use, low enough that a typo (an extra zero or three) fails here, not
# as an allocation of terabytes minutes into a stage. Pixels of one batch: tile² (or chip²) × batch size.
MAX_SIDE_PX = 8192
MAX_BATCH = 1024
MAX_BATCH_PIXELS = 2**28


def format_validation_error(err: ValidationError, source: str, what: str = "parameters") -> str:
    """A pydantic error as ``source: invalid <what>`` and one ``  key: message`` line per bad key
    (``select.split.seed: ...``)."""
    lines = [f"{source}: invalid {what}"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key (typo?)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_batch_pixels(side: int, batch: int, what: str) -> None:
    if side * side * batch > MAX_BATCH_PIXELS:
        raise ValueError(f"{what}: {side}² px × {batch} = {side * side * batch:,} pixels per batch, more than "
                         f"{MAX_BATCH_PIXELS:,}; lower the batch size or the side")


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


Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when available
Codec = Literal["zstd", "deflate"]  # GDAL's names of the probability COGs' codecs
TtaMode = Literal[tuple(TTA)]  # type: ignore[valid-type]  # predict.tta: a key of choices.TTA

CONTEXTS = ("vegetation", "bright", "cloud_haze", "water", "nodata")
BALANCE_KEYS = ("site", "positive", *CONTEXTS)


class SplitConfig(Section):
    """Geographic block split: blocks are cells of a global EPSG:3857 grid, assigned once for every scene."""

    block_size_m: float = Field(150.0, gt=0, description="grid cell size in EPSG:3857 metres")
    fractions: dict[Literal["train", "val", "test"], float] = {"train": 0.7, "val": 0.15, "test": 0.15}
    seed: int = 0
    balance: list[Literal[BALANCE_KEYS]] = Field(  # type: ignore[valid-type]
        ["site", "positive", "vegetation", "bright", "cloud_haze"],
        description="besides valid area, what each split should get its fraction of")
    pinned: str | None = Field(
        None, description="a blocks file in splits/ (a copy of an earlier data/selection/blocks.parquet): its "
                          "blocks keep their split, the others are assigned around them")

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != {"train", "val", "test"}:
            raise ValueError("fractions needs train, val and test")
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1) > 1e-6:
            raise ValueError(f"fractions must be >= 0 and sum to 1, got {v}")
        return v


class GeofenceConfig(Section):
    """Areas in EPSG:4326 lon/lat, each a GeoJSON file path or a WKT string; blocks are clipped to them."""

    include: str | None = Field(None, description="keep only ground inside (None = everywhere)")
    exclude: str | None = Field(None, description="drop ground inside")


def _range(v: tuple[float, float], name: str) -> tuple[float, float]:
    if v[0] > v[1]:
        raise ValueError(f"{name} range {list(v)} has min > max")
    return v


class SelectConfig(Section):
    """Which scenes, ground and classes to use (the selection query), and how to split them."""

    classes: list[str] = Field(["structure/building"], min_length=1, description="class path prefixes = targets")
    sites: list[str] = []
    sensors: list[str] = []
    gsd_range: tuple[float, float] = Field((0.25, 0.35), description="metres, inclusive")
    dates: list[date] = Field([], description="[first, last] acquisition dates (inclusive); [] = any")
    min_valid_frac: float = Field(0.0, ge=0, le=1, description="per scene")
    contexts: dict[Literal[CONTEXTS], tuple[float, float]] = Field(  # type: ignore[valid-type]
        {}, description="per-block ranges of context fractions, e.g. {cloud_haze: [0, 0.1]}")
    geofence: GeofenceConfig = GeofenceConfig()
    context_gsd_m: float = Field(1.0, gt=0, description="pixel size at which contexts are computed")
    split: SplitConfig = SplitConfig()

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, v: list[str]) -> list[str]:
        return [check_class_path(p) for p in v]

    @field_validator("gsd_range")
    @classmethod
    def _gsd_ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _range(v, "gsd")

    @field_validator("dates")
    @classmethod
    def _two_dates(cls, v: list[date]) -> list[date]:
        if len(v) not in (0, 2) or (v and v[0] > v[1]):
            raise ValueError("dates must be [] or [first, last] with first <= last")
        return v

    @field_validator("contexts")
    @classmethod
    def _fractions(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, r in v.items():
            if not 0 <= r[0] <= r[1] <= 1:
                raise ValueError(f"context {name} range {list(r)} must satisfy 0 <= min <= max <= 1")
        return v


class StretchConfig(Section):
    """Per-band percentile stretch to 8 bit, computed on train-split valid pixels."""

    low_pct: float = Field(0.5, ge=0, lt=100)
    high_pct: float = Field(99.5, gt=0, le=100)
    sample_pixels: int = Field(2_000_000, gt=0, le=10**9)

    @model_validator(mode="after")
    def _ordered(self) -> StretchConfig:
        if self.low_pct >= self.high_pct:
            raise ValueError("low_pct must be below high_pct")
        return self


class ChipConfig(Section):
    size: int = Field(256, ge=32, le=MAX_SIDE_PX)
    stride: int = Field(192, ge=8, le=MAX_SIDE_PX)
    min_valid_frac: float = Field(0.25, ge=0, le=1)


class RpcConfig(Section):
    """Orthorectification of scenes that carry only RPCs (no geotransform)."""

    dem: str | None = Field(None, description="DEM GeoTIFF (heights above the WGS84 ellipsoid)")
    height: float | None = Field(None, description="constant height without a DEM; None = the RPC height offset")


class PreprocessConfig(Section):
    bands: list[str] = Field(["red", "green", "blue"], min_length=1)
    gsd_m: float = Field(0.3, gt=0)
    crs: str | None = Field(None, description="target CRS (GDAL warp); None = each scene's own (UTM for RPC scenes)")
    rpc: RpcConfig = RpcConfig()
    resampling: Literal["nearest", "bilinear", "cubic", "average", "lanczos"] = "bilinear"
    stretch: StretchConfig = StretchConfig()
    chip: ChipConfig = ChipConfig()
    ignore_index: int = Field(255, ge=0, le=255)
    border_ignore_px: int = Field(0, ge=0, description="label pixels within this distance of an object edge → ignore")


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


AL_STRATEGIES = ("random", "entropy", "margin", "tta_disagreement", "mc_dropout", "coreset", "hybrid")


class AlConfig(Section):
    """Active learning: which unlabelled train ground ``geofoundry al rank`` hands out for labelling next."""

    strategy: Literal[AL_STRATEGIES] = Field(  # type: ignore[valid-type]
        "hybrid", description="how candidate tiles are ranked (geofoundry al rank --list describes each)")
    n: int = Field(20, ge=1, description="tiles handed out per round")
    tiles_per_block: int = Field(1, ge=1, le=16, description="candidate tiles per block side: 1 = whole blocks "
                                                            "(select.split.block_size_m), 2 = quarters, ...")
    min_unlabelled_frac: float = Field(0.5, gt=0, le=1, description="a tile is a candidate when at least this "
                                                                   "share of its valid ground is unlabelled")
    chip: int = Field(512, ge=32, description="side (px, model grid) of the windows a tile is scored in")
    batch_size: int = Field(8, ge=1)
    tta: Literal["flips", "d4"] = Field("d4", description="tta_disagreement: the transforms that disagree")
    mc_samples: int = Field(8, ge=2, description="mc_dropout: forward passes with dropout on")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0, description="random: the draw; coreset and hybrid without labelled tiles: the first")


class RpsConfig(Section):
    """Running point search: predict and postprocess settings tried on the validation maps (docs/RPS.md). What
    ``settings`` names is checked against postprocess.steps and predict when params.yaml loads (:mod:`.rps`)."""

    settings: dict[str, Any] = Field(
        {"postprocess.threshold.value": {"low": 0.1, "high": 0.6, "step": 0.05},
         "postprocess.open.radius_px": [1, 2, 3], "postprocess.min_area.area_m2": {"low": 0, "high": 60, "step": 10},
         "predict.tta": ["none", "flips", "d4"]},
        description="what varies: postprocess.<op>.<param>, postprocess.steps.<i>.<op>.<param>, predict.tta, "
                    "predict.overlap or predict.ensemble.<i>.weight -> a list of values or {low, high[, step][, log]}")
    search: Literal[RPS_SEARCHES] = Field(  # type: ignore[valid-type]
        "grid", description="grid (every point), random or tpe (optuna)")
    trials: int = Field(700, ge=1, le=1_000_000, description="budget: points tried besides the current params")
    seed: int = Field(0, ge=0, description="random and tpe draws")
    objective: Literal[RPS_OBJECTIVES] = Field(  # type: ignore[valid-type]
        "f1", description="f1, recall_at_precision or precision_at_recall (validation object figures)")
    floor: float = Field(0.5, ge=0, le=1, description="the precision (recall) recall_at_precision "
                                                      "(precision_at_recall) must keep")
    memory_gb: float = Field(2.0, gt=0, description="chain states kept in memory between trials")
    disk_gb: float = Field(4.0, gt=0, description="probability maps of other predict settings kept in .rps-cache/")


class Params(Section):
    """The whole ``params.yaml``."""

    arch: str = Field("unet", description="the model preset (geofoundry models lists them)")
    select: SelectConfig = SelectConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
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
        return self
