"""Open a delivered bundle after checking it: format version, manifest paths, file types, no extra files,
checksums; then bring an older format up to the current one in memory.

Every file is read once, hashed and kept in memory, so what is used is exactly what was verified.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import PostprocessConfig, PredictConfig
from ..errors import GeofoundryError
from ..io.inputs import decode, parse_json, parse_yaml, validated
from ..models.input_spec import InputSpec
from ..models.outputs import auxiliary
from .format import FORMAT_FILE, FORMAT_VERSION, format_version, refuse_newer, upgrade
from .manifest import MANIFEST, check_type, files_on_disk, read_manifest

log = logging.getLogger(__name__)

MODEL, STATS, CLASSES, POSTPROCESS, PREDICT, CARD = (
    "model.onnx", "stats.json", "classes.json", "postprocess.yaml", "predict.yaml", "card.json")
REQUIRED = (FORMAT_FILE, MODEL, STATS, CLASSES, POSTPROCESS, PREDICT, CARD, "MODEL_CARD.md", "Dockerfile",
            "build_engine.sh")


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its files' bytes (upgraded to the current format) and the parsed contracts."""

    root: Path
    files: dict[str, bytes]
    digest: str  # sha256 of SHA256SUMS: one value that pins the whole bundle
    format_version: int  # as delivered (``files`` are those of FORMAT_VERSION)

    def text(self, name: str) -> str:
        return decode(self.files[name], self.root / name, name)

    def json(self, name: str) -> Any:
        return parse_json(self.text(name), self.root / name)

    def yaml(self, name: str) -> Any:
        return parse_yaml(self.text(name), self.root / name)

    @property
    def model(self) -> bytes:
        return self.files[MODEL]

    @property
    def spec(self) -> InputSpec:
        return InputSpec.parse(self.json(STATS), self.root / STATS)

    @property
    def outputs(self) -> list[str]:
        """The model's output classes (``classes.json`` names): the ``stats.json`` classes, then the auxiliary ones
        listed under ``auxiliary`` (``border``, ``contact``, or none)."""
        classes = self.json(CLASSES)
        names = classes.get("names") if isinstance(classes, dict) else None
        if not isinstance(names, list):
            raise GeofoundryError(f"{self.root / CLASSES}: needs a 'names' list, got {classes}")
        where = f"{self.root / CLASSES} (beside {STATS} classes {self.spec.classes})"
        if list(auxiliary(names, self.spec.classes, where)) != classes.get("auxiliary"):
            raise GeofoundryError(f"{self.root / CLASSES}: 'auxiliary' {classes.get('auxiliary')} are not the classes "
                                  f"after the {STATS} ones in {names}")
        return names

    @property
    def card(self) -> dict:
        return self.json(CARD)

    @property
    def postprocess(self) -> PostprocessConfig:
        """The chain's settings, validated (the operations themselves are checked where they run:
        ``delivery.predict.bundle_chain``)."""
        return validated(PostprocessConfig, self.yaml(POSTPROCESS), self.root / POSTPROCESS)

    @property
    def predict(self) -> PredictConfig:
        data = self.yaml(PREDICT)
        if not isinstance(data, dict):
            raise GeofoundryError(f"{self.root / PREDICT}: needs a mapping of tile, overlap, batch_size")
        return validated(PredictConfig, {**data, "device": "cpu"}, self.root / PREDICT)


def open_bundle(root: str | Path, digest: str | None = None) -> Bundle:
    """Verify and load ``root``; ``digest`` (sha256 of SHA256SUMS, from the model registry) pins the exact bundle."""
    root = Path(root)
    if root.is_symlink() or not root.is_dir():
        raise GeofoundryError(f"{root}: not a bundle folder")
    refuse_newer(root)
    on_disk = files_on_disk(root)
    for name in on_disk:
        if name != MANIFEST:
            check_type(name)
    entries, own = read_manifest(root)
    if digest is not None and digest.lower() != own:
        raise GeofoundryError(f"{root / MANIFEST}: sha256 {own} is not the expected {digest}; wrong or altered bundle")
    unexpected = sorted(set(on_disk) - set(entries) - {MANIFEST})
    if unexpected:
        raise GeofoundryError(f"{root}: unexpected file(s) not in {MANIFEST}: {', '.join(unexpected)}")
    files = {}
    for name, expected in entries.items():
        path = root / name
        if not path.is_file():
            raise GeofoundryError(f"{path}: listed in {MANIFEST} but missing")
        data = path.read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            raise GeofoundryError(f"{path}: checksum mismatch (sha256 {got}, {MANIFEST} says {expected}); "
                                  "the file was modified or corrupted")
        check_type(name, data)
        files[name] = data
    version = format_version(files, root)
    files = upgrade(files, version, root)
    missing = sorted(set(REQUIRED) - set(files))
    if missing:
        raise GeofoundryError(f"{root}: required file(s) not in {MANIFEST}: {', '.join(missing)}")
    if version < FORMAT_VERSION:
        log.info("%s: bundle format %d, read as format %d (upgraded in memory; its files are unchanged)", root,
                 version, FORMAT_VERSION)
    bundle = Bundle(root, files, own, version)
    bundle.outputs  # checks classes.json against stats.json
    return bundle
