"""A throw-away DVC repository with two tiny real experiments, for the compare page's tests: the whole pipeline on
two small DEV scenes (1 epoch), committed on main and pushed to a local DVC remote, then two `dvc exp run`s from it
that re-run postprocess, evaluate and export only: ``iou03`` (evaluate.iou_threshold 0.3: the same detections,
other matches) and ``thr04`` (a lower probability threshold: other detections)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml
from filelock import FileLock

from .project import env, make_project, sh

EXPERIMENTS = {
    "iou03": ["evaluate.iou_threshold=0.3"],
    "thr04": ["postprocess.steps=[{threshold:{value:0.4}},{open:{radius_px:2}},{fill_holes:{max_area_m2:10.0}},"
              "{polygonize:{}},{simplify:{tolerance_m:0.3}},{min_area:{area_m2:10.0}}]"],
}


def build(dst: Path, raw: Path) -> dict:
    """The repository (``repo``), its remote folder (``remote``) and the SHA of each row by name (``main`` and the
    experiments)."""
    repo = make_project(dst / "repo", raw)
    remote = dst / "remote"
    sh("dvc", "remote", "add", "-d", "store", str(remote), cwd=repo)
    for key, value in (("user.name", "test"), ("user.email", "test@example.invalid")):  # tags made in-process
        sh("git", "config", key, value, cwd=repo)
    sh("git", "commit", "-qam", "DVC remote", cwd=repo)
    sh("dvc", "repro", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline run", cwd=repo)
    sh("dvc", "push", "-q", cwd=repo)
    for name, overrides in EXPERIMENTS.items():
        sh("git", "reset", "-q", "--hard", cwd=repo)  # each from main: `dvc exp run` leaves its results applied
        sh("dvc", "checkout", "-q", cwd=repo)
        sh("dvc", "exp", "run", "-n", name, *(a for o in overrides for a in ("-S", o)), cwd=repo)
    revs = {"main": rev(repo, "main")}
    table = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    for base in table:
        for exp in base.get("experiments") or []:
            revs[exp["name"]] = exp["revs"][0]["rev"]
    return {"repo": repo, "remote": remote, "revs": revs}


def built_once(tmp_path_factory, raw: Path) -> dict:
    """:func:`build`'s result, built once per test run: pytest-xdist workers wait for the first under a file lock in
    their common temporary folder. Each worker gets its own copy of the repository (tests add tags and branches);
    the remote is shared (tests only read it)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    built, record = root / "compare-built", root / "compare-built.json"
    with FileLock(str(root / "compare-built.lock")):
        if not record.is_file():
            revs = build(built, raw)["revs"]
            record.write_text(json.dumps(revs))
    repo = tmp_path_factory.mktemp("compare") / "repo"
    shutil.copytree(built / "repo", repo, symlinks=True)
    return {"repo": repo, "remote": built / "remote", "revs": json.loads(record.read_text())}


def rev(repo: Path, name: str) -> str:
    return sh("git", "rev-parse", name, cwd=repo).stdout.strip()


def at(repo: Path, sha: str, path: str) -> dict:
    """A JSON file of commit ``sha``."""
    return json.loads(sh("git", "show", f"{sha}:{path}", cwd=repo).stdout)


def commit_with(repo: Path, parent: str, branch: str, changes: dict[str, str]) -> str:
    """A commit on ``parent`` with ``changes`` (path → new text) at ``refs/heads/<branch>``, the workspace and index
    untouched (git plumbing on a private index)."""
    index = repo / ".git" / f"index-{branch}"

    def git(*args: str, text: str | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=repo, input=text, capture_output=True, text=True, check=True,
                              env={**env(), "GIT_INDEX_FILE": str(index)})
        return proc.stdout.strip()

    git("read-tree", parent)
    for path, content in changes.items():
        blob = git("hash-object", "-w", "--stdin", text=content)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    sha = git("commit-tree", git("write-tree"), "-p", parent, "-m", f"{branch}: {', '.join(changes)}")
    git("update-ref", f"refs/heads/{branch}", sha)
    index.unlink()
    return sha


def with_param(repo: Path, sha: str, section: str, key: str, value) -> str:
    """params.yaml of commit ``sha`` with ``section.key`` set to ``value``."""
    params = yaml.safe_load(sh("git", "show", f"{sha}:params.yaml", cwd=repo).stdout)
    params[section][key] = value
    return yaml.safe_dump(params, sort_keys=False)
