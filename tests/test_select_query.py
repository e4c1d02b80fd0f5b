"""The selection query: class paths at every level, context ranges and geofences against direct checks, and the
command line (preview, --write into params.yaml)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import geometry_mask
from typer.testing import CliRunner

from geofoundry.catalog.contexts import context_masks
from geofoundry.config import SelectConfig
from geofoundry.io.geometry import reproject
from geofoundry.io.raster import valid_footprint
from geofoundry.pipeline.cli import app
from geofoundry.pipeline.params import load_params
from geofoundry.pipeline.select_query import overrides, write_select
from geofoundry.select import run as select_run

from .conftest import ROOT, copy_subset

PATHS = ["vehicle/aircraft/military/fighter", "vehicle/aircraft/military/bomber", "vehicle/aircraft/civil",
         "vehicle/ground", "structure/building"]
ONE_SPLIT = {"fractions": {"train": 1.0, "val": 0.0, "test": 0.0}}


@pytest.fixture(scope="module")
def hierarchy_raw(tmp_path_factory, dev_root) -> Path:
    """kampala_ug_z19 with its 206 polygons relabelled along a 4-level hierarchy (cycling over PATHS)."""
    root = copy_subset(dev_root, tmp_path_factory.mktemp("h") / "raw", ["kampala_ug_z19"])
    path = root / "labels" / "kampala_ug_z19.geojson"
    fc = json.loads(path.read_text())
    for i, f in enumerate(fc["features"]):
        f["properties"].update(class_path=PATHS[i % len(PATHS)], **{"class": PATHS[i % len(PATHS)].split("/")[-1]})
    path.write_text(json.dumps(fc))
    return root


def run_select(root, tmp_path, **query):
    cfg = SelectConfig(**{"gsd_range": (0, 1), "context_gsd_m": 2.0, "split": ONE_SPLIT, **query})
    metrics = select_run(cfg, root, tmp_path / "sel", tmp_path / "m.json")
    return metrics, gpd.read_parquet(tmp_path / "sel" / "blocks.parquet")


@pytest.mark.parametrize("prefix", ["vehicle", "vehicle/aircraft", "vehicle/aircraft/military",
                                    "vehicle/aircraft/military/fighter", "structure"])
def test_class_prefix_selectable_at_every_level(hierarchy_raw, tmp_path, prefix):
    expected = sum(1 for i in range(206) if (PATHS[i % 5] + "/").startswith(prefix + "/"))
    metrics, blocks = run_select(hierarchy_raw, tmp_path, classes=[prefix])
    assert blocks["n_objects"].sum() == expected
    assert metrics["split"]["train"]["classes"] == {prefix.split("/")[-1]: expected}


def test_several_levels_first_prefix_wins(hierarchy_raw, tmp_path):
    classes = ["vehicle/aircraft/military/fighter", "vehicle/aircraft", "structure"]
    metrics, _ = run_select(hierarchy_raw, tmp_path, classes=classes)
    assert metrics["split"]["train"]["classes"] == {"fighter": 42, "aircraft": 41 + 41, "structure": 41}
    names = json.loads((tmp_path / "sel" / "classes.json").read_text())
    assert names == {"names": ["background", "fighter", "aircraft", "structure"], "paths": [None, *classes]}


def direct_vegetation(image: str, block_3857: shapely.Geometry) -> float:
    """Vegetation fraction of a block's valid pixels, at full resolution, computed without the scan."""
    with rasterio.open(image) as ds:
        geom = reproject(block_3857, "EPSG:3857", ds.crs)
        win = rasterio.windows.from_bounds(*geom.bounds, transform=ds.transform).round_offsets().round_lengths()
        win = win.intersection(rasterio.windows.Window(0, 0, ds.width, ds.height))
        data = ds.read(window=win).astype(np.float32)
        valid = ds.dataset_mask(window=win) > 0
        valid &= geometry_mask([geom], data.shape[1:], ds.window_transform(win), invert=True)
    veg = context_masks(dict(zip(["red", "green", "blue"], data)), valid, 255.0, 0.3)["vegetation"]
    return float(veg.sum() / max(valid.sum(), 1))


