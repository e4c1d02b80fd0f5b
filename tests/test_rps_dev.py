"""Running point search on real DEV scenes: the stages' figures at a point, no test label or test output opened,
no model run for postprocess settings, and predict settings predicted once into a bounded cache.

The project holds the real selection of two z19 scenes (Kampala, Nairobi), copies of their label files, and
probability maps of their validation and test areas on the scenes' grids made from the labels (blurred buildings
plus smoothed noise), as the predict stage lays them out; the test maps also have their vectors. The last test
predicts with a briefly trained model.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from rasterio.features import geometry_mask, rasterize
from rasterio.windows import from_bounds
from scipy import ndimage as ndi

from geofoundry import evaluate, postprocess, predict
from geofoundry.io.geometry import reproject
from geofoundry.io.raw import read_labels
from geofoundry.pipeline.params import load_params
from geofoundry.pipeline.runner import run_stage
from geofoundry.predict.run import split_areas

from .project import sh
from .test_postprocess import write_prob_tif

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"postprocess.threshold.value": [0.4, 0.5, 0.6], "postprocess.min_area.area_m2": [5, 10, 20]}
KEPT = ["trial", "postprocess.threshold.value", "postprocess.min_area.area_m2", "precision", "recall", "f1", "ap",
        "tp", "fp", "fn"]


def write_map(row: pd.Series, area, path: Path, seed: int) -> None:
    """A probability map of ``area`` (EPSG:3857) on the scene's grid: blurred label buildings and smoothed noise,
    valid where the image is and inside the area."""
    with rasterio.open(row["image_path"]) as ds:
        area = reproject(area, "EPSG:3857", ds.crs)
        window = from_bounds(*area.bounds, transform=ds.transform).round_offsets().round_lengths()
        window = window.intersection(rasterio.windows.Window(0, 0, ds.width, ds.height))
        transform, crs = ds.window_transform(window), ds.crs
        valid = ds.dataset_mask(window=window) > 0
    shape = valid.shape
    valid &= geometry_mask([area], out_shape=shape, transform=transform, invert=True)
    labels = read_labels(row["labels_path"]).to_crs(crs)
    buildings = rasterize(labels.geometry, out_shape=shape, transform=transform) > 0
    noise = ndi.gaussian_filter(np.random.default_rng(seed).random(shape, np.float32), 3)
    prob = np.clip(0.85 * ndi.gaussian_filter(buildings.astype(np.float32), 1.5) + 2.5 * (noise - 0.5) + 0.2, 0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_prob_tif(path, (prob * valid)[None], valid, transform, crs)


def write_params(root: Path, settings: dict, steps: list[dict] | None = None, **rps) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["rps"].update(settings=settings, trials=50, **rps)
    params["postprocess"]["steps"] = steps or params["postprocess"]["steps"]
    params["predict"].update(tile=256, overlap=32)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory, selection_dir) -> Path:
    root = tmp_path_factory.mktemp("rps_dev")
    selection = root / "data/selection"
    shutil.copytree(selection_dir, selection)
    scenes = pd.read_parquet(selection / "scenes.parquet")
    (root / "labels").mkdir()
    for i, row in scenes.iterrows():
        scenes.loc[i, "labels_path"] = str(shutil.copy(row["labels_path"], root / "labels"))
    scenes.to_parquet(selection / "scenes.parquet")
    blocks = gpd.read_parquet(selection / "blocks.parquet")
    for seed, split in enumerate(("val", "test")):
        for scene_id, area in split_areas(scenes, blocks, split).items():
            row = scenes.set_index("scene_id").loc[scene_id].copy()
            write_map(row, area, root / "data/predictions" / split / f"{scene_id}.tif", seed)
    write_params(root, SETTINGS)
    cfg = load_params(root / "params.yaml").postprocess
    postprocess.run(cfg, root / "data/predictions/test", root / "data/vectors", ["building"])
    return root


def test_points_score_as_the_postprocess_and_evaluate_stages_on_validation(project, tmp_path):
    """The current point and the best one: the same object figures as postprocess + evaluate on the validation maps
    (with an op that reads the valid area, drop_border_touching, at the end of the chain)."""
    (tmp_path / "search").mkdir()
    shutil.copytree(project / "data", tmp_path / "search/data", symlinks=True)
    steps = [*load_params(project / "params.yaml").postprocess.steps, {"drop_border_touching": {"margin_px": 1}}]
    write_params(tmp_path / "search", SETTINGS, steps=steps)
    summary = run_stage("rps", "params.yaml", tmp_path / "search")
    assert summary["best"]["val"]["tp"] > 0 and summary["trials"] == 8
    assert summary["best"]["val"]["f1"] > summary["params"]["val"]["f1"]  # the noise gives the search something to do
    params = load_params(tmp_path / "search/params.yaml")
    val = tmp_path / "search/data/predictions/val"
    for name, point in (("params", summary["params"]), ("best", summary["best"])):
        steps = json.loads(json.dumps(params.postprocess.steps))
        steps[0]["threshold"]["value"] = point["settings"]["postprocess.threshold.value"]
        steps[-2]["min_area"]["area_m2"] = point["settings"]["postprocess.min_area.area_m2"]
        cfg = params.postprocess.model_copy(update={"steps": steps})
        postprocess.run(cfg, val, tmp_path / name, ["building"])
        report = evaluate.run(params.evaluate, tmp_path / "search/data/selection", val, tmp_path / name,
                              tmp_path / f"{name}.json", tmp_path / f"plots_{name}", tmp_path / f"report_{name}.json")
        assert point["val"] == {k: report["object"][k] for k in point["val"]}, name


INSTRUMENTED = r"""
import json, logging, os, re, sys

