"""Sections of the data stages: select and preprocess."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import MAX_SIDE_PX, Section, check_class_path

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
    holdout_site: str | None = Field(
        None, description="leave-one-site-out: every block of this site goes to test, the other sites' blocks to "
                          "train and val in the ratio of their fractions")

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != {"train", "val", "test"}:
            raise ValueError("fractions needs train, val and test")
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1) > 1e-6:
            raise ValueError(f"fractions must be >= 0 and sum to 1, got {v}")
        return v

    @model_validator(mode="after")
    def _holdout_leaves_training(self) -> SplitConfig:
        if self.holdout_site is not None and self.fractions["train"] <= 0:
            raise ValueError("holdout_site needs fractions.train > 0: the other sites are split into train and val")
        return self


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

    @model_validator(mode="after")
    def _holdout_selected(self) -> SelectConfig:
        site = self.split.holdout_site
        if site is not None and self.sites and site not in self.sites:
            raise ValueError(f"split.holdout_site {site!r} is not among the selected sites {self.sites}")
        return self

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
