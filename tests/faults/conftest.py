"""Fault injection, shared by every input kind: run stage scripts and the CLI as a user does (subprocesses), assert
the exact ``error (<stage>): …`` message and exit status, and that nothing in the workspace changed (no output
replaced, nothing half-written, no temporary file left). The real inputs (the bundle that tests/conftest.py exports
from the tiny model, a small RGB scene) are made once, so that each case only breaks one thing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import SPACENET
from ..project import ROOT, env, tiny_params
from .processes import assert_ok

PARAMS = ROOT / "params.yaml"
RGB_SCENE = SPACENET / "images" / "rio_img01_3band.tif"  # 439 × 406, named bands, EPSG:4326: seconds to predict
# Every folder a stage writes, each with an earlier output that a failed run must leave as it was.
OUTPUT_DIRS = ("data/selection", "data/chips", "models", "dvclive/train", "data/predictions", "data/vectors",
               "metrics", "plots/evaluate", "export")


def run_stage(repo: Path, name: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``stages/0N_<name>.py`` in ``repo``, as ``dvc repro`` runs it; ``prefix`` runs it under another command."""
    script = next((ROOT / "stages").glob(f"0*_{name}.py"))
    return subprocess.run([*prefix, sys.executable, str(script)], cwd=repo, env=env(), capture_output=True, text=True)


def run_cli(*args: str, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``geofoundry ARGS`` in ``cwd``; ``prefix`` runs it under another command (e.g. in a private mount)."""
    return subprocess.run([*prefix, sys.executable, "-m", "geofoundry", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True)


def error_message(proc: subprocess.CompletedProcess, stage: str) -> str:
    """What follows ``error (<stage>): `` on stderr, to its end (a message may have several lines)."""
    head = f"error ({stage}): "
    assert head in proc.stderr, proc.stderr[-3000:]
    return proc.stderr[proc.stderr.index(head) + len(head):].rstrip("\n")


def assert_error(proc: subprocess.CompletedProcess, stage: str, message: str | re.Pattern, status: int = 1) -> None:
    """Exit ``status``, no traceback, and exactly ``message`` (a string, or a pattern the whole message matches)
    after ``error (<stage>): ``, unwrapped."""
    assert proc.returncode == status, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    got = error_message(proc, stage)
    if isinstance(message, re.Pattern):
        assert message.fullmatch(got), f"{got!r} does not match {message.pattern!r}"
    else:
        assert got == message


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 1, no traceback, and each fragment in the error output."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (hidden ones too), by relative path: equal before and after a failed run
    means no output was replaced, nothing was half-written and no temporary file was left."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def link_tree(src: Path, dst: Path) -> Path:
    """A copy of ``src`` made of hard links (fast for large files); change a file only with :func:`replace_bytes`."""
    return Path(shutil.copytree(src, dst, copy_function=os.link))


def replace_bytes(path: Path, data: bytes) -> None:
    """Give ``path`` new content without touching the file it may share with the original (hard links)."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def edit_params(repo: Path, text: str) -> Path:
    """Write ``repo/params.yaml``: the project's, with ``text`` appended."""
    path = repo / "params.yaml"
    path.write_text(PARAMS.read_text() + text)
    return path


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A project folder: params.yaml and an earlier output in every stage's output folder."""
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    for rel in OUTPUT_DIRS:
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "earlier-output.txt").write_text(f"written by an earlier run of {rel}\n")
    return tmp_path


@pytest.fixture
def raw_workspace(workspace, small_raw) -> Path:
    """The workspace with two real DEV scenes at data/raw (scenes.csv a copy the case may break)."""
    link_tree(small_raw, workspace / "data" / "raw")
    replace_bytes(workspace / "data" / "raw" / "scenes.csv", (small_raw / "scenes.csv").read_bytes())
    return workspace


@pytest.fixture
def bundle_copy(tmp_path, bundle) -> Path:
    """A copy of the session bundle that a case may break."""
    return link_tree(bundle, tmp_path / "bundle")


