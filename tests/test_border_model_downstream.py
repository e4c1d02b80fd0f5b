"""A footprint + border + contact model downstream: predict, postprocess, evaluate, export and the bundle.

The model is trained for a few seconds on real DEV chips, so its probabilities are nearly flat: the end-to-end
chain thresholds each band at its own 90th percentile, so that building, border and contact each win on some
pixels. What the postprocess ops make of border and contact pixels is checked exactly on hand-made probabilities.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import geopandas as gpd
import numpy as np
import onnxruntime as ort
import pytest
import rasterio
import torch
from rasterio.features import rasterize
from rasterio.windows import Window
from scipy import ndimage as ndi

from geofoundry import evaluate, export, postprocess, predict, train
from geofoundry.bundle import open_bundle
from geofoundry.bundle.manifest import write_manifest
from geofoundry.config import EvaluateConfig, ExportConfig, PostprocessConfig, PredictConfig, TrainConfig
from geofoundry.delivery.predict import predict_bundle
from geofoundry.errors import GeofoundryError
from geofoundry.models.input_spec import InputSpec
from geofoundry.models.outputs import footprints
from geofoundry.pipeline.params import load_params
from geofoundry.postprocess import SceneState, build_chain
from geofoundry.postprocess.run import read_scene
from geofoundry.predict.torch_model import build_model_fn

from .project import ROOT

OUTPUTS = ["background", "building", "border", "contact"]
BANDS = ["p(building)", "p(border)", "p(contact)"]
SCENE = "kampala_ug_z19"


@pytest.fixture(scope="module")
def border_model(chips_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("border_model")
    cfg = TrainConfig(epochs=1, samples_per_epoch=8, positive_fraction=0.5, batch_size=4, threads=1,
                      target="footprint_border_contact")
    train.run(cfg, "linknet", chips_dir, out / "models", out / "live")
    return out / "models" / "best.pt"


def thresholds(predictions) -> dict[str, float]:
    """The 90th percentile of the footprint probability p(building) + p(border) over the valid pixels of every
    scene (the threshold op scores the footprint)."""
    values = []
    for tif in sorted(predictions.glob("*.tif")):
        with rasterio.open(tif) as ds:
            values.append(footprints(ds.read(), ("border", "contact"), 255)[0][ds.dataset_mask() > 0])
    return {"building": float(np.percentile(np.concatenate(values), 90) / 255)}


@pytest.fixture(scope="module")
def downstream(border_model, selection_dir, chips_dir, tmp_path_factory):
    """predict → postprocess (threshold, watershed_border, polygonize) → evaluate, as the stages run them."""
    out = tmp_path_factory.mktemp("downstream")
    preds, vectors = out / "predictions" / "test", out / "vectors"
    done = predict.run(PredictConfig(tile=256, overlap=32, device="cpu"), selection_dir, chips_dir, border_model,
                       preds.parent, splits=("test",))["scenes"]["test"]
    steps = [{"threshold": {"value": thresholds(preds)}}, {"watershed_border": {}}, {"polygonize": {}}]
    classes = json.loads((selection_dir / "classes.json").read_text())["names"][1:]
    summary = postprocess.run(PostprocessConfig(steps=steps), preds, vectors, classes)
    metrics = evaluate.run(EvaluateConfig(), selection_dir, preds, vectors, out / "evaluate.json", out / "plots",
                           out / "report.json")
    return {"scenes": done, "preds": preds, "vectors": vectors, "steps": steps, "summary": summary,
            "metrics": metrics}


def test_predict_writes_one_band_per_output_class(downstream):
    assert SCENE in downstream["scenes"]
    for scene in downstream["scenes"]:
        with rasterio.open(downstream["preds"] / f"{scene}.tif") as ds:
            assert ds.count == 3 and list(ds.descriptions) == BANDS
            p, valid = ds.read().astype(int), ds.dataset_mask() > 0
            assert (p.sum(0)[valid] <= 255 + 2).all() and p[:, valid].min(1).min() >= 0


def test_postprocess_objects_are_buildings_never_on_contact(downstream):
    assert downstream["summary"]["objects"] > 0
    steps = downstream["steps"]
    for scene in downstream["scenes"]:
        tif = downstream["preds"] / f"{scene}.tif"
        state = read_scene(tif, ["building"])
        assert state.class_names == ("building", "border", "contact") and state.auxiliary == ("border", "contact")
        footprint = (state.prob[0] + state.prob[1] >= steps[0]["threshold"]["value"]["building"]) & state.valid
        mask = build_chain(steps[:1], end=("mask",))(state).mask
        assert set(np.unique(mask)) <= {0, 1}, "the mask holds object classes only"
        np.testing.assert_array_equal(mask > 0, footprint)  # border folded into the footprint, contact out
        objects = gpd.read_file(downstream["vectors"] / f"{scene}.gpkg", layer="objects")
        assert set(objects["class_name"]) <= {"building"} and set(objects["class_id"]) <= {1}
        covered = rasterize(objects.geometry, out_shape=state.shape, transform=state.transform) > 0
        assert not covered[~footprint].any(), "objects lie on the footprint only (never on contact)"
        assert ((objects["score"] >= 0) & (objects["score"] <= 1)).all()


def test_evaluate_scores_the_object_classes_only(downstream):
    metrics = downstream["metrics"]
    assert set(metrics["per_class"]) == {"building"} and set(metrics["pixel_confusion"]) == {"background", "building"}
    assert metrics["n_scenes"] == len(downstream["scenes"]) and 0 <= metrics["object"]["f1"] <= 1
    with rasterio.open(downstream["preds"] / f"{SCENE}.tif") as ds:
        p = ds.read()
    np.testing.assert_array_equal(footprints(p, ("border", "contact"), 255),
                                  np.minimum(p[:1].astype(int) + p[1], 255))


def test_predict_refuses_inconsistent_checkpoints(border_model, tiny_model, chips_dir, tmp_path):
    spec = InputSpec.load(chips_dir / "stats.json")
    _, outputs = build_model_fn(PredictConfig(device="cpu"), spec, border_model)
    assert outputs == OUTPUTS
    with pytest.raises(GeofoundryError, match=rf"^{re.escape(str(tiny_model))}: outputs the classes \['background', "
                                              rf"'building'\], but {re.escape(str(border_model))} outputs .*same"):
        build_model_fn(PredictConfig(device="cpu", ensemble=[{"path": str(tiny_model)}]), spec, border_model)
    ckpt = torch.load(border_model, weights_only=True)
    bad = tmp_path / "bad.pt"
    torch.save({**ckpt, "target": "footprint_border"}, bad)
    expected = r"expected \['background', 'building', 'border'\] \(train.target footprint_border\)"
    with pytest.raises(GeofoundryError, match=rf"^{re.escape(str(bad))}: output classes .*'contact'\], {expected}"):
        build_model_fn(PredictConfig(device="cpu"), spec, bad)


def test_postprocess_refuses_bands_of_other_classes(downstream, tmp_path):
    tif = tmp_path / "other.tif"
    shutil.copy(downstream["preds"] / f"{SCENE}.tif", tif)
    with rasterio.open(tif, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.set_band_description(1, "p(roof)")
    message = rf"^{re.escape(str(tif))} \(band descriptions\): output classes \['roof', 'border', 'contact'\]"
    with pytest.raises(GeofoundryError, match=message):
        read_scene(tif, ["building"])


@pytest.fixture(scope="module")
def exported(border_model, chips_dir, small_raw, downstream, tmp_path_factory):
    out = tmp_path_factory.mktemp("border_export")
    params = load_params(ROOT / "params.yaml").model_copy(update={
        "export": ExportConfig(parity_chips=2), "predict": PredictConfig(tile=256, overlap=32),
        "postprocess": PostprocessConfig(steps=downstream["steps"])})
    prov = export.Provenance(params, out, small_raw)
    metrics = export.run(params.export, chips_dir, border_model, out / "model.onnx", out / "export.json",
                         out / "bundle", prov)
    return {"dir": out, "metrics": metrics, "bundle": out / "bundle"}


def test_export_lists_output_and_auxiliary_classes(exported):
    assert exported["metrics"]["onnx"]["passed"]
    session = ort.InferenceSession(str(exported["dir"] / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"raw": np.full((1, 3, 64, 64), 100, np.float32)})[0]
    assert probs.shape == (1, 4, 64, 64)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["geofoundry.classes"]) == OUTPUTS
    assert json.loads(meta["geofoundry.target_classes"]) == OUTPUTS[:2]
    assert json.loads(meta["geofoundry.auxiliary_classes"]) == ["border", "contact"]
    bundle = open_bundle(exported["bundle"], exported["metrics"]["bundle"]["sha256sums_sha256"])
    assert bundle.spec.classes == OUTPUTS[:2] and bundle.outputs == OUTPUTS
    assert bundle.json("classes.json") == {"names": OUTPUTS, "paths": [None, "structure/building", None, None],
                                           "auxiliary": ["border", "contact"]}
    model = bundle.card["model"]
    assert (model["classes"], model["target_classes"], model["auxiliary_classes"]) == (
        OUTPUTS, OUTPUTS[:2], ["border", "contact"])
    card = " ".join(bundle.text("MODEL_CARD.md").split())
    assert "— building\n" in bundle.text("MODEL_CARD.md") and "auxiliary classes ['border', 'contact']" in card


def test_bundle_predicts_buildings_only(exported, small_raw, tmp_path):
    crop = tmp_path / "crop.tif"
    with rasterio.open(small_raw / "images" / f"{SCENE}.tif") as src:
        window = Window(1408, 0, 384, 384)
        profile = {"driver": "GTiff", "count": src.count, "dtype": src.dtypes[0], "crs": src.crs, "width": 384,
                   "height": 384, "transform": src.window_transform(window)}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(crop, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.write_mask(src.dataset_mask(window=window))
    with pytest.warns(UserWarning, match="assuming the model's order"):
        result = predict_bundle(open_bundle(exported["bundle"]), [crop], tmp_path / "out", threads=1)
    assert result["scenes"] == ["crop"]
    with rasterio.open(tmp_path / "out" / "crop.tif") as ds:
        assert list(ds.descriptions) == BANDS
    objects = gpd.read_file(tmp_path / "out" / "crop.gpkg", layer="objects")
    assert len(objects) == result["objects"] and set(objects["class_name"]) <= {"building"}


def test_bundle_reader_refuses_classes_json_that_disagrees(exported, tmp_path):
    copy = shutil.copytree(exported["bundle"], tmp_path / "bundle")
    classes = json.loads((copy / "classes.json").read_text())
    (copy / "classes.json").write_text(json.dumps({**classes, "auxiliary": ["border"]}))
    write_manifest(copy)
    with pytest.raises(GeofoundryError, match=r"classes.json: 'auxiliary' \['border'\] are not the classes after"):
        open_bundle(copy)
    (copy / "classes.json").write_text(json.dumps({**classes, "names": ["background", "roof", "border", "contact"]}))
    write_manifest(copy)
    with pytest.raises(GeofoundryError, match=r"classes.json \(beside stats.json classes \['background', 'building'"):
        open_bundle(copy)


# --- the ops on hand-made probabilities --------------------------------------------------------------------------


def touching_buildings() -> tuple[SceneState, dict[str, np.ndarray]]:
    """Buildings A and B touch along a column; C stands 3 px right of B across contact pixels. Each building has a
    2 px border ring (also along the shared edge, as the training target has). Probabilities: 0.9 for a pixel's
    class (0.05 for the others); border pixels 0.6 border + 0.35 building."""
    shape = (40, 70)
    a, b, c = (np.zeros(shape, bool) for _ in range(3))
    a[10:30, 5:25], b[10:30, 25:45], c[10:30, 48:62] = True, True, True
    contact = np.zeros(shape, bool)
    contact[10:30, 45:48] = True
    ring = sum(m & ~ndi.binary_erosion(m, np.ones((5, 5), bool)) for m in (a, b, c)) > 0
    prob = np.full((3, *shape), 0.05, np.float32)
    prob[0][a | b | c] = 0.9
    prob[0][ring], prob[1][ring] = 0.35, 0.6
    prob[2][contact] = 0.9
    state = SceneState(rasterio.Affine(1, 0, 0, 0, -1, 0), rasterio.crs.CRS.from_epsg(3857), np.ones(shape, bool),
                       ("building", "border", "contact"), prob=prob, auxiliary=("border", "contact"))
    return state, {"a": a, "b": b, "c": c, "contact": contact, "ring": ring}


def run_chain(state: SceneState, *names: str) -> gpd.GeoDataFrame:
    return build_chain([{n: None} for n in ("threshold", *names, "polygonize")])(state).objects


def pixels_of(geom, shape) -> np.ndarray:
    return rasterize([geom], out_shape=shape, transform=rasterio.Affine(1, 0, 0, 0, -1, 0)) > 0


def test_watershed_border_splits_along_the_border_and_leaves_contact_out():
    state, m = touching_buildings()
    objects = run_chain(state, "watershed_border")
    assert len(objects) == 3 and set(objects["class_name"]) == {"building"}
    found = sorted((pixels_of(g, state.shape) for g in objects.geometry), key=lambda p: np.argwhere(p)[:, 1].min())
    for got, want in zip(found, (m["a"], m["b"], m["c"])):
        np.testing.assert_array_equal(got, want)  # each footprint whole, border ring included, no contact pixel
    np.testing.assert_allclose(objects["score"], 0.95, atol=1e-6)  # footprint probability p(building) + p(border)


def test_without_watershed_border_footprints_stay_whole_and_contact_is_background():
    state, m = touching_buildings()
    objects = run_chain(state)
    assert len(objects) == 2 and set(objects["class_name"]) == {"building"}  # A and B touch: one object
    covered = sum(pixels_of(g, state.shape).astype(int) for g in objects.geometry)
    np.testing.assert_array_equal(covered, (m["a"] | m["b"] | m["c"]).astype(int))


def test_watershed_border_needs_a_border_output():
    state, _ = touching_buildings()
    with pytest.raises(GeofoundryError, match="'watershed_border': needs the auxiliary output 'border' of a model"):
        run_chain(replace(state, auxiliary=()), "watershed_border")
