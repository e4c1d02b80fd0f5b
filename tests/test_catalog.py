"""The catalog on real data: GeoParquet of scenes and blocks, contexts from pixels, label counts per class level."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pytest
from typer.testing import CliRunner

from geofoundry.catalog import run as catalog_run
from geofoundry.catalog.contexts import context_masks, full_scale
from geofoundry.pipeline.cli import app

from .conftest import copy_subset


@pytest.fixture(scope="module")
def rio_catalog(tmp_path_factory, spacenet_root):
    out = tmp_path_factory.mktemp("catalog")
    catalog_run(spacenet_root, out, block_size_m=150, context_gsd_m=1.0)
    return gpd.read_parquet(out / "scenes.parquet"), gpd.read_parquet(out / "blocks.parquet"), out


def test_geoparquet_tables(rio_catalog):
    scenes, blocks, out = rio_catalog
    assert len(scenes) == 20 and scenes.crs.to_epsg() == 3857 and blocks.crs.to_epsg() == 3857
    for col in ("scene_id", "site", "sensor", "gsd_m", "acquired", "band_names", "valid_area_m2", "nodata",
                "vegetation", "bright", "cloud_haze", "water", "count:structure", "count:structure/building"):
        assert col in scenes and col in blocks or col in ("valid_area_m2",), col
    meta = json.loads(pq.read_schema(out / "blocks.parquet").metadata[b"geo"])
    assert meta["columns"]["geometry"]["covering"]["bbox"]  # bbox column: area filters without a spatial engine
    assert "bbox" in pq.read_schema(out / "blocks.parquet").names
    # block rows add up to their scene
    per_scene = blocks.groupby("scene_id")[["count:structure/building", "valid_area_m2"]].sum()
    s = scenes.set_index("scene_id")
    assert (per_scene["count:structure/building"] == s["count:structure/building"]).all()
    assert (s["count:structure"] == s["objects"]).all() and s.loc["rio_img09_8band", "objects"] == 27
    np.testing.assert_allclose(per_scene["valid_area_m2"], s["valid_area_m2"])


def test_valid_fraction_and_contexts_from_pixels(rio_catalog):
    scenes, _, _ = rio_catalog
    s = scenes.set_index("scene_id")
    for i in range(1, 11):
        ms, rgb = s.loc[f"rio_img{i:02d}_8band"], s.loc[f"rio_img{i:02d}_3band"]
        assert abs(ms["nodata"] - rgb["nodata"]) < 0.02  # the same ground, nodata value vs internal mask
        assert abs(ms["vegetation"] - rgb["vegetation"]) < 0.15  # NDVI (8-band) against excess green (RGB)
        assert np.isnan(rgb["water"]) and not np.isnan(ms["water"])  # water needs a NIR band
    assert s.loc["rio_img01_8band", "water"] > 0.5 and s.loc["rio_img01_8band", "vegetation"] < 0.05  # a river
    assert s.loc["rio_img06_8band", "vegetation"] > 0.8 and s.loc["rio_img06_8band", "water"] < 0.1
    assert (s[["bright", "cloud_haze"]] < 0.05).all().all()  # clear sky, no snow
    assert s.loc["rio_img04_3band", "nodata"] == pytest.approx(1 - 0.260, abs=0.01)  # DATASET.md valid fraction


def test_context_masks_on_known_pixels():
    valid = np.ones((1, 6), bool)
    #                      grass  cloud  snow   water  roof   dark
    red = np.array([[60, 230, 250, 40, 180, 5]], float)
    green = np.array([[140, 232, 252, 60, 170, 6]], float)
    blue = np.array([[50, 235, 255, 70, 160, 5]], float)
    nir = np.array([[200, 225, 240, 20, 190, 6]], float)
    m = context_masks({"red": red, "green": green, "blue": blue, "nir": nir}, valid, 255.0, 1.0)
    assert m["vegetation"].tolist() == [[True, False, False, False, False, False]]
    assert m["bright"].tolist() == [[False, True, True, False, False, False]]
    assert m["water"].tolist() == [[False, False, False, True, False, False]]
    rgb = context_masks({"red": red, "green": green, "blue": blue}, valid, 255.0, 1.0)
    assert rgb["vegetation"].tolist() == m["vegetation"].tolist() and rgb["water"] is None
    assert full_scale("uint8", 3) == 255 and full_scale("uint16", 7553) == 8191 and full_scale("float32", 1.0) == 1


def test_catalog_command_and_hierarchy_counts(tmp_path, dev_root):
    root = copy_subset(dev_root, tmp_path / "raw", ["kampala_ug_z19"])
    path = root / "labels" / "kampala_ug_z19.geojson"
    fc = json.loads(path.read_text())
    paths = ["vehicle/aircraft/military/fighter", "vehicle/aircraft/civil", "structure/building"]
    for i, f in enumerate(fc["features"]):
        f["properties"]["class_path"] = paths[i % 3]
    path.write_text(json.dumps(fc))
    res = CliRunner().invoke(app, ["catalog", "--raw", str(root), "--out", str(tmp_path / "cat"), "--format", "gpkg",
                                   "--format", "fgb"])
    assert res.exit_code == 0, res.output
    s = gpd.read_parquet(tmp_path / "cat" / "scenes.parquet").iloc[0]
    assert s["count:vehicle"] == 138 and s["count:vehicle/aircraft"] == 138
    assert s["count:vehicle/aircraft/military"] == 69 and s["count:vehicle/aircraft/military/fighter"] == 69
    assert s["count:vehicle/aircraft/civil"] == 69 and s["count:structure"] == 68
    # the same layers for QGIS and older GDAL: a GeoPackage of two layers, FlatGeobuf files
    blocks = gpd.read_parquet(tmp_path / "cat" / "blocks.parquet")
    assert [name for name, _ in pyogrio.list_layers(tmp_path / "cat" / "catalog.gpkg")] == ["scenes", "blocks"]
    for got in (gpd.read_file(tmp_path / "cat" / "catalog.gpkg", layer="blocks"),
                gpd.read_file(tmp_path / "cat" / "blocks.fgb")):
        assert len(got) == len(blocks) and got.crs.to_epsg() == 3857
        assert got["count:vehicle/aircraft/civil"].sum() == 69
        got = got.set_index("block_id").loc[blocks["block_id"]]  # FlatGeobuf's spatial index reorders features
        assert (got.geometry.symmetric_difference(blocks.geometry, align=False).area < 1e-3).all()  # same cells
    res = CliRunner().invoke(app, ["catalog", "--raw", str(root), "--out", str(tmp_path / "c2"), "--format", "shp"])
    assert res.exit_code == 1 and "catalog format 'shp': choose from ['fgb', 'gpkg']" in res.output
