"""Conventional locations of every stage's inputs and outputs (the ones ``dvc.yaml`` declares)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import SplitConfig
from ..errors import GeofoundryError


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    def in_stage_folder(self, rel: str, folder: Path, setting: str, stage: str, how: str) -> Path:
        """``rel`` (a path that ``setting`` names) under the root; refused unless it lies in ``folder``, a dependency
        of ``stage`` in dvc.yaml, where DVC sees it change. ``how`` says how to put a file there."""
        path = self / rel
        if not path.resolve().is_relative_to(folder.resolve()):
            raise GeofoundryError(f"{setting}: {rel} is not in {folder}/, the folder the {stage} stage depends on, "
                                  f"so DVC would not see it change: copy it there ({how}) and list that path")
        return path

    @property
    def raw(self) -> Path:
        return self / "data/raw"

    @property
    def selection(self) -> Path:
        return self / "data/selection"

    @property
    def chips(self) -> Path:
        return self / "data/chips"

    @property
    def models(self) -> Path:
        return self / "models"

    @property
    def pretrained(self) -> Path:
        """The pretrain stage's encoder weights file and summary (what ``train.init_from`` may name)."""
        return self / "pretrained"

    @property
    def pretrain_live(self) -> Path:
        return self / "dvclive/pretrain"

    @property
    def splits(self) -> Path:
        """Blocks files that ``select.split.pinned`` may name (a dependency of select)."""
        return self / "splits"

    @property
    def ensemble(self) -> Path:
        """Checkpoints that ``predict.ensemble`` may average with ``models/best.pt`` (a dependency of predict)."""
        return self / "ensemble"

    @property
    def init(self) -> Path:
        """Weights that ``train.init_from`` may start from: checkpoints, encoder weights files (a dependency of
        train)."""
        return self / "init"

    @property
    def live(self) -> Path:
        return self / "dvclive/train"

    @property
    def predictions(self) -> Path:
        """Probability maps: ``val/`` (what the running point search tunes on) and ``test/`` (what is reported)."""
        return self / "data/predictions"

    @property
    def rps_cache(self) -> Path:
        """What the running point search keeps between runs (git- and DVC-ignored; deleting it costs only time)."""
        return self / ".rps-cache"

    @property
    def vectors(self) -> Path:
        return self / "data/vectors"

    @property
    def metrics(self) -> Path:
        return self / "metrics"

    @property
    def reports(self) -> Path:
        """Summaries and breakdowns that are neither metrics nor plots (the selection's splits, the full evaluation)."""
        return self / "reports"

    @property
    def plots(self) -> Path:
        return self / "plots"

    @property
    def onnx(self) -> Path:
        return self / "export/model.onnx"


def pinned_path(cfg: SplitConfig, paths: Paths) -> Path | None:
    """The file ``select.split.pinned`` names, which must lie in ``splits/`` (a dependency of the select stage)."""
    if cfg.pinned is None:
        return None
    path = paths.in_stage_folder(cfg.pinned, paths.splits, "select.split.pinned", "select",
                                 f"cp data/selection/blocks.parquet {paths.splits}/<name>.parquet; dvc add versions it")
    if not path.is_file():
        raise GeofoundryError(f"select.split.pinned: {path} does not exist")
    return path
