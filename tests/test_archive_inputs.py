"""What an archive run is given: every kind of input found in order, URLs turned into GDAL virtual paths, and bad
inputs refused before anything runs, naming them (docs/ERRORS.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geofoundry.archive.sources import find_scenes, gdal_path
from geofoundry.config import PredictConfig, TrainConfig
from geofoundry.errors import GeofoundryError
from geofoundry.models.device import resolve_device

from .project import ROOT, env

BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v4"


@pytest.fixture
def folder(tmp_path, dev_root) -> Path:
    out = tmp_path / "scenes"
    out.mkdir()
    for name in ("kampala_ug_z19", "nairobi_ke_z19"):
        shutil.copy(dev_root / "images" / f"{name}.tif", out)
    return out


def item(name: str, href: str, assets: dict | None = None) -> dict:
    return {"type": "Feature", "stac_version": "1.1.0", "id": name, "geometry": None,
            "properties": {"datetime": "2020-01-01T00:00:00Z"}, "links": [],
            "assets": assets if assets is not None else {"visual": {"href": href, "type": "image/tiff"}}}


def test_every_kind_of_input(tmp_path, folder):
    (tmp_path / "list.txt").write_text(f"# scenes\n{folder / 'kampala_ug_z19.tif'}\n\nscenes/nairobi_ke_z19.tif\n")
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [
        item("a", "scenes/kampala_ug_z19.tif"), item("b", "https://example.org/b.tif"),
        item("c", "s3://bucket/c.tif",
             {"thumb": {"href": "t.png"}, "B": {"href": "gs://x/c.tif", "roles": ["data"]}})]}))
    assert [s.name for s in find_scenes([str(folder)])] == ["kampala_ug_z19", "nairobi_ke_z19"]
    assert [s.path for s in find_scenes([str(tmp_path / "list.txt")])] == [
        str(folder / "kampala_ug_z19.tif"), str(tmp_path / "scenes" / "nairobi_ke_z19.tif")]
    assert [s.name for s in find_scenes([str(folder / "*19.tif")])] == ["kampala_ug_z19", "nairobi_ke_z19"]
    stac = find_scenes([str(tmp_path / "items.json")])
    assert [(s.name, s.path) for s in stac] == [("a", str(tmp_path / "scenes/kampala_ug_z19.tif")),
                                                ("b", "/vsicurl/https://example.org/b.tif"), ("c", "/vsigs/x/c.tif")]
    assert stac[0].item["id"] == "a"
    assert gdal_path("s3://bucket/key.tif") == "/vsis3/bucket/key.tif"
    assert gdal_path("az://container/k.tif") == "/vsiaz/container/k.tif"
    assert find_scenes(["/vsis3/bucket/x.tif"])[0].name == "x"


@pytest.mark.parametrize("case, message", [
    ("missing", r"missing.tif: scene not found \(a file, folder, list file, glob"),
    ("twice", r"scenes named alike \(outputs are named after them\): kampala_ug_z19"),
    ("glob", r"nothing\*.tif: scene not found, and no file matches it as a pattern"),
    ("empty folder", r"empty: no scene \(.tif"),
    ("not stac", r"bad.json: not a STAC ItemCollection or Item"),
    ("no image", r"items.json: item 'a' has no image asset"),
])
def test_bad_inputs_are_refused(tmp_path, folder, case, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text('{"type": "FeatureCollection", "features": [{"id": 3}]}')
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [
        item("a", "", {"thumb": {"href": "t.png", "type": "image/png"}})]}))
    given = {"missing": [str(tmp_path / "missing.tif")],
             "twice": [str(folder), str(folder / "kampala_ug_z19.tif")],
             "glob": [str(tmp_path / "nothing*.tif")], "empty folder": [str(tmp_path / "empty")],
             "not stac": [str(tmp_path / "bad.json")], "no image": [str(tmp_path / "items.json")]}[case]
    with pytest.raises(GeofoundryError, match=message):
        find_scenes(given)


def test_the_command_names_a_bad_input_and_writes_nothing(tmp_path, folder):
    proc = subprocess.run([sys.executable, "-m", "geofoundry", "predict", "--bundle", str(BUNDLE), str(folder),
                           str(folder / "kampala_ug_z19.tif"), "--out", str(tmp_path / "out")],
                          env={**env(), "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "error (predict): scenes named alike" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_devices_by_index():
    assert PredictConfig(device="cuda:1").device == "cuda:1" and TrainConfig(device="cuda").device == "cuda"
    for bad in ("gpu", "cuda:", "cuda:-1", "cuda1"):
        with pytest.raises(ValueError, match="one of auto, cpu, cuda, cuda:N"):
            PredictConfig(device=bad)
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(GeofoundryError, match=rf"predict.device: cuda:{count}, but this machine has {count} CUDA"):
        resolve_device(f"cuda:{count}", "predict.device")
