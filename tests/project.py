"""Build a throw-away copy of this project in a temporary git repository, for real DVC runs in tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "select": {"sites": ["kampala_ug", "nairobi_ke"]},
    "preprocess": {"chip": {"size": 128, "stride": 128, "min_valid_frac": 0.25}},
    "train": {"epochs": 1, "samples_per_epoch": 8, "batch_size": 4, "threads": 1},
    "predict": {"tile": 256, "overlap": 32, "batch_size": 4},
    "export": {"parity_chips": 2},
    "rps": {"trials": 4},
}
TINY_RPS = {"postprocess.min_area.area_m2": [0, 10], "postprocess.threshold.value": [0.45, 0.5]}  # no predict


def env() -> dict[str, str]:
    """Subprocess environment: this venv first on PATH, offline switches, a git identity."""
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out['PATH']}"
    out.update(NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid")
    return out


def sh(*args: str, cwd: Path, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def deep_update(base: dict, update: dict) -> dict:
    for key, value in update.items():
        base[key] = deep_update(dict(base.get(key, {})), value) if isinstance(value, dict) else value
    return base


def tiny_params(params: dict | None = None) -> dict:
    """params.yaml with :data:`TINY` and ``params`` merged in; ``rps.settings`` replaced (by :data:`TINY_RPS` unless
    ``params`` gives them), not merged, so that no search predicts."""
    values = deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), deep_update(dict(TINY), params or {}))
    values["rps"]["settings"] = (params or {}).get("rps", {}).get("settings", TINY_RPS)
    return values


def make_project(dst: Path, raw: Path, params: dict | None = None) -> Path:
    """Copy stages, params, dvc.yaml, plot templates and sources to ``dst``, put ``raw`` at data/raw, commit,
    ``dvc init``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("stages", "src", "ensemble", "init", "splits"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, dst / name)
    (dst / "params.yaml").write_text(yaml.safe_dump(tiny_params(params), sort_keys=False))
    shutil.copytree(raw, dst / "data" / "raw")
    (dst / "data" / ".gitignore").write_text("/raw\n")
    sh("git", "init", "-q", "-b", "main", cwd=dst)
    sh("dvc", "init", "-q", cwd=dst)
    shutil.copytree(ROOT / ".dvc" / "plots", dst / ".dvc" / "plots")  # the project's plot templates
    sh("git", "add", "-A", cwd=dst)
    sh("git", "commit", "-qm", "project", cwd=dst)
    return dst
