"""Archive runs of a delivered bundle (the kept fixture bundle, a real U-Net) on real DEV scenes: torchrun ranks
give the one-process result, a killed run resumes with only its unfinished scene, a scene read through /vsicurl/
from a range-serving HTTP server gives the local file's result, a STAC ItemCollection runs, and objects of
overlapping scenes are deduplicated."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from geofoundry.archive.merge import dedup
from geofoundry.predict.ranks import balance
from geofoundry.bundle.format import FORMAT_VERSION

from .project import ROOT, env
from .range_server import range_server

BUNDLE = Path(__file__).parent / "fixtures" / f"bundle_v{FORMAT_VERSION}"
SCENES = ("kampala_ug_z19", "nairobi_ke_z19")


NO_TORCH = ("import atexit, sys; atexit.register(lambda: print('torch loaded' if 'torch' in sys.modules else "
            "'no torch')); from geofoundry.pipeline.cli import app; app()")


def geofoundry(*args: str, torchrun: int = 0, extra: dict | None = None, wait: bool = True, probe: bool = False):
    """``geofoundry predict --bundle BUNDLE --threads 1 ARGS`` (under torchrun with that many ranks; ``probe``: saying
    at exit whether torch was loaded)."""
    cmd = [sys.executable, "-m", "geofoundry", "predict", "--bundle", str(BUNDLE), "--threads", "1", *args]
    if probe:
        cmd[1:3] = ["-c", NO_TORCH]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}",
               "-m", *cmd[2:]]
    run_env = {**env(), "PYTHONPATH": str(ROOT / "src"), **(extra or {})}
    if not wait:
        return subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def scenes(tmp_path, dev_root) -> Path:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in SCENES:
        shutil.copy(dev_root / "images" / f"{name}.tif", folder)
    return folder


def outputs(out: Path) -> dict:
    """Every scene's probabilities and mask, the merged objects and the run's statuses."""
    found = {}
    for tif in sorted((out / "scenes").glob("*.tif")):
        with rasterio.open(tif) as ds:
            found[tif.stem] = (ds.read(), ds.read_masks(1), ds.transform)
    objects = gpd.read_file(out / "objects.gpkg").sort_values(["scene_id", "score"]).reset_index(drop=True)
    run = json.loads((out / "run.json").read_text())
    return {"maps": found, "objects": objects, "status": {s["name"]: s["status"] for s in run["scenes"]}}


def assert_same(a: dict, b: dict) -> None:
    assert a["maps"].keys() == b["maps"].keys() and a["status"].keys() == b["status"].keys()
    for name, (probs, mask, transform) in a["maps"].items():
        other = b["maps"][name]
        assert transform == other[2] and (mask == other[1]).all() and (probs == other[0]).all(), name
    assert len(a["objects"]) == len(b["objects"])
    assert a["objects"].geometry.geom_equals_exact(b["objects"].geometry, 1e-9).all()


def test_balance_by_area_largest_first():
    assert balance([1, 5, 2, 2, 4], 2) == [[1, 3], [0, 2, 4]]  # 5+2 against 4+2+1
    assert balance([3.0], 3) == [[0], [], []]


def test_dedup_of_a_constructed_overlap():
    """Scene b repeats scene a's first object (IoU 0.9) with a lower score and a's second one with a higher
    score; a third pair overlaps below the IoU; two objects of one scene never remove each other."""
    boxes = {("a", 0.9): box(0, 0, 10, 10), ("a", 0.6): box(20, 0, 30, 10), ("a", 0.8): box(40, 0, 50, 10),
             ("a", 0.7): box(0, 0, 9.5, 10), ("b", 0.5): box(0, 0, 10, 9), ("b", 0.95): box(20, 0, 30, 10.5),
             ("b", 0.99): box(45, 0, 55, 10)}
    frame = gpd.GeoDataFrame({"scene_id": [k[0] for k in boxes], "score": [k[1] for k in boxes]},
                             geometry=[g.buffer(0) for g in boxes.values()], crs="EPSG:32636").to_crs("EPSG:4326")
    kept = dedup(frame, 0.5)
    assert sorted(zip(kept["scene_id"], kept["score"])) == [("a", 0.7), ("a", 0.8), ("a", 0.9), ("b", 0.95),
                                                             ("b", 0.99)]


@pytest.mark.slow
def test_torchrun_ranks_equal_one_process(tmp_path, scenes):
    """Two CPU ranks (gloo) share the scenes by area; the merge equals one process's. A copy of a scene under
    another name overlaps it exactly: each of its objects is a duplicate, removed whichever rank predicted it."""
    shutil.copy(scenes / f"{SCENES[0]}.tif", scenes / "copy_of_kampala.tif")
    geofoundry(str(scenes), "--out", str(tmp_path / "one"))
    geofoundry(str(scenes), "--out", str(tmp_path / "two"), torchrun=2)
    one, two = outputs(tmp_path / "one"), outputs(tmp_path / "two")
    assert_same(one, two)
    assert set(one["status"].values()) == set(two["status"].values()) == {"predicted"}
    ranks = {s["name"]: s["rank"] for s in json.loads((tmp_path / "two" / "run.json").read_text())["scenes"]}
    assert ranks == {"nairobi_ke_z19": 0, "kampala_ug_z19": 1, "copy_of_kampala": 1}
    kampala = gpd.read_file(tmp_path / "one" / "scenes" / f"{SCENES[0]}.gpkg")
    nairobi = gpd.read_file(tmp_path / "one" / "scenes" / f"{SCENES[1]}.gpkg")
    assert len(kampala) > 0 and len(one["objects"]) == len(kampala) + len(nairobi)


@pytest.mark.slow
def test_a_killed_run_resumes_with_only_its_unfinished_scene(tmp_path, scenes):
    out = tmp_path / "out"
    proc = geofoundry(str(scenes), "--out", str(out), wait=False)
    records = out / "records" / "rank-0.jsonl"
    deadline = time.monotonic() + 600
    while not (records.is_file() and records.read_text().count("\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = out / "scenes" / f"{SCENES[0]}.tif"
    stamp = first.stat().st_mtime_ns
    assert not (out / "scenes" / f"{SCENES[1]}.tif").exists() and not (out / "run.json").exists()
    geofoundry(str(scenes), "--out", str(out))
    status = {s["name"]: s["status"] for s in json.loads((out / "run.json").read_text())["scenes"]}
    assert status == {SCENES[0]: "skipped", SCENES[1]: "predicted"}
    assert first.stat().st_mtime_ns == stamp and not [p for p in out.iterdir() if p.name.startswith(".archive")]
    geofoundry(str(scenes), "--out", str(tmp_path / "fresh"))
    assert_same(outputs(out), outputs(tmp_path / "fresh"))


def test_a_scene_through_vsicurl_equals_the_local_file(tmp_path, scenes):
    """GDAL reads the scene by HTTP range requests from 127.0.0.1 (its ETag/Last-Modified identify it)."""
    gdal = {"CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif", "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "GDAL_HTTP_MAX_RETRY": "2"}
    with range_server(scenes) as url:
        geofoundry(f"/vsicurl/{url}/{SCENES[0]}.tif", "--out", str(tmp_path / "remote"), extra=gdal)
        geofoundry(str(scenes / f"{SCENES[0]}.tif"), "--archive", "--out", str(tmp_path / "local"))
        remote = json.loads((tmp_path / "remote" / "run.json").read_text())["scenes"][0]
        assert set(remote["identity"]) >= {"size", "last_modified"}
        again = geofoundry(f"/vsicurl/{url}/{SCENES[0]}.tif", "--out", str(tmp_path / "remote"), extra=gdal)
        assert "1 skipped" in again.stdout + again.stderr
    assert_same(outputs(tmp_path / "remote"), outputs(tmp_path / "local"))


def test_a_stac_item_collection_runs(tmp_path, scenes):
    """Items with relative image assets; the run's catalog links each label item to its input item, the probability
    COG, the objects and the bundle's MLM model item, and pystac reads it all back. One process loads no torch."""
    items = []
    for name in SCENES:
        with rasterio.open(scenes / f"{name}.tif") as ds:
            bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        item = pystac.Item(f"dev-{name}", box(*bounds).__geo_interface__, list(bounds),
                           pystac.utils.str_to_datetime("2020-01-01T00:00:00Z"), {"platform": "drone"})
        item.add_asset("visual", pystac.Asset(f"scenes/{name}.tif", media_type=pystac.MediaType.COG,
                                              roles=["data"]))
        items.append(item)
    collection = tmp_path / "items.json"
    collection.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    assert "no torch" in geofoundry(str(collection), "--out", str(tmp_path / "out"), probe=True).stdout
    catalog = pystac.Catalog.from_file(str(tmp_path / "out" / "stac" / "catalog.json"))
    labels = {i.id: i for i in catalog.get_items() if "label:type" in i.properties}
    assert sorted(labels) == [f"dev-{n}-labels" for n in SCENES]
    for name in SCENES:
        label = labels[f"dev-{name}-labels"]
        [source] = label.get_links("source")
        assert source.resolve_stac_object().target.properties["platform"] == "drone"
        assert Path(label.assets["probabilities"].get_absolute_href()).is_file()
        assert gpd.read_file(label.assets["labels"].get_absolute_href()).crs is not None
        model = label.get_single_link("derived_from").resolve_stac_object().target
        assert model.properties["mlm:framework"] == "ONNX"
    assert np.isfinite(gpd.read_file(tmp_path / "out" / "objects.gpkg")["score"]).all()


def test_a_failing_scene_does_not_stop_the_others(tmp_path, scenes):
    (scenes / "broken.tif").write_bytes(b"not a tiff")
    proc = subprocess.run([sys.executable, "-m", "geofoundry", "predict", "--bundle", str(BUNDLE), str(scenes),
                           "--out", str(tmp_path / "out"), "--threads", "1"],
                          env={**env(), "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert "failed: broken" in said and "2 predicted" in said
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [f["name"] for f in run["failed"]] == ["broken"] and "cannot read the image" in run["failed"][0]["error"]
    assert os.path.isfile(tmp_path / "out" / "scenes" / f"{SCENES[1]}.gpkg")
