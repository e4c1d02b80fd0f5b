"""The base of every section, size bounds and the helpers the sections share."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from ..choices import TTA

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


def check_device(value: str) -> str:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` (the current CUDA device) or ``cuda:N`` (device N)."""
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
        raise ValueError(f"{value!r}: one of auto, cpu, cuda, cuda:N (N: a CUDA device index)")
    return value


Device = Annotated[str, AfterValidator(check_device)]
Codec = Literal["zstd", "deflate"]  # GDAL's names of the probability COGs' codecs
TtaMode = Literal[tuple(TTA)]  # type: ignore[valid-type]  # predict.tta: a key of choices.TTA
