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
from .manifest import MANIFEST, PACKAGE, check_type, files_on_disk, read_manifest
from .mlm import MLM

log = logging.getLogger(__name__)

MODEL, STATS, CLASSES, POSTPROCESS, PREDICT, CARD = (
    "model.onnx", "stats.json", "classes.json", "postprocess.yaml", "predict.yaml", "card.json")
REQUIRED = (FORMAT_FILE, MODEL, STATS, CLASSES, POSTPROCESS, PREDICT, CARD, "MODEL_CARD.md", "Dockerfile",
            "build_engine.sh", MLM)
COMPILED = "compiled.json"  # the build record of the optional compiled package PACKAGE (model.pt2): both or neither
COMPILED_KEYS = ("device", "torch", "precision", "bands", "tile", "max_batch")


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its files' bytes (upgraded to the current format) and the parsed contracts."""

    root: Path
    files: dict[str, bytes]
    digest: str  # sha256 of SHA256SUMS: one value that pins the whole bundle
    format_version: int  # as delivered (``files`` are those of FORMAT_VERSION)
    pinned: bool = False  # opened with its expected digest

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
    def compiled(self) -> dict | None:
        """``compiled.json``: what the compiled package ``model.pt2`` was built for (device, GPU, compute
        capability, torch, CUDA) and takes (bands, tile, batches up to ``max_batch``); None without a package."""
        if COMPILED not in self.files:
            return None
        record = self.json(COMPILED)
        missing = [k for k in COMPILED_KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise GeofoundryError(f"{self.root / COMPILED}: lacks {missing}")
        if record["bands"] != len(self.spec.bands) or record["tile"] != self.predict.tile:
            raise GeofoundryError(f"{self.root / COMPILED}: a package for {record['bands']} bands and {record['tile']} "
                                  f"px tiles, but {STATS} names {len(self.spec.bands)} bands and {PREDICT} "
                                  f"{self.predict.tile} px tiles")
        return record

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
    if (PACKAGE in files) != (COMPILED in files):
        raise GeofoundryError(f"{root}: {PACKAGE} and {COMPILED} come together; this bundle has only "
                              f"{PACKAGE if PACKAGE in files else COMPILED}")
    bundle = Bundle(root, files, own, version, pinned=digest is not None)
    bundle.outputs  # checks classes.json against stats.json
    bundle.compiled  # checks compiled.json against stats.json and predict.yaml
    return bundle