def test_context_range_matches_a_direct_pixel_check(tmp_path, dev_root):
    root = copy_subset(dev_root, tmp_path / "raw", ["zanzibar_tz_z19"])
    _, all_blocks = run_select(root, tmp_path / "all")
    _, kept = run_select(root, tmp_path / "veg", contexts={"vegetation": [0.6, 1.0]})
    assert 0 < len(kept) < len(all_blocks)
    image = str(root / "images" / "zanzibar_tz_z19.tif")
    for _, b in all_blocks.iterrows():
        direct = direct_vegetation(image, b.geometry)
        if abs(direct - 0.6) > 0.05:  # the scan works at 2 m: leave out blocks right at the threshold
            assert (b["block_id"] in set(kept["block_id"])) == (direct >= 0.6), (b["block_id"], direct)


def test_geofence_include_and_exclude_match_a_geometric_check(tmp_path, dev_root):
    root = copy_subset(dev_root, tmp_path / "raw", ["nairobi_ke_z19", "nairobi_ke_z20"])
    with rasterio.open(root / "images" / "nairobi_ke_z19.tif") as ds:
        footprint = reproject(valid_footprint(ds), ds.crs, "EPSG:3857")
    w, s, e, n = reproject(footprint, "EPSG:3857", "EPSG:4326").bounds
    include = shapely.box(w, s, w + 0.6 * (e - w), n)
    exclude = shapely.box(w + 0.2 * (e - w), s + 0.3 * (n - s), w + 0.4 * (e - w), s + 0.7 * (n - s))
    fence_file = tmp_path / "include.geojson"
    gpd.GeoDataFrame(geometry=[include], crs="EPSG:4326").to_file(fence_file)
    _, blocks = run_select(root, tmp_path, geofence={"include": str(fence_file), "exclude": exclude.wkt})
    fence = reproject(include.difference(exclude), "EPSG:4326", "EPSG:3857", densify_parts=256)
    selected = shapely.union_all(blocks.geometry.values)
    assert selected.difference(reproject(include, "EPSG:4326", "EPSG:3857")).area < 1e-3
    assert selected.intersection(reproject(exclude, "EPSG:4326", "EPSG:3857")).area < 1e-3
    expected = footprint.intersection(fence)
    assert selected.intersection(footprint).area == pytest.approx(expected.area, rel=1e-4)


def test_command_line_query_overrides_and_write_back(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    changes = overrides(classes=["vehicle/aircraft"], sites=["nairobi_ke"], gsd="0.1:0.2",
                        contexts=["cloud_haze=:0.1", "vegetation=0.2:"], include="POLYGON((36 -2, 37 -2, 37 -1, 36 -2))",
                        seed=7, dates="2020-01-01:2020-12-31")
    write_select(params, changes)
    cfg = load_params(params).select
    assert cfg.classes == ["vehicle/aircraft"] and cfg.sites == ["nairobi_ke"] and cfg.gsd_range == (0.1, 0.2)
    assert cfg.contexts == {"cloud_haze": (0.0, 0.1), "vegetation": (0.2, 1.0)}
    assert cfg.geofence.include.startswith("POLYGON") and cfg.geofence.exclude is None
    assert cfg.split.seed == 7 and cfg.split.block_size_m == 150 and str(cfg.dates[1]) == "2020-12-31"
    text = params.read_text()
    assert "# class path prefixes" in text and "classes: [vehicle/aircraft]" in text  # comments and style kept


def test_cli_preview_names_the_empty_filter_and_write_refuses_bad_query(tmp_path, spacenet_root):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw").symlink_to(spacenet_root)
    runner = CliRunner()
    p = str(tmp_path / "params.yaml")
    res = runner.invoke(app, ["select", "-p", p, "--gsd", "0:3", "--site", "atlantis"])
    assert res.exit_code == 1 and "select.sites removed all" in res.output
    res = runner.invoke(app, ["select", "-p", p, "--gsd", "0:3", "--class", "a/b/c/d/e", "--write"])
    assert res.exit_code == 1 and "at most 4" in res.output
    assert "a/b/c/d/e" not in (tmp_path / "params.yaml").read_text()
    res = runner.invoke(app, ["select", "-p", p, "--gsd", "1:3", "--block-size", "60"])
    assert res.exit_code == 0, res.output
    assert '"scenes": 10' in res.output and not (tmp_path / "data" / "selection").exists()
