"""Scenes in every dtype the raw layout allows, and scenes GDAL cannot read: predicted like their uint8 originals, or
refused with one ``error (<command>): …`` line that names the file (the same dtype check and message on every
path), exit status 1 and nothing written.

Scenes are a 512² cut of a real DEV scene (at the model's GSD, with its internal mask and part of its nodata
collar), re-encoded, corrupted or truncated; bundles are the session's, told which dtype their stretch was fitted
on (``bundle_for``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from .conftest import PARAMS, assert_error, link_tree, replace_bytes, run_cli, run_stage, snapshot
from .processes import assert_ok
from .rasters import DEV_SCENE, RGB, SCENE, convert, corrupt_block, cut, read_map, truncate, write_scene

GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "float32": "Float32"}
KINDS = {"uint8": ("uint8", None), "float32": ("float32", None), "float32-nan": ("float32", float("nan")),
         "uint16": ("uint16", None)}  # the cut in each dtype: an internal mask, or nodata NaN


def dtype_refusal(scene, dtype: str, fitted: str) -> str:
    return (f"{scene}: {dtype} pixels, but the model's stretch was fitted on {fitted} values; convert the scene to "
            f"the training data's type and value range (e.g. gdal_translate -ot {GDAL_TYPES[fitted]} -scale <min> "
            "<max> <out_min> <out_max>) or train on such data")


def unreadable(path) -> re.Pattern:
    return re.compile(re.escape(f"{path}: cannot read the image (") + r".+"
                      + re.escape("); is the file corrupt or truncated, or not a GeoTIFF?"))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, object]:
    """The cut in every dtype of :data:`KINDS` (the same values: a model fitted on them sees the same input)."""
    base = tmp_path_factory.mktemp("cuts")
    return {kind: cut(base / f"{kind}.tif", dtype=dtype, nodata=nodata) for kind, (dtype, nodata) in KINDS.items()}


@pytest.fixture
def site(tmp_path):
    """A client's folder with an earlier result in out/, which a refused run must leave as it was."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.tif").write_bytes(b"an earlier run's map")
    return tmp_path


def predict(site, bundle, scene, out="out"):
    return run_cli("predict", "--bundle", str(bundle), str(scene), "--out", out, cwd=site)


@pytest.fixture(scope="module")
def uint8_map(tmp_path_factory, bundle, scenes):
    site = tmp_path_factory.mktemp("uint8-map")
    assert_ok(predict(site, bundle, scenes["uint8"]))
    return read_map(site / "out" / "uint8.tif")


# ---------------------------------------------------------------- every dtype predicted alike


@pytest.mark.parametrize("kind", ["float32", "float32-nan", "uint16"])
def test_scene_of_another_dtype_is_predicted_like_uint8(kind, bundle_for, scenes, uint8_map, site):
    """float32 (internal mask, or nodata NaN) and uint16 scenes at the model's GSD through ``predict --bundle`` of
    a model fitted on such values: the map of the uint8 scene, exactly (once: "the out array's dtype 'float32' does
    not match 'uint8'", and NaN nodata turned every tile it touched into NaN)."""
    assert_ok(predict(site, bundle_for(KINDS[kind][0]), scenes[kind]))
    values, mask, transform = read_map(site / "out" / f"{kind}.tif")
    want_values, want_mask, want_transform = uint8_map
    assert transform == want_transform and (mask == want_mask).all() and (mask > 0).any()
    assert (values == want_values).all()