opened = set()


def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.add(os.path.abspath(os.fsdecode(args[0])))


class GdalOpens(logging.Handler):
    def emit(self, record):
        found = re.search(r"GDALOpen\((.+?), this=", record.getMessage())
        if found:
            opened.add(os.path.abspath(found.group(1)))


sys.addaudithook(audit)
logging.getLogger("rasterio").addHandler(GdalOpens())
logging.getLogger("rasterio").setLevel(logging.DEBUG)
import rasterio
from geofoundry.pipeline.runner import run_stage

with rasterio.Env(CPL_DEBUG=True):
    summary = run_stage("rps")
modules = sorted(m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith("geofoundry.predict"))
with open(sys.argv[1], "w") as f:
    json.dump({"opened": sorted(opened), "modules": modules, "summary": summary}, f)
"""


@pytest.fixture(scope="module")
def instrumented(project, tmp_path_factory) -> dict:
    """`run_stage("rps")` in a fresh process that records every file it opens: by Python (audit hook) and by GDAL
    (its GDALOpen debug messages)."""
    out = tmp_path_factory.mktemp("instrumented") / "record.json"
    shutil.rmtree(project / ".rps-cache", ignore_errors=True)
    sh(sys.executable, "-c", INSTRUMENTED, str(out), cwd=project)
    return json.loads(out.read_text())


def test_test_labels_and_test_outputs_are_never_opened(project, instrumented):
    opened = [Path(p) for p in instrumented["opened"]]
    val_maps = sorted((project / "data/predictions/val").glob("*.tif"))
    assert set(val_maps) <= set(opened), "the instrumentation sees the validation maps opened"
    scenes = pd.read_parquet(project / "data/selection/scenes.parquet").set_index("scene_id")
    labels_read = {p for p in opened if p.parent == project / "labels"}
    assert labels_read == {Path(scenes.loc[m.stem, "labels_path"]) for m in val_maps}
    for forbidden in (project / "data/predictions/test", project / "data/vectors", project / "metrics/evaluate.json",
                      project / "plots/evaluate"):
        assert not [p for p in opened if p == forbidden or forbidden in p.parents], forbidden
    assert (project / "data/predictions/test").is_dir() and list((project / "data/vectors").glob("*.gpkg"))


def test_results_do_not_depend_on_labels_outside_the_validation_blocks(project, tmp_path):
    """Label files stripped of every polygon farther than 1 m from the validation blocks (the test labels among
    them) give the same trials, computed again."""
    run_stage("rps", "params.yaml", project)
    before = pd.read_csv(project / "plots/rps/trials.csv")[KEPT]
    selection = project / "data/selection"
    val = gpd.read_parquet(selection / "blocks.parquet").query("split == 'val'").union_all().buffer(1.0)
    backup = shutil.copytree(project / "labels", tmp_path / "labels")
    try:
        for path in pd.read_parquet(selection / "scenes.parquet")["labels_path"]:
            labels = gpd.read_file(path)
            stripped = labels[labels.to_crs("EPSG:3857").intersects(val)]
            assert 0 < len(stripped) < len(labels) / 2
            Path(path).write_text(stripped.to_json())
        summary = run_stage("rps", "params.yaml", project)
    finally:
        shutil.rmtree(project / "labels")
        shutil.copytree(backup, project / "labels")
    assert summary["work"]["trials_reused"] == 0
    assert pd.read_csv(project / "plots/rps/trials.csv")[KEPT].equals(before)


def test_a_postprocess_only_search_never_runs_the_model(project, instrumented):
    assert not (project / "models").exists() and not (project / "data/chips").exists()
    assert not [m for m in instrumented["modules"] if m.split(".")[0] == "torch" or m.endswith("torch_model")]
    assert instrumented["summary"]["work"]["maps_predicted"] == 0


def test_predict_settings_are_predicted_once_into_a_bounded_cache(tmp_path, selection_dir, chips_dir, tiny_model):
    shutil.copytree(selection_dir, tmp_path / "data/selection")
    (tmp_path / "data/chips").mkdir()
    shutil.copy(chips_dir / "stats.json", tmp_path / "data/chips")
    (tmp_path / "models").mkdir()
    shutil.copy(tiny_model, tmp_path / "models/best.pt")
    write_params(tmp_path, {"predict.overlap": [32, 64], "postprocess.threshold.value": [0.3, 0.5]})
    params = load_params(tmp_path / "params.yaml")
    predict.run(params.predict, tmp_path / "data/selection", tmp_path / "data/chips", tmp_path / "models/best.pt",
                tmp_path / "data/predictions", splits=("val",))  # the predict stage's maps (overlap 32)
    stage_maps = sorted(p.name for p in (tmp_path / "data/predictions/val").glob("*.tif"))

    first = run_stage("rps", "params.yaml", tmp_path)  # 4 points, 2 of them at overlap 64
    cache = tmp_path / ".rps-cache/maps"
    [folder] = list(cache.iterdir())
    assert first["work"]["maps_predicted"] == 1 and first["trials"] == 3
    assert sorted(p.name for p in (folder / "val").glob("*.tif")) == stage_maps
    assert json.loads((folder / "settings.json").read_text())["overlap"] == 64
    trials = pd.read_csv(tmp_path / "plots/rps/trials.csv")
    assert sorted(trials["predict.overlap"]) == [32, 32, 64, 64]

    again = run_stage("rps", "params.yaml", tmp_path)
    assert again["work"]["maps_predicted"] == 0 and again["work"]["trials_reused"] == 4

    write_params(tmp_path, {"predict.overlap": [32, 48], "postprocess.threshold.value": [0.3, 0.5]}, disk_gb=1e-6)
    third = run_stage("rps", "params.yaml", tmp_path)
    [newest] = list(cache.iterdir())  # the overlap-64 maps went: the cache holds more than disk_gb
    assert third["work"]["maps_predicted"] == 1 and newest != folder
    assert json.loads((newest / "settings.json").read_text())["overlap"] == 48
    assert sorted(p.name for p in (tmp_path / "data/predictions/val").glob("*.tif")) == stage_maps
