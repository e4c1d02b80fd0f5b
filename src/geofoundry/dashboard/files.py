"""The dataset files that the dashboard may serve: only those that ``scenes.csv`` lists, inside the dataset folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from ..errors import GeofoundryError


class Refused(GeofoundryError):
    """A path that lies outside the dataset folder (absolute, ``..``, or a symlink out)."""


def inside(root: Path, rel: str) -> Path:
    """``root / rel`` resolved, refused when ``rel`` is absolute or climbs with ``..``, or when the file (symlinks
    followed) lies outside ``root``."""
    parts = PurePosixPath(str(rel).replace("\\", "/"))
    if parts.is_absolute() or Path(str(rel)).is_absolute() or ".." in parts.parts or not parts.parts:
        raise Refused(f"{rel!r}: not a path inside the dataset")
    path = (root / parts).resolve()
    if not path.is_relative_to(root.resolve()):
        raise Refused(f"{rel!r}: resolves outside the dataset")
    return path


class SceneFiles:
    """Image and label file of each scene of ``scenes.csv`` (by ``scene_id``), checked on every use."""

    def __init__(self, raw_root: Path):
        self.root = Path(raw_root)
        table = pd.read_csv(self.root / "scenes.csv", dtype=str, usecols=["scene_id", "image", "labels"])
        self.rows = table.set_index("scene_id").to_dict("index")

    def _file(self, scene_id: str, column: str) -> Path:
        row = self.rows.get(scene_id)
        if row is None:
            raise KeyError(scene_id)
        path = inside(self.root, row[column])
        if not path.is_file():
            raise KeyError(scene_id)
        return path

    def image(self, scene_id: str) -> Path:
        return self._file(scene_id, "image")

    def labels(self, scene_id: str) -> Path:
        return self._file(scene_id, "labels")