@pytest.mark.slow  # a predict stage in torch for each dtype (~20 s)
@pytest.mark.parametrize("kind", ["float32-nan", "uint16"])
def test_predict_stage_takes_every_dtype(kind, tmp_path, project, small_raw, selection_dir, predicted_project):
    """The predict stage on float32 (nodata NaN) and uint16 copies of the selection's scenes, stats.json fitted on
    such values: the maps of the uint8 scenes, exactly."""
    dtype, nodata = KINDS[kind]
    scenes = pd.read_parquet(selection_dir / "scenes.parquet")
    scenes["image_path"] = [str(convert(small_raw / "images" / f"{s}.tif", tmp_path / f"{s}.tif", dtype,
                                        nodata=nodata)) for s in scenes["scene_id"]]
    scenes.to_parquet(project / "data" / "selection" / "scenes.parquet", index=False)
    stats = project / "data" / "chips" / "stats.json"
    stats.write_text(json.dumps({**json.loads(stats.read_text()), "source_dtype": dtype}))
    assert_ok(run_stage(project, "predict"))
    maps, stage_maps = project / "data" / "predictions", predicted_project / "data" / "predictions"
    names = sorted(p.relative_to(stage_maps) for p in stage_maps.rglob("*.tif"))
    assert names and sorted(p.relative_to(maps) for p in maps.rglob("*.tif")) == names
    for name in names:
        got, want = read_map(maps / name), read_map(stage_maps / name)
        assert got[2] == want[2] and (got[1] == want[1]).all() and (got[0] == want[0]).all()


def tiny_raw(root, kind: str):
    """A raw dataset of the cut alone, in the dtype of ``kind``, with the scene's real labels."""
    dtype, nodata = KINDS[kind]
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    cut(root / "images" / f"{SCENE}.tif", dtype=dtype, nodata=nodata)
    shutil.copy(DEV_SCENE.parents[1] / "labels" / f"{SCENE}.geojson", root / "labels" / f"{SCENE}.geojson")
    row = pd.read_csv(DEV_SCENE.parents[1] / "scenes.csv", dtype=str, keep_default_na=False)
    row = row[row["scene_id"] == SCENE].assign(width="512", height="512", dtype=dtype,
                                               nodata="" if nodata is None else "nan")
    row.to_csv(root / "scenes.csv", index=False)
    return root


@pytest.mark.parametrize("kind", ["float32-nan", "uint16"])
def test_catalog_of_float_nan_and_uint16_scenes(kind, tmp_path):
    """The scan that select and the catalog share, on a float32 scene with nodata NaN (once: "cannot convert float
    NaN to integer" in the pixel contexts) and a uint16 one: the blocks and contexts of the same pixels in uint8."""
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    found = {}
    for name in ("uint8", kind):
        assert_ok(run_cli("catalog", "--raw", str(tiny_raw(tmp_path / name, name)), "--out", f"cat-{name}",
                          cwd=tmp_path))
        found[name] = pd.read_parquet(tmp_path / f"cat-{name}" / "blocks.parquet").drop(columns="geometry")
    got, want = (f.sort_values(["ix", "iy"]).reset_index(drop=True) for f in (found[kind], found["uint8"]))
    assert len(want) and list(got["ix"]) == list(want["ix"]) and list(got["iy"]) == list(want["iy"])
    for column in want.select_dtypes("number").columns:
        assert np.allclose(got[column], want[column], atol=0.01, equal_nan=True), column


@pytest.mark.slow  # two select stages on the DEV scenes (~25 s)
def test_select_takes_float_nan_scenes(raw_workspace, small_raw):
    """select on float32 copies (nodata NaN) of the DEV scenes: the blocks, splits and object counts of the
    uint8 scenes."""
    assert_ok(run_stage(raw_workspace, "select"))
    want = pd.read_parquet(raw_workspace / "data" / "selection" / "blocks.parquet").drop(columns="geometry")
    raw = raw_workspace / "data" / "raw"
    table = pd.read_csv(raw / "scenes.csv", dtype=str, keep_default_na=False)
    for _, row in table.iterrows():
        convert(small_raw / row["image"], raw / "float.tif", "float32", nodata=float("nan"))
        (raw / "float.tif").replace(raw / row["image"])  # a new file: the session's, hard-linked, stays
    replace_bytes(raw / "scenes.csv", table.assign(dtype="float32", nodata="nan").to_csv(index=False).encode())
    assert_ok(run_stage(raw_workspace, "select"))
    got = pd.read_parquet(raw_workspace / "data" / "selection" / "blocks.parquet").drop(columns="geometry")
    for column in ("block_id", "split", "n_scenes", "n_objects"):
        assert list(got[column]) == list(want[column]), column


