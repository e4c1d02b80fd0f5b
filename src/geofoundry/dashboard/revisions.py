"""The files of one revision of the repository: the workspace's own, or a commit's read through DVC
(``DVCFileSystem``: git-tracked files from the commit; DVC outputs from the cache or, when not there, the remote),
copied once into a scratch folder. Nothing is re-computed: an output found nowhere is an error that says so."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path, PurePosixPath

from ..errors import GeofoundryError
from .experiments import DVC_LOCK, WORKSPACE


class Missing(GeofoundryError):
    """A file that a revision lacks: not tracked there (``tracked`` false), or tracked by DVC but in neither the
    cache nor the remote."""

    def __init__(self, message: str, tracked: bool):
        super().__init__(message)
        self.tracked = tracked


class RevisionFiles:
    """Files of revision ``rev`` (a SHA or ``workspace``) of the repository at ``root``, whose row in the table is
    called ``name``; ``scratch`` holds the copies read from DVC."""

    def __init__(self, root: Path, rev: str, name: str, scratch: Path):
        self.root, self.rev, self.name = Path(root), rev, name
        self.label = name if rev == WORKSPACE else f"{name} ({rev[:7]})"
        self.scratch = Path(scratch) / rev
        self._fs = None

    @property
    def workspace(self) -> bool:
        return self.rev == WORKSPACE

    def _dvcfs(self):
        if self._fs is None:
            from dvc.api import DVCFileSystem

            self._fs = DVCFileSystem(str(self.root), rev=self.rev)
        return self._fs

    def _missing(self, rel: str, tracked: bool) -> Missing:
        if self.workspace:
            return Missing(f"{rel}: not in the workspace; `dvc pull {rel}` (or `dvc repro`) puts it there", tracked)
        if not tracked:
            return Missing(f"{rel}: not in revision {self.label}: neither git nor DVC track it there", False)
        return Missing(f"{rel} of {self.label}: in neither the DVC cache nor the remote, so it cannot be shown "
                       f"(nothing is re-computed here): `dvc exp push` / `dvc push` it from where it was computed, "
                       f"or re-run it (`dvc exp apply {self.name}` and `dvc repro`)", True)

    def path(self, rel: str) -> Path:
        """A local path of file ``rel`` of the revision (the workspace's, or a copy read through DVC)."""
        if self.workspace:
            path = self.root / rel
            if not path.is_file():
                raise self._missing(rel, True)
            return path
        dest = self.scratch / PurePosixPath(rel)
        if dest.is_file():
            return dest
        from dvc.exceptions import DvcException
        from dvc_data.index.index import DataIndexError

        with DVC_LOCK:
            fs = self._dvcfs()
            try:
                fs.info(rel)
            except FileNotFoundError:
                raise self._missing(rel, False) from None
            except (DataIndexError, DvcException):
                raise self._missing(rel, True) from None
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            try:
                fs.get_file(rel, str(part))
            except (FileNotFoundError, DataIndexError, DvcException):
                part.unlink(missing_ok=True)
                raise self._missing(rel, True) from None
            part.replace(dest)
        return dest

    def text(self, rel: str) -> str:
        return self.path(rel).read_text(encoding="utf-8")

    def names(self, rel: str) -> list[str]:
        """File names in folder ``rel`` of the revision (sorted)."""
        if self.workspace:
            folder = self.root / rel
            if not folder.is_dir():
                raise self._missing(rel, True)
            return sorted(p.name for p in folder.iterdir() if p.is_file())
        from dvc.exceptions import DvcException
        from dvc_data.index.index import DataIndexError

        with DVC_LOCK:
            try:
                entries = self._dvcfs().ls(rel, detail=True)
            except FileNotFoundError:
                raise self._missing(rel, False) from None
            except (DataIndexError, DvcException):
                raise self._missing(rel, True) from None
        return sorted(PurePosixPath(e["name"]).name for e in entries if e["type"] == "file")


class Scratch:
    """A temporary folder for the files read from other revisions, removed by :meth:`close` or when the process
    exits."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="geofoundry-compare-"))
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, True)

    def close(self) -> None:
        self._remove()
