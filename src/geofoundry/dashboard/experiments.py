"""The experiments of a DVC repository as table rows: the workspace, HEAD and the tips of its branches and tags, the
``dvc exp`` runs based on them, with their params and metrics, collected by DVC itself (``dvc exp show
--all-branches --all-tags``); and the metric difference of two rows, as ``dvc metrics diff`` computes it.

A commit never changes, so what DVC collected for one (read errors included: a metrics file that a commit lacks) is
kept by SHA in memory and under ``.dvc/tmp/`` (:class:`RevisionCache`); a listing then costs DVC only the walk of
its refs, and the workspace is read again only when one of its files changed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from ..errors import GeofoundryError
from ..io.atomic import write_text

CACHE_DIR = "geofoundry-dashboard/exps"  # under the repository's .dvc/tmp
WORKSPACE = "workspace"
DVC_LOCK = threading.RLock()  # one DVC operation at a time in this process (DVC's repo objects are not thread-safe)


def _encoded(value):
    """JSON for what DVC's results hold besides plain data: datetimes and read errors."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "msg": str(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class RevisionCache:
    """DVC's experiment data (``SerializableExp``) of each commit, by SHA: in memory and in ``folder``. It stands in
    for DVC's own cache (``repo.experiments.cache``), which keeps nothing that holds a read error."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.memory: dict = {}

    def get(self, rev: str):
        from dvc.repo.experiments.serialize import SerializableExp

        if rev not in self.memory:
            try:
                kept = json.loads((self.folder / rev).read_bytes())
            except (FileNotFoundError, ValueError):
                return None
            stamp = kept.get("timestamp")
            self.memory[rev] = SerializableExp(rev=rev, timestamp=datetime.fromisoformat(stamp) if stamp else None,
                                               params=kept.get("params", {}), metrics=kept.get("metrics", {}),
                                               meta=kept.get("meta", {}))
        return self.memory[rev]

    def put(self, exp, rev: str | None = None, force: bool = False) -> None:
        """Keep ``exp`` (its params, metrics and time: what the table shows) unless already kept."""
        from dvc.repo.experiments.serialize import SerializableExp

        rev = rev or getattr(exp, "rev", None)
        if not isinstance(exp, SerializableExp) or not rev or rev == WORKSPACE or rev in self.memory:
            return
        self.memory[rev] = exp
        self.folder.mkdir(parents=True, exist_ok=True)
        kept = {"timestamp": exp.timestamp, "params": exp.params, "metrics": exp.metrics, "meta": exp.meta}
        write_text(self.folder / rev, json.dumps(kept, default=_encoded))


def flat(results: dict) -> dict[str, object]:
    """``{file: {"data": {...}}}`` (DVC's params or metrics of a revision) → ``{"file:dotted.key": value}``; lists
    as compact JSON text; a file that could not be read as ``{"file:": "!"}``."""
    from dvc.utils.flatten import flatten

    out: dict[str, object] = {}
    for path, result in results.items():
        if result.get("error"):
            out[f"{path}:"] = "!"
            continue
        for key, value in flatten(result.get("data") or {}).items():
            out[f"{path}:{key}"] = json.dumps(value, separators=(",", ":")) if isinstance(value, list) else value
    return out


def _names(scm) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Branch and tag names of each commit SHA."""
    branches: dict[str, list[str]] = {}
    tags: dict[str, list[str]] = {}
    for ref in scm.iter_refs():
        for prefix, found in (("refs/heads/", branches), ("refs/tags/", tags)):
            if ref.startswith(prefix):
                sha = scm.get_ref(ref)
                if sha:
                    found.setdefault(sha, []).append(ref[len(prefix):])
    return branches, tags


@dataclass
class Row:
    """One row of the table: a revision (``id``: its SHA, or ``workspace``) and what DVC read there."""

    id: str
    name: str
    kind: str  # workspace | branch | tag | commit | experiment
    baseline: str | None
    created: str | None
    state: str
    error: str | None
    tags: list[str]
    params: dict
    metrics: dict  # DVC's {file: {"data": ...}}, as dvc metrics show gives it

    @cached_property
    def public(self) -> dict:
        """The row as the page shows it: params and metrics flattened (``file:dotted.key``)."""
        return {"id": self.id, "rev": self.id[:7] if self.id != WORKSPACE else WORKSPACE, "name": self.name,
                "kind": self.kind, "baseline": self.baseline, "created": self.created, "state": self.state,
                "error": self.error, "tags": self.tags, "params": flat(self.params), "metrics": flat(self.metrics)}


def _row(state, name: str, kind: str, baseline: str | None, run_state: str, tags: list[str]) -> Row:
    data = state.data
    error = state.error.msg if state.error is not None else None
    return Row(state.rev, name, kind, baseline,
               data.timestamp.isoformat() if data is not None and data.timestamp else None, run_state, error, tags,
               data.params if data is not None else {}, data.metrics if data is not None else {})


class Experiments:
    """The table of a DVC repository at ``root``, collected on demand (one collection at a time)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.cache = RevisionCache(self.root / ".dvc" / "tmp" / CACHE_DIR)
        self._workspace: tuple[tuple, Row] | None = None
        self.rows: dict[str, Row] = {}
        self.tags: dict[str, list[str]] = {}  # commit SHA → its tags, at the last collection

    def _stamp(self, row: Row | None) -> tuple:
        """Size and mtime of the files the workspace row was read from (dvc.yaml, dvc.lock, params, metrics)."""
        names = ["dvc.yaml", "dvc.lock", "params.yaml", *(row.params if row else ()), *(row.metrics if row else ())]
        stamp = []
        for name in names:
            try:
                st = (self.root / name).stat()
                stamp.append((name, st.st_size, st.st_mtime_ns))
            except OSError:
                stamp.append((name, None, None))
        return tuple(stamp)

    def _workspace_row(self, repo) -> Row:
        from dvc.repo.experiments.collect import collect_rev

        if self._workspace is not None and self._workspace[0] == self._stamp(self._workspace[1]):
            return self._workspace[1]
        row = _row(collect_rev(repo, WORKSPACE), WORKSPACE, WORKSPACE, None, "success", [])
        self._workspace = (self._stamp(row), row)
        return row

    def collect(self) -> list[Row]:
        """Every row, workspace first, then each baseline followed by its experiments (newest first, as DVC
        orders them); a commit that is both (an experiment with a version tag) is one row with its tags."""
        from dvc.repo import Repo

        if not (self.root / ".dvc").is_dir():
            raise GeofoundryError(f"{self.root}: not a DVC repository (no .dvc folder): the compare page lists the "
                                  "experiments of the project's DVC repository")
        with DVC_LOCK, Repo(str(self.root)) as repo:
            repo.experiments.cache = self.cache
            states = repo.experiments.show(revs=["HEAD"], all_branches=True, all_tags=True, hide_queued=True,
                                           hide_workspace=True)
            branches, tags = _names(repo.scm)
            rows = [self._workspace_row(repo)]
            tips = {r.revs[0].rev for base in states for r in base.experiments or []}
            seen: set[str] = set()
            for base in states:
                kind = "branch" if base.rev in branches else "tag" if base.rev in tags else "commit"
                name = (branches.get(base.rev) or tags.get(base.rev) or [base.name or base.rev[:7]])[0]
                found = [] if base.rev in tips else [(base, name, kind, None, "success")]  # listed as the experiment
                for exp_range in base.experiments or []:
                    tip = exp_range.revs[0]
                    found.append((tip, exp_range.name or tip.rev[:7], "experiment", name,
                                  exp_range.executor.state if exp_range.executor else "success"))
                for state, *described in found:
                    if state.data is not None and state.error is None:
                        self.cache.put(state.data, state.rev)
                    if state.rev not in seen:
                        seen.add(state.rev)
                        rows.append(_row(state, *described, tags.get(state.rev, [])))
            self.rows, self.tags = {r.id: r for r in rows}, tags
        return rows

    def row(self, rev: str) -> Row:
        """The row of ``rev`` (a SHA or ``workspace``) from the last collection (collecting once when none)."""
        if not self.rows:
            self.collect()
        if rev not in self.rows:
            raise KeyError(rev)
        return self.rows[rev]


def metrics_diff(a: Row, b: Row, with_unchanged: bool = True) -> dict:
    """``{file: {metric: {"old", "new", "diff"}}}`` from ``a`` to ``b``: what ``dvc metrics diff --json [--all] A
    B`` prints, computed by DVC's own diff on the rows' metrics."""
    from dvc.utils.diff import diff, format_dict

    def data(row: Row) -> dict:
        return {path: {"data": r.get("data") or {}} for path, r in row.metrics.items() if not r.get("error")}

    return diff(format_dict(data(a)), format_dict(data(b)), with_unchanged=with_unchanged)
