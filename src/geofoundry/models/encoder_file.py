"""The encoder weights file: an smp encoder's ``state_dict`` as safetensors (no pickle), with what it was made on.

Tensors are keyed as ``model.encoder.state_dict()`` gives them (no ``encoder.`` prefix). String metadata:
``format`` (``geofoundry-encoder/1``), ``encoder`` (the smp encoder name, e.g. ``resnet34``), ``in_channels``,
``bands`` (a JSON list of band names), ``gsd_m`` (a float, or empty when unknown), ``method`` (e.g. ``simclr``;
empty when none) and ``source`` (free text). The pretrain stage writes it; ``train.init_from`` reads it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import GeofoundryError
from ..io.atomic import atomic_path

FORMAT = "geofoundry-encoder/1"
KEYS = ("format", "encoder", "in_channels", "bands", "gsd_m", "method", "source")


@dataclass(frozen=True)
class EncoderMeta:
    """What an encoder weights file says about its weights."""

    encoder: str
    in_channels: int
    bands: list[str]
    gsd_m: float | None
    method: str
    source: str

    def metadata(self) -> dict[str, str]:
        """The file's string metadata."""
        return {"format": FORMAT, "encoder": self.encoder, "in_channels": str(self.in_channels),
                "bands": json.dumps(self.bands), "gsd_m": "" if self.gsd_m is None else str(float(self.gsd_m)),
                "method": self.method, "source": self.source}


def save_encoder(path: Path, encoder: torch.nn.Module, *, encoder_name: str, bands: list[str],
                 gsd_m: float | None, method: str, source: str) -> EncoderMeta:
    """Write ``encoder``'s weights (e.g. ``model.encoder``) to ``path`` atomically; ``in_channels`` is
    ``len(bands)``. Returns the metadata written."""
    meta = EncoderMeta(encoder_name, len(bands), [str(b) for b in bands], gsd_m, method, source)
    _check(meta, Path(path))
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in encoder.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta.metadata())
    return meta


def load_encoder(path: Path) -> tuple[dict[str, torch.Tensor], EncoderMeta]:
    """The weights (on the CPU) and metadata of the encoder weights file ``path``, checked."""
    path = Path(path)
    if not path.is_file():
        raise GeofoundryError(f"{path}: encoder weights file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except (SafetensorError, OSError, ValueError) as e:
        raise GeofoundryError(f"{path}: not a safetensors encoder weights file ({' '.join(str(e).split())[:200]})") \
            from None
    if raw.get("format") != FORMAT:
        raise GeofoundryError(f"{path}: safetensors without the metadata format={FORMAT!r} "
                              f"(found {raw.get('format')!r}); not a geofoundry encoder weights file")
    missing = [k for k in KEYS if k not in raw]
    if missing:
        raise GeofoundryError(f"{path}: encoder weights file without the metadata {missing}")
    meta = EncoderMeta(raw["encoder"], _int(raw["in_channels"], "in_channels", path), _bands(raw["bands"], path),
                       _gsd(raw["gsd_m"], path), raw["method"], raw["source"])
    _check(meta, path)
    if not tensors:
        raise GeofoundryError(f"{path}: encoder weights file holds no tensors")
    return tensors, meta


def _check(meta: EncoderMeta, path: Path) -> None:
    if not meta.encoder:
        raise GeofoundryError(f"{path}: encoder weights file names no encoder")
    if not meta.bands or meta.in_channels != len(meta.bands):
        raise GeofoundryError(f"{path}: in_channels {meta.in_channels} but {len(meta.bands)} band names "
                              f"{meta.bands}; one name per input channel is needed")
    if meta.gsd_m is not None and not (math.isfinite(meta.gsd_m) and meta.gsd_m > 0):
        raise GeofoundryError(f"{path}: gsd_m must be a positive number of metres or empty, got {meta.gsd_m}")


def _int(text: str, key: str, path: Path) -> int:
    try:
        return int(text)
    except ValueError:
        raise GeofoundryError(f"{path}: metadata {key} must be an integer, got {text!r}") from None


def _bands(text: str, path: Path) -> list[str]:
    try:
        bands = json.loads(text)
    except json.JSONDecodeError:
        bands = None
    if not isinstance(bands, list) or not all(isinstance(b, str) for b in bands):
        raise GeofoundryError(f"{path}: metadata bands must be a JSON list of band names, got {text!r}")
    return bands


def _gsd(text: str, path: Path) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise GeofoundryError(f"{path}: metadata gsd_m must be a number of metres or empty, got {text!r}") from None
