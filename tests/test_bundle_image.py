"""The bundle's Dockerfile, proved without Docker: a clean virtual environment built from exactly its install lines
(offline, from a wheelhouse filled from the package sources pip uses here) runs ``geofoundry predict --bundle`` and
``geofoundry evaluate --bundle`` on real data."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import venv

import pytest

from geofoundry.export.delivery import inference_pins, inference_requirements

from .conftest import copy_subset
from .faults.conftest import RGB_SCENE
from .project import ROOT

pytestmark = pytest.mark.slow
WHEELHOUSE = ROOT / "build" / "wheelhouse"  # kept between runs: only the first one downloads
SOURCE = "/opt/geofoundry"  # where the Dockerfile copies pyproject.toml and src


def install_commands(dockerfile: str) -> list[list[str]]:
    """Every ``RUN pip install …`` of the Dockerfile as an argument list (line continuations joined)."""
    lines = dockerfile.replace("\\\n", " ").splitlines()
    return [shlex.split(ln.removeprefix("RUN ")) for ln in lines if ln.startswith("RUN pip install")]


def clean_env() -> dict[str, str]:
    """This process's environment without anything that would let the venv see this checkout or this venv."""
    out = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    out["PATH"] = os.pathsep.join(p for p in out["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    return out


def test_dockerfile_pins_the_inference_extra_and_all_it_needs(bundle):
    commands = install_commands((bundle / "Dockerfile").read_text())
    pins = inference_pins()
    assert commands == [["pip", "install", *(f"{d}=={v}" for d, v in pins.items())],
                        ["pip", "install", "--no-deps", SOURCE]]
    names = {n.lower().replace("_", "-") for n in pins}
    assert {r.name.lower() for r in inference_requirements()} <= names
    assert {"zstandard", "onnxruntime", "pyarrow"} <= names and "torch" not in names


def test_clean_venv_from_the_dockerfile_runs_the_bundle(bundle, small_raw, tmp_path):
    commands = install_commands((bundle / "Dockerfile").read_text())
    source = tmp_path / "opt-geofoundry"  # the COPY lines: pyproject.toml and src of this source tree
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source / "pyproject.toml")
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    requirements = [a for a in commands[0][2:] if not a.startswith("-")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(WHEELHOUSE), "--only-binary=:all:",
                    *requirements, "setuptools>=68"], check=True, env=clean_env())

    venv.create(tmp_path / "venv", with_pip=True, clear=True)
    bin_dir = tmp_path / "venv" / "bin"
    for pip, install, *args in commands:
        args = [str(source) if a == SOURCE else a for a in args]
        subprocess.run([str(bin_dir / "python"), "-m", pip, install, "-q", "--no-index", "--find-links",
                        str(WHEELHOUSE), *args], check=True, env=clean_env(), cwd=tmp_path)
    installed = subprocess.run([str(bin_dir / "python"), "-m", "pip", "list", "--format=json"], check=True,
                               capture_output=True, text=True, env=clean_env()).stdout
    assert "torch" not in {p["name"] for p in json.loads(installed)}

    site = tmp_path / "site"
    site.mkdir()
    predict = subprocess.run([str(bin_dir / "geofoundry"), "predict", "--bundle", str(bundle), str(RGB_SCENE),
                              "--out", "out"], cwd=site, env=clean_env(), capture_output=True, text=True)
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert sorted(p.name for p in (site / "out").iterdir()) == [f"{RGB_SCENE.stem}.gpkg", f"{RGB_SCENE.stem}.tif"]
    data = copy_subset(small_raw, tmp_path / "client", ["kampala_ug_z19"])
    evaluate = subprocess.run([str(bin_dir / "geofoundry"), "evaluate", "--bundle", str(bundle), "--data",
                               str(data), "--out", "acc"], cwd=site, env=clean_env(), capture_output=True,
                              text=True)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert {"object", "pixel", "site_f1"} <= set(json.loads((site / "acc" / "evaluate.json").read_text()))
    assert "per_scene" in json.loads((site / "acc" / "report.json").read_text())
