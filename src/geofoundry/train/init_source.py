"""What ``train.init_from`` names, read and checked: a checkpoint, an encoder weights file, or (refused) a bundle.

Checkpoints are read weights-only (:func:`~geofoundry.models.checkpoint.load_checkpoint`) and encoder weights files
are safetensors (:mod:`~geofoundry.models.encoder_file`): neither runs code from the file. A delivered bundle holds
its network only as ONNX for inference, with batch normalisation folded into the convolutions, so the weights it was
trained with cannot be recovered from it; it is refused with the commit its checkpoint came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..bundle.manifest import MANIFEST
from ..bundle.reader import open_bundle
from ..errors import GeofoundryError
from ..models.checkpoint import load_checkpoint
from ..models.encoder_file import load_encoder
from ..models.registry import PRESETS

ENCODER = "encoder."  # the encoder's tensors in a model's state_dict
ARCHIVES = (".zip", ".tar", ".tgz", ".gz", ".xz", ".bz2", ".7z")


@dataclass(frozen=True)
class Source:
    """Weights to start from, keyed as a model's ``state_dict`` (an encoder file's under ``encoder.``)."""

    path: Path
    kind: str  # "checkpoint" or "encoder file"
    sha256: str
    tensors: dict[str, torch.Tensor]
    encoder: str  # the smp encoder name
    preset: str | None  # None for an encoder file
    bands: list[str]
    classes: list[str] | None  # None for an encoder file
    gsd_m: float | None = None
    method: str = ""

    def identity(self) -> dict:
        """What a checkpoint records of where its weights started."""
        return {"path": str(self.path), "kind": self.kind, "sha256": self.sha256}

    def describe(self) -> dict:
        return {**self.identity(), "encoder": self.encoder, "preset": self.preset, "bands": self.bands,
                "classes": self.classes, "gsd_m": self.gsd_m, "method": self.method}


def read_source(path: Path) -> Source:
    """The weights at ``path``, refused with the reason when it is missing, a bundle, an archive, a pickle that holds
    more than tensors, or neither a geofoundry checkpoint nor an encoder weights file."""
    if not path.exists():
        raise GeofoundryError(f"train.init_from: {path} not found")
    if path.is_dir():
        _refuse_folder(path)
    if path.name.lower().endswith(ARCHIVES):
        raise GeofoundryError(f"train.init_from: {path} is an archive; give a checkpoint (.pt) or an encoder weights "
                              "file (.safetensors)")
    digest = _sha256(path)
    if _is_safetensors(path):
        tensors, meta = load_encoder(path)
        return Source(path, "encoder file", digest, {ENCODER + k: v for k, v in tensors.items()}, meta.encoder,
                      None, meta.bands, None, meta.gsd_m, meta.method)
    try:
        ckpt = load_checkpoint(path)
    except GeofoundryError as e:
        raise GeofoundryError(f"train.init_from: {e}") from None
    preset = PRESETS[ckpt["preset"]]
    return Source(path, "checkpoint", digest, ckpt["state_dict"], preset.encoder, preset.name, ckpt["bands"],
                  ckpt["classes"])


def _refuse_folder(path: Path) -> None:
    if not (path / MANIFEST).is_file():
        raise GeofoundryError(f"train.init_from: {path} is a folder; give a checkpoint (.pt) or an encoder weights "
                              "file (.safetensors)")
    card = open_bundle(path).card  # verified: what it says is what was delivered
    model, code = card.get("model", {}), card.get("code", {})
    revision = str(code.get("git_revision", "unknown"))
    raise GeofoundryError(
        f"train.init_from: {path} is a delivered bundle; it holds its network as ONNX for inference, with batch "
        f"normalisation folded into the convolutions, so the weights it was trained with cannot be recovered from "
        f"it. Start from the checkpoint it was exported from instead: models/best.pt of commit {revision} (preset "
        f"{model.get('preset')!r}), e.g. `dvc get . models/best.pt --rev <commit> -o init/<name>.pt`")


def _is_safetensors(path: Path) -> bool:
    """safetensors: an 8-byte little-endian header length, then the JSON header."""
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
