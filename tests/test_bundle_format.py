"""Delivered bundles as a versioned format: the committed bundle of every format version (``tests/fixtures``, made by
``make_bundle.py``) still reads and predicts a real DEV crop; format 1 is upgraded in memory, a newer format is
refused with the release it needs, and tampering is refused by the checksums whatever the version."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.windows import Window

from geofoundry import __version__
from geofoundry.bundle import open_bundle
from geofoundry.bundle.format import FORMAT_FILE, FORMAT_VERSION
from geofoundry.bundle.manifest import write_manifest
from geofoundry.bundle.onnx_session import onnx_session
from geofoundry.errors import GeofoundryError

from .project import env

FIXTURES = Path(__file__).parent / "fixtures"
CURRENT = FIXTURES / f"bundle_v{FORMAT_VERSION}"
STRICT_JSON, STRICT_YAML = ("bundle.json", "stats.json", "classes.json"), ("predict.yaml", "postprocess.yaml")


def contract(root: Path) -> dict[str, list[str]]:
    """What a reader parses strictly: the bundle's file names, and the keys of its JSON and YAML contracts."""
    out = {"files": sorted(p.name for p in root.iterdir())}
    for name in STRICT_JSON:
        out[name] = sorted(json.loads((root / name).read_text()))
    for name in STRICT_YAML:
        out[name] = sorted(yaml.safe_load((root / name).read_text()))
    return out


def rewrite(bundle: Path, files: dict[str, bytes | None]) -> None:
    """Replace (or, with None, delete) files of ``bundle`` and write its SHA256SUMS again, as a writer would."""
    for name, data in files.items():
        (bundle / name).unlink() if data is None else (bundle / name).write_bytes(data)
    write_manifest(bundle)


def as_json(data) -> bytes:
    return json.dumps(data, indent=2).encode() + b"\n"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("bundle_v*")), ids=lambda p: p.name)
def test_every_kept_bundle_reads(path):
    bundle = open_bundle(path)
    assert bundle.format_version == int(path.name.removeprefix("bundle_v"))
    assert json.loads(bundle.files[FORMAT_FILE])["format_version"] == FORMAT_VERSION
    spec, outputs = bundle.spec, bundle.outputs
    assert outputs[:len(spec.classes)] == spec.classes and bundle.postprocess.steps and bundle.predict.tile >= 32
    assert bundle.card["model"]["classes"] == outputs
    probs = onnx_session(bundle.model, len(spec.bands))(np.full((2, len(spec.bands), 64, 96), 120, np.float32))
    assert probs.shape == (2, len(outputs), 64, 96)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_the_current_format_has_a_small_kept_bundle():
    assert CURRENT.is_dir(), f"no {CURRENT}: run `python tests/fixtures/make_bundle.py` for format {FORMAT_VERSION}"
    assert json.loads((CURRENT / "card.json").read_text())["format"] == f"geofoundry-bundle/{FORMAT_VERSION}"
    blobs = {hashlib.sha256(p.read_bytes()).hexdigest(): p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file()}
    assert sum(blobs.values()) < 1 << 20  # kept in git (one blob per content): stays small


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("bundle_v*")), ids=lambda p: p.name)
def test_every_kept_bundle_describes_its_model_in_stac_mlm(path):
    """mlm.json (written by the export from format 4, made by the upgrader before) reads as a STAC MLM item."""
    import pystac

    bundle = open_bundle(path)
    item = pystac.Item.from_dict(bundle.json("mlm.json"))
    assert any("/mlm/" in e for e in item.stac_extensions) and item.assets["model"].href == "./model.onnx"
    [inputs], [outputs] = item.properties["mlm:input"], item.properties["mlm:output"]
    assert inputs["bands"] == bundle.spec.bands and inputs["input"]["shape"][1] == len(bundle.spec.bands)
    assert [c["name"] for c in outputs["classification:classes"]] == bundle.outputs


@pytest.mark.parametrize("auxiliary_key", [True, False], ids=["last unversioned", "before auxiliary classes"])
def test_format_1_is_upgraded_in_memory(tmp_path, auxiliary_key):
    """Format 1 as the export wrote it: no bundle.json, and before border/contact models no 'auxiliary' key."""
    v1 = shutil.copytree(FIXTURES / "bundle_v2", tmp_path / "v1")
    classes = json.loads((v1 / "classes.json").read_text())
    card = {**json.loads((v1 / "card.json").read_text()), "format": "geofoundry-bundle/1"}
    if not auxiliary_key:
        del classes["auxiliary"]
    rewrite(v1, {FORMAT_FILE: None, "classes.json": as_json(classes), "card.json": as_json(card)})
    delivered = {p.name: p.read_bytes() for p in v1.iterdir()}
    bundle = open_bundle(v1, hashlib.sha256(delivered["SHA256SUMS"]).hexdigest())
    assert bundle.format_version == 1 and bundle.outputs == ["background", "building"]
    assert json.loads(bundle.files["classes.json"])["auxiliary"] == []
    assert json.loads(bundle.files[FORMAT_FILE])["format_version"] == FORMAT_VERSION
    assert {p.name: p.read_bytes() for p in v1.iterdir()} == delivered  # nothing rewritten on disk