@pytest.fixture(scope="session")
def bundle_for(tmp_path_factory, bundle):
    """``bundle_for(dtype)``: the session bundle told that its stretch was fitted on ``dtype`` values (stats.json's
    ``source_dtype``; the same model and stretch): a model trained on scenes of that dtype holding the values of
    the uint8 scenes, so its maps of such scenes must equal the uint8 ones."""
    made: dict[str, Path] = {}

    def get(dtype: str) -> Path:
        if dtype not in made:
            folder = link_tree(bundle, tmp_path_factory.mktemp(f"bundle-{dtype}") / "bundle")
            stats = json.loads((folder / "stats.json").read_text())
            replace_bytes(folder / "stats.json", json.dumps({**stats, "source_dtype": dtype}).encode())
            rewrite_manifest(folder)
            made[dtype] = folder
        return made[dtype]

    return get


def stage_project(root: Path, selection_dir: Path, chips_dir: Path, model: Path) -> Path:
    """A project folder ready for the predict stage (and preprocess, postprocess): params.yaml with the tests'
    small settings, the session's selection, the chips' stats.json and models/best.pt."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    shutil.copytree(selection_dir, root / "data" / "selection")
    (root / "data" / "chips").mkdir(parents=True)
    shutil.copy(chips_dir / "stats.json", root / "data" / "chips" / "stats.json")
    (root / "models").mkdir()
    shutil.copy(model, root / "models" / "best.pt")
    return root


@pytest.fixture
def project(tmp_path, selection_dir, chips_dir, tiny_model) -> Path:
    return stage_project(tmp_path / "project", selection_dir, chips_dir, tiny_model)


@pytest.fixture(scope="session")
def predicted_project(tmp_path_factory, selection_dir, chips_dir, tiny_model) -> Path:
    """A stage project (:func:`stage_project`) whose predict stage has run once: its maps and metrics are the
    reference of the cases that predict again (copy them, never change them)."""
    root = stage_project(tmp_path_factory.mktemp("predicted") / "project", selection_dir, chips_dir, tiny_model)
    assert_ok(run_stage(root, "predict"))
    return root


def rewrite_manifest(bundle_dir: Path) -> None:
    """Recompute ``SHA256SUMS`` after a change: a bundle consistent with itself, wrong inside."""
    from geofoundry.bundle.manifest import write_manifest

    (bundle_dir / "SHA256SUMS").unlink()  # not written in place: it may be a hard link to the session bundle's
    write_manifest(bundle_dir)


def mounts_allowed() -> bool:
    """Whether this user may mount a tmpfs in a private namespace (``unshare``): how a full or read-only device is
    made for real, without root on the machine."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True,
                          env=env()).returncode == 0


def on_device(folder: Path, *, size: str = "16m", readonly: bool = False, seed: Path | None = None) -> tuple[str, ...]:
    """A command prefix that runs a command where ``folder`` is a fresh tmpfs of ``size`` (with the files of
    ``seed`` copied in, then remounted read-only when asked), and prints the sha256 of every file left on it after
    the line ``--- left:`` (the device is gone with the namespace when the command returns)."""
    keep = f'S=$(mktemp -d) && cp -a "{seed}/." "$S" && ' if seed else ""  # seed may be the folder itself
    seed_cmd = 'cp -a "$S/." "$M"/ && rm -rf "$S" && ' if seed else ""
    ro_cmd = 'mount -o remount,ro "$M" && ' if readonly else ""
    script = (f'M="{folder}"; {keep}mount -t tmpfs -o size={size} tmpfs "$M" && {seed_cmd}{ro_cmd}'
              '{ "$@"; rc=$?; echo "--- left:"; (cd "$M" && find . -type f -exec sha256sum {} + | sort -k2); '
              'exit $rc; }')
    return ("unshare", "-rm", "sh", "-c", script, "sh")


def left_on_device(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """The files :func:`on_device` listed: {relative path: sha256}."""
    listing = proc.stdout.split("--- left:\n", 1)[1]
    return {name.removeprefix("./"): digest for digest, name in (ln.split(None, 1) for ln in listing.splitlines())}


needs_mounts = pytest.mark.skipif(not mounts_allowed(), reason="no private mount namespaces here (unshare -rm)")