@pytest.mark.slow  # two acceptance runs on the DEV scenes (~40 s)
def test_evaluate_bundle_takes_float_nan_scenes(bundle, bundle_for, small_raw, tmp_path):
    """The acceptance run on float32 copies of a dataset (nodata NaN) scores what it scores on the uint8 scenes,
    overlays included (NaN pixels drawn black)."""
    data = link_tree(small_raw, tmp_path / "float")
    table = pd.read_csv(data / "scenes.csv", dtype=str, keep_default_na=False)
    for image in table["image"]:
        convert(small_raw / image, data / "float.tif", "float32", nodata=float("nan"))
        (data / "float.tif").replace(data / image)
    replace_bytes(data / "scenes.csv", table.assign(dtype="float32", nodata="nan").to_csv(index=False).encode())
    metrics = {}
    for name, source, model in (("uint8", small_raw, bundle), ("float32", data, bundle_for("float32"))):
        assert_ok(run_cli("evaluate", "--bundle", str(model), "--data", str(source), "--out", name, cwd=tmp_path))
        metrics[name] = json.loads((tmp_path / name / "evaluate.json").read_text())
        assert len(list((tmp_path / name / "plots" / "overlays").glob("*.png"))) >= 1
    assert metrics["float32"] == metrics["uint8"]


# ---------------------------------------------------------------- one dtype check, one message, every path


@pytest.mark.parametrize("kind, fitted", [("uint16", "uint8"),
                                          pytest.param("float32", "uint8", marks=pytest.mark.slow),
                                          pytest.param("uint8", "float32", marks=pytest.mark.slow)])
def test_predict_bundle_refuses_a_dtype_its_stretch_was_not_fitted_on(kind, fitted, bundle, bundle_for, scenes,
                                                                       site):
    """A uint16 scene through a uint8 model was once stretched to white and "objects" written. Refused into a
    folder that exists (left as it was) or not (not made)."""
    model = bundle if fitted == "uint8" else bundle_for(fitted)
    before = snapshot(site)
    for out in ("out", "new/out"):
        assert_error(predict(site, model, scenes[kind], out), "predict", dtype_refusal(scenes[kind], kind, fitted))
    assert snapshot(site) == before and not (site / "new").exists()


def test_evaluate_bundle_refuses_it_with_the_same_message(bundle, small_raw, tmp_path):
    data = link_tree(small_raw, tmp_path / "client")
    table = pd.read_csv(data / "scenes.csv", dtype=str, keep_default_na=False)
    for image in table["image"]:
        convert(small_raw / image, data / "wide.tif", "uint16")
        (data / "wide.tif").replace(data / image)
    replace_bytes(data / "scenes.csv", table.assign(dtype="uint16").to_csv(index=False).encode())
    before = snapshot(tmp_path)
    proc = run_cli("evaluate", "--bundle", str(bundle), "--data", "client", "--out", "acc", cwd=tmp_path)
    reasons = [dtype_refusal(s, "uint16", "uint8") for s in table["scene_id"]]
    assert_error(proc, "evaluate", "client: no scene can be evaluated with this bundle (bands ['red', 'green', "
                                   "'blue'], uint8):\n" + "\n".join(f"  {r}" for r in reasons))
    assert snapshot(tmp_path) == before and not (tmp_path / "acc").exists()


# ---------------------------------------------------------------- scenes GDAL cannot read


def _png(path):
    from PIL import Image

    path.unlink()
    Image.new("RGB", (64, 64)).save(path, format="PNG")


UNREADABLE = {  # what is done to a copy of the cut → its message
    "corrupt block": (corrupt_block, unreadable),
    "truncated to 60 %": (lambda p: truncate(p, 0.6), unreadable),
    "truncated to 95 %": (lambda p: truncate(p, 0.95), unreadable),
    "a CSV named .tif": (lambda p: replace_bytes(p, b"scene_id,image\nk,images/k.tif\n"), unreadable),
    "an empty file": (lambda p: replace_bytes(p, b""), unreadable),
    "a PNG named .tif": (_png, lambda p: f"{p}: no CRS or geotransform, so its ground sample distance is unknown"),
}
FAST = ("corrupt block", "truncated to 60 %", "a CSV named .tif", "an empty file")