def test_a_newer_format_is_refused_with_the_release_it_needs(tmp_path):
    newer = shutil.copytree(CURRENT, tmp_path / "newer")
    info = {**json.loads((newer / FORMAT_FILE).read_text()), "format_version": FORMAT_VERSION + 1,
            "needs_geofoundry": "9.1.0"}
    rewrite(newer, {FORMAT_FILE: as_json(info), "classes.json": None})
    (newer / "model.safetensors").write_bytes(b"\0" * 64)  # a file type this reader does not know
    with pytest.raises(GeofoundryError) as err:
        open_bundle(newer)
    assert (f"bundle format {FORMAT_VERSION + 1} needs geofoundry >= 9.1.0 (this is {__version__}, which reads "
            f"bundle formats 1 to {FORMAT_VERSION})") in str(err.value)


@pytest.mark.parametrize("info", [{"format": "geofoundry-bundle", "format_version": "two"},
                                  {"format": "other", "format_version": 2}, {"format_version": 0}])
def test_a_bad_format_version_names_bundle_json(tmp_path, info):
    bundle = shutil.copytree(CURRENT, tmp_path / "bundle")
    rewrite(bundle, {FORMAT_FILE: as_json(info)})
    with pytest.raises(GeofoundryError, match=r"bundle\.json: needs \"format\": \"geofoundry-bundle\""):
        open_bundle(bundle)


@pytest.mark.parametrize("name, edit", [
    ("model.onnx", lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:]),
    (FORMAT_FILE, lambda b: b.replace(f'"format_version": {FORMAT_VERSION}'.encode(), b'"format_version": 1'))])
def test_a_tampered_kept_bundle_is_refused_by_its_checksums(tmp_path, name, edit):
    bundle = shutil.copytree(CURRENT, tmp_path / "bundle")
    (bundle / name).write_bytes(edit((bundle / name).read_bytes()))
    with pytest.raises(GeofoundryError, match=f"{name}: checksum mismatch"):
        open_bundle(bundle)


@pytest.fixture(scope="module")
def dev_crop(tmp_path_factory, dev_root) -> Path:
    """512 x 512 px of a real DEV scene (Kampala, 0.3 m, EPSG:3857) with its mask, as a client's GeoTIFF."""
    out = tmp_path_factory.mktemp("crop") / "kampala_crop.tif"
    window = Window(1536, 0, 512, 512)
    with rasterio.open(dev_root / "images" / "kampala_ug_z19.tif") as src:
        profile = {**src.profile, "width": 512, "height": 512, "transform": src.window_transform(window),
                   "compress": "deflate", "photometric": "rgb"}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.write_mask(src.dataset_mask(window=window))
    return out


def test_predict_with_the_kept_bundle_on_a_dev_crop(dev_crop, tmp_path):
    """`geofoundry predict --bundle` in a clean process: probabilities on the scene's grid, then objects."""
    import pyogrio  # here only: the GPU tests import this module's helpers where pyogrio is not installed

    before = {p.name: p.stat().st_mtime_ns for p in CURRENT.iterdir()}
    proc = subprocess.run([sys.executable, "-m", "geofoundry", "predict", "--bundle", str(CURRENT), str(dev_crop),
                           "--out", "out"], cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bundle = open_bundle(CURRENT)
    with rasterio.open(dev_crop) as src, rasterio.open(tmp_path / "out" / "kampala_crop.tif") as got:
        assert (got.crs, got.transform, got.shape) == (src.crs, src.transform, src.shape)
        assert got.count == len(bundle.outputs) - 1 and got.dtypes[0] == "uint8"
        assert got.descriptions == tuple(f"p({c})" for c in bundle.outputs[1:])
        valid = got.dataset_mask() > 0
        assert np.array_equal(valid, src.dataset_mask() > 0) and valid.mean() > 0.9
        assert np.ptp(got.read(1)[valid]) > 100  # the model separates something on real imagery
    objects = pyogrio.read_dataframe(tmp_path / "out" / "kampala_crop.gpkg", layer="objects")
    assert {"class_name", "score", "area_m2"} <= set(objects.columns) and objects.crs.to_epsg() == 3857
    assert len(objects) > 0 and set(objects["class_name"]) == {"building"}
    assert {p.name: p.stat().st_mtime_ns for p in CURRENT.iterdir()} == before
