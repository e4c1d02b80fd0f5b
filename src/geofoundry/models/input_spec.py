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

GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
              "float32": "Float32", "float64": "Float64"}  # gdal_translate -ot names


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

    def dtype_refusal(self, scene: str | Path, dtype: str) -> str | None:
        """Why ``scene`` (named in the message), of pixel type ``dtype``, cannot go through this model, whose stretch
        was fitted on ``source_dtype`` values (one dtype or several, comma-separated): 16-bit values through an 8-bit
        stretch are all white. None when it can. Every path that predicts a scene asks this one question."""
        fitted = self.source_dtype.split(",")
        if dtype in fitted:
            return None
        target = GDAL_TYPES.get(fitted[0], fitted[0])
        return (f"{scene}: {dtype} pixels, but the model's stretch was fitted on {'/'.join(fitted)} values; convert "
                f"the scene to the training data's type and value range (e.g. gdal_translate -ot {target} -scale "
                "<min> <max> <out_min> <out_max>) or train on such data")

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
