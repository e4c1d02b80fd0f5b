"""Promote a revision to a model version: the checks, the commands, and the registration with GTO.

A version is a git tag ``<artifact>@<version>`` (``gto register``) on a commit whose ``dvc.yaml`` declares the model
artifact (``artifacts:``, type ``model``); ``dvc artifacts get <repo> <artifact> --rev <version>`` then fetches that
commit's bundle from the DVC remote. So a revision is refused when it is not a commit (the workspace), when its
bundle is in neither the DVC cache nor the remote, when its pipeline is not up to date (``dvc status`` at that
commit: a stage whose code, params or command differ from its ``dvc.lock``), or when the version exists.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from ..errors import GeofoundryError
from .experiments import DVC_LOCK, WORKSPACE, Row
from .revisions import RevisionFiles


class Refused(GeofoundryError):
    """A promotion that the checks refuse (the problems, one a line)."""


def artifact(files: RevisionFiles) -> tuple[str, str]:
    """(name, path) of the model artifact that the revision's dvc.yaml declares."""
    try:
        doc = yaml.safe_load(files.text("dvc.yaml")) or {}
    except yaml.YAMLError as e:
        raise GeofoundryError(f"dvc.yaml of {files.label}: not YAML ({e})") from None
    for name, spec in (doc.get("artifacts") or {}).items():
        if isinstance(spec, dict) and spec.get("type") == "model" and spec.get("path"):
            return name, str(spec["path"])
    raise GeofoundryError(f"dvc.yaml of {files.label} declares no model artifact (artifacts: <name>: {{path: "
                          "export/bundle, type: model}}; docs/DELIVERY.md)")


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GeofoundryError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def stale_stages(root: Path, sha: str) -> list[str]:
    """``dvc status`` of commit ``sha``, in a temporary git worktree: the stages whose dependencies (code, params,
    git-tracked data) or command differ from what its dvc.lock records. Outputs are not compared (a worktree has
    none checked out), nor are dependencies that are other stages' outputs or DVC-tracked data (likewise absent)."""
    from dvc.repo import Repo

    tmp = Path(tempfile.mkdtemp(prefix="geofoundry-status-"))
    tree = tmp / "tree"
    try:
        _git(root, "worktree", "add", "--quiet", "--detach", str(tree), sha)
        with DVC_LOCK, Repo(str(tree)) as repo:
            status = repo.status()
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root, capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    stale = []
    for stage, changes in status.items():
        name = stage.rsplit(":", 1)[-1]
        for change in changes:
            if isinstance(change, str):
                stale.append(f"{name}: {change}")
            elif "changed deps" in change:
                deps = {p: s for p, s in change["changed deps"].items() if s != "deleted"}
                stale += [f"{name}: {p} " + (s if isinstance(s, str) else ", ".join(f"{k} {v}" for k, v in s.items()))
                          for p, s in deps.items()]
    return stale


def missing_bundle_files(root: Path, sha: str, path: str) -> tuple[int, int, str | None]:
    """(files of the bundle at ``sha``, how many are in neither the cache nor the remote, the default remote)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc_data.index.index import DataIndexError

    with DVC_LOCK, Repo(str(root)) as repo:
        remote = repo.config["core"].get("remote")
        try:
            for _ in repo.brancher(revs=[sha], workspace=False):  # the commit's dvc.yaml and dvc.lock, nothing else
                used = repo.index.used_objs([repo.fs.join(repo.root_dir, path)])
        except (DvcException, DataIndexError, FileNotFoundError):  # its listing is in neither place
            return 1, 1, remote
        objs = set().union(*used.values()) if used else set()
        if remote is None:
            return len(objs), sum(not repo.cache.local.exists(o.value) for o in objs), None
        return len(objs), len(repo.cloud.status(objs).missing), remote


def plan(root: Path, row: Row, files: RevisionFiles, version: str, tags: dict[str, list[str]]) -> dict:
    """What promoting ``row`` as ``version`` would run, and why it would be refused (``problems``, empty when it
    would not). ``tags`` maps commit SHAs to their tag names."""
    from gto.versions import SemVer

    problems: list[str] = []
    if row.kind == WORKSPACE:
        return {"problems": [("the workspace is not a commit: commit it (git add -A && git commit) or promote the "
                              "experiment or branch it came from")], "commands": []}
    if not SemVer.is_valid(version):
        problems.append(f"version {version!r}: not a semantic version with a leading v (v1.2.0)")
    try:
        name, path = artifact(files)
    except GeofoundryError as e:
        return {"problems": [*problems, str(e)], "commands": []}
    tag = f"{name}@{version}"
    holder = next((sha for sha, names in tags.items() if tag in names), None)
    if holder:
        problems.append(f"version {version} of {name} exists already (tag {tag} on {holder[:7]})")
    earlier = [t for t in tags.get(row.id, []) if t.startswith(f"{name}@")]
    if earlier:
        problems.append(f"{files.label} is already version {', '.join(t.split('@', 1)[1] for t in earlier)} of "
                        f"{name}")
    n_files, n_missing, remote = missing_bundle_files(root, row.id, path)
    if not n_files or n_missing:
        problems.append(f"{path} of {files.label}: {n_missing} of its {n_files} files are in neither the DVC cache "
                        "nor the remote" if n_files else f"{files.label} has no {path} (its export did not run)")
    if remote is None:
        problems.append("no default DVC remote (dvc remote add -d <name> <url>): `dvc artifacts get` fetches the "
                        "bundle from it")
    stale = stale_stages(root, row.id)
    if stale:
        problems.append(f"dvc status of {files.label} is not clean: " + "; ".join(stale))
    return {"artifact": name, "path": path, "tag": tag, "remote": remote, "problems": problems,
            "commands": [f"gto register {name} {row.id} --version {version}   # git tag {tag} on {files.label}",
                         f"dvc push --all-tags {path}   # the bundle to the DVC remote {remote or '(none)'}",
                         f"dvc artifacts get <this repository> {name} --rev {version}   # where it is delivered"]}


def register(root: Path, row: Row, files: RevisionFiles, version: str, tags: dict[str, list[str]]) -> dict:
    """Check again, upload the revision's bundle to the default remote, then create the version's tag (so a failed
    upload leaves no tag). Returns the plan with ``registered``: the tag."""
    from dvc.repo import Repo
    from gto.api import register as gto_register

    done = plan(root, row, files, version, tags)
    if done["problems"]:
        raise Refused("\n".join(done["problems"]))
    with DVC_LOCK, Repo(str(root)) as repo:
        repo.push(targets=[done["path"]], revs=[row.id], workspace=False)
    gto_register(str(root), done["artifact"], row.id, version=version,
                 message=f"{done['artifact']} {version}: {files.label}")
    return {**done, "registered": done["tag"]}
