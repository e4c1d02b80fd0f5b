"""Validation probability maps for each predict setting that a trial names.

The current predict settings use the predict stage's maps (``data/predictions/val``): a search over postprocess
settings only never runs the model. Another predict setting (TTA, overlap, ensemble weights) is predicted once,
with the predict stage's code, into ``.rps-cache/maps/<key>/``; the key is a digest of the settings and of what the
maps depend on (checkpoints, input spec, selection, predict, model and io code). The folders used least recently go
once they take more than ``rps.disk_gb``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ..config import PredictConfig
from ..errors import GeofoundryError
from ..io.atomic import atomic_path
from ..io.debris import outputs_in
from .digest import code_digest, files_digest, value_digest

log = logging.getLogger(__name__)
RUNTIME = {"batch_size", "overviews", "compress", "cuda_graphs"}  # how fast or how stored, not the probabilities
SETTINGS = "settings.json"


def tifs(folder: Path) -> list[Path]:
    """The maps in ``folder`` (never the temporary file of an interrupted write)."""
    return outputs_in(folder, ".tif")


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


class MapSource:
    """The folder of validation maps of a predict config (``base``: the stage's settings, whose maps exist)."""

    def __init__(self, base: PredictConfig, stage_maps: Path, cache_dir: Path, disk_bytes: float,
                 selection_dir: Path, chips_dir: Path, model_path: Path):
        self.base, self.stage_maps, self.cache_dir = base, Path(stage_maps), Path(cache_dir) / "maps"
        self.disk_bytes = disk_bytes
        self.selection_dir, self.chips_dir, self.model_path = Path(selection_dir), Path(chips_dir), Path(model_path)
        self.predicted = 0
        self._inputs: str | None = None

    def folder(self, cfg: PredictConfig) -> Path:
        """The maps of ``cfg``: the stage's, a cached folder, or predicted now."""
        if cfg == self.base:
            if not tifs(self.stage_maps):
                raise GeofoundryError(f"{self.stage_maps}: no validation maps (*.tif); run the predict stage "
                                      "(`dvc repro predict`) on a selection with val blocks")
            return self.stage_maps
        folder = self.cache_dir / self._key(cfg)
        if folder.is_dir():
            os.utime(folder)  # used now: evicted last
            return folder / "val"
        self._predict(cfg, folder)
        self._evict(keep=folder)
        return folder / "val"

    def _key(self, cfg: PredictConfig) -> str:
        if self._inputs is None:
            members = [self.model_path, *(Path(m.path) for m in self.base.ensemble)]
            self._inputs = files_digest([*members, self.chips_dir / "stats.json", self.selection_dir / "scenes.parquet",
                                         self.selection_dir / "blocks.parquet"])
        settings = cfg.model_dump(mode="json", exclude=RUNTIME)
        return value_digest([settings, self._inputs, code_digest("predict", "models", "io")])[:16]

    def _predict(self, cfg: PredictConfig, folder: Path) -> None:
        from ..predict import run as predict  # the model only here

        log.info("rps: predicting the validation area with %s", cfg.model_dump(mode="json", exclude=RUNTIME))
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            done = predict(cfg.model_copy(update={"overviews": False}), self.selection_dir, self.chips_dir,
                           self.model_path, tmp, splits=("val",))
            if not done["scenes"]["val"]:
                raise GeofoundryError(f"{self.selection_dir}: no validation area to predict (no val blocks)")
            (tmp / SETTINGS).write_text(json.dumps(cfg.model_dump(mode="json"), indent=1) + "\n")
        self.predicted += 1

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used folders while all of them take more than the disk budget."""
        folders = sorted((f for f in self.cache_dir.iterdir() if f.is_dir() and not f.name.startswith(".")),
                         key=lambda f: f.stat().st_mtime)
        sizes = {f: _size(f) for f in folders}
        total = sum(sizes.values())
        for f in folders:
            if total <= self.disk_bytes:
                break
            if f != keep:
                shutil.rmtree(f)
                total -= sizes[f]
                log.info("rps: removed %s (maps beyond rps.disk_gb)", f)