@pytest.mark.parametrize("case", [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in UNREADABLE])
def test_predict_bundle_names_a_scene_it_cannot_read(case, bundle, scenes, site):
    scene = Path(shutil.copy(scenes["uint8"], site / "scene.tif"))
    damage, message = UNREADABLE[case]
    damage(scene)
    before = snapshot(site)
    assert_error(predict(site, bundle, scene), "predict", message(scene))
    assert snapshot(site) == before


@pytest.fixture
def corrupt_project(project, small_raw, tmp_path):
    """A project whose selection points at copies of its scenes, the Kampala one with a corrupt block in its valid
    area (select's up-front check reads the last block only: the stage meets it half-way)."""
    scenes = pd.read_parquet(project / "data" / "selection" / "scenes.parquet")
    scenes["image_path"] = [str(shutil.copy(small_raw / "images" / f"{s}.tif", tmp_path / f"{s}.tif"))
                            for s in scenes["scene_id"]]
    corrupt_block(tmp_path / f"{SCENE}.tif")
    scenes.to_parquet(project / "data" / "selection" / "scenes.parquet", index=False)
    return project, tmp_path / f"{SCENE}.tif"


def test_preprocess_names_a_corrupt_block(corrupt_project):
    root, scene = corrupt_project
    before = snapshot(root)
    assert_error(run_stage(root, "preprocess"), "preprocess", unreadable(scene))
    assert snapshot(root) == before


@pytest.mark.slow  # the predict stage loads torch and the model first (~8 s)
def test_predict_stage_names_a_corrupt_block(corrupt_project):
    root, scene = corrupt_project
    (root / "data" / "predictions" / "test").mkdir(parents=True)
    (root / "data" / "predictions" / "test" / f"{SCENE}.tif").write_bytes(b"an earlier run's map")
    before = snapshot(root)
    assert_error(run_stage(root, "predict"), "predict", unreadable(scene))
    assert snapshot(root) == before


# ---------------------------------------------------------------- scenes GDAL reads that cannot be predicted


def rewritten(scenes, site, name: str, data=None, mask=None, descriptions=RGB, **profile):
    """The uint8 cut written again as ``site/name``, with other ``data``, ``mask``, band ``descriptions`` or
    georeferencing (``profile``)."""
    with rasterio.open(scenes["uint8"]) as ds:
        profile = {"driver": "GTiff", "crs": ds.crs, "transform": ds.transform, **profile}
        data = ds.read() if data is None else data
        mask = ds.dataset_mask() if mask is None else mask
    return write_scene(site / name, data, mask, profile, descriptions=descriptions)


def test_a_scene_without_valid_pixels_is_skipped_with_a_warning(bundle, scenes, site):
    scene = rewritten(scenes, site, "blank.tif", mask=np.zeros((512, 512), np.uint8))
    before = snapshot(site / "out")
    proc = predict(site, bundle, scene)
    assert_ok(proc)
    assert f"{scene}: no valid pixel in the prediction area; skipped" in proc.stderr
    assert "predicted 0 scene(s), 0 objects" in proc.stderr
    assert snapshot(site / "out") == before


def test_a_scene_without_crs_is_refused(bundle, scenes, site):
    scene = rewritten(scenes, site, "nocrs.tif", crs=None, transform=rasterio.Affine.identity())
    assert_error(predict(site, bundle, scene), "predict",
                 f"{scene}: no CRS or geotransform, so its ground sample distance is unknown")


def test_unnamed_bands_that_do_not_match_the_model_are_refused(bundle, scenes, site):
    with rasterio.open(scenes["uint8"]) as ds:
        data = ds.read()
    scene = rewritten(scenes, site, "four.tif", data=np.concatenate([data, data[:1]]), descriptions=None)
    assert_error(predict(site, bundle, scene), "predict",
                 f"{scene}: 4 unnamed bands, the model needs 3 (['red', 'green', 'blue']); name the scene's bands "
                 "with --bands NAME,NAME,NAME,NAME")
