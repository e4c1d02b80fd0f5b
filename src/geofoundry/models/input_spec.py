"""``stats.json``: everything needed to turn a raw scene into model input, shared by predict and export."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from ..io.atomic import write_json
from ..io.inputs import read_json, validated
from .stretch import Stretch


@dataclass(frozen=True)
class InputSpec:
    """Band names, target GSD, stretch and classes of a model's input and output."""

    __pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)

    bands: list[str]
    gsd_m: float
    source_dtype: str
    low: list[float]
    high: list[float]
    classes: list[str]
    class_paths: list[str | None]
    ignore_index: int = 255
    resampling: str = "bilinear"
    crs: str | None = None  # target CRS of the chips (None: each scene's own)

    def __post_init__(self) -> None:
        if not self.bands or len(self.low) != len(self.bands) or len(self.high) != len(self.bands):
            raise ValueError(f"low and high need one value per band {self.bands}")
        if not all(lo < hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"stretch low {self.low} must be below high {self.high} in every band")
        if not (math.isfinite(self.gsd_m) and self.gsd_m > 0):
            raise ValueError(f"gsd_m must be a positive number, got {self.gsd_m}")
        if len(self.classes) < 2 or len(self.class_paths) != len(self.classes):
            raise ValueError("classes (background first) and class_paths need the same length, at least 2")

    @property
    def stretch(self) -> Stretch:
        return Stretch(tuple(self.low), tuple(self.high))

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def parse(cls, data: Any, source: str | Path) -> InputSpec:
        """A spec from JSON data, checked (types, one stretch value per band, classes); errors name ``source``."""
        return validated(cls, data, source, "input spec")

    @classmethod
    def load(cls, path: Path) -> InputSpec:
        return cls.parse(read_json(path, "input spec"), path)
