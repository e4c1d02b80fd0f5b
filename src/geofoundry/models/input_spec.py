"""``stats.json``: everything needed to turn a raw scene into model input, shared by predict and export."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import GeofoundryError
from ..io.atomic import write_json
from .stretch import Stretch


@dataclass(frozen=True)
class InputSpec:
    """Band names, target GSD, stretch and classes of a model's input and output."""

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

    @property
    def stretch(self) -> Stretch:
        return Stretch(tuple(self.low), tuple(self.high))

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> InputSpec:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise GeofoundryError(f"{path}: cannot read the input spec ({e}); re-run preprocess") from None
