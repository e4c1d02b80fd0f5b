"""geofoundry ingest: the DEV data as users have it (JPEG2000 and VRT scenes, labels in one GeoPackage in UTM, a
Shapefile, a FlatGeobuf) → a raw-layout dataset that loads, checks and runs select → evaluate."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.shutil
import shapely
from typer.testing import CliRunner

from geofoundry.errors import GeofoundryError
from geofoundry.ingest import IngestOptions, ingest
from geofoundry.io.raw import check_image, load_scenes, read_labels
from geofoundry.pipeline.cli import app

from .project import make_project, sh

SCENES = ("kampala_ug_z19", "nairobi_ke_z19")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, dev_root):
    """kampala_ug_z19 as JPEG2000 (its internal mask as an alpha band), nairobi_ke_z19 in a VRT (its bands named by
    their colour interpretation), and the labels of both in one GeoPackage in UTM 36N, a Shapefile in Web Mercator
    and a FlatGeobuf in lon/lat."""
    out = tmp_path_factory.mktemp("ingest_inputs")
    (out / "scenes").mkdir()
    with rasterio.open(dev_root / "images" / f"{SCENES[0]}.tif") as src:
        data, valid = src.read(), src.dataset_mask()
        profile = {"driver": "JP2OpenJPEG", "width": src.width, "height": src.height, "count": 4, "dtype": "uint8",
                   "crs": src.crs, "transform": src.transform, "QUALITY": 100, "REVERSIBLE": "YES", "ALPHA": "YES"}
    with rasterio.open(out / "scenes" / f"{SCENES[0]}.jp2", "w", **profile) as dst:  # lossless
        dst.write(np.concatenate([data, valid[None]]))
    rasterio.shutil.copy(dev_root / "images" / f"{SCENES[1]}.tif", out / "scenes" / f"{SCENES[1]}.vrt", driver="VRT")
    labels = pd.concat([read_labels(dev_root / "labels" / f"{s}.geojson") for s in SCENES], ignore_index=True)
    labels = gpd.GeoDataFrame(labels, crs="EPSG:4326")
    labels.to_crs("EPSG:32636").to_file(out / "labels.gpkg", layer="buildings", driver="GPKG")
    labels.to_crs("EPSG:3857")[["class_path", "geometry"]].to_file(out / "labels.shp")
    labels[["geometry"]].to_file(out / "labels.fgb", driver="FlatGeobuf")
    return out, labels


@pytest.fixture(scope="module")
def ingested(inputs, tmp_path_factory):
    src, _ = inputs
    out = tmp_path_factory.mktemp("ingested") / "raw"
    summary = ingest([src / "scenes"], src / "labels.gpkg", out, IngestOptions(
        class_column="class_path", bands=["red", "green", "blue"], sensor="aerial-rgb",
        licence="CC-BY 4.0 / ODbL 1.0"))  # the JPEG2000's bands have no colour interpretation: --bands
    return out, summary


def test_ingested_dataset_is_in_the_raw_layout(ingested, inputs, dev_root):
    out, summary = ingested
    _, labels = inputs
    scenes = load_scenes(out)
    assert scenes["scene_id"].tolist() == list(SCENES) and summary["labels"] == len(labels)
    dev = pd.read_csv(dev_root / "scenes.csv").set_index("scene_id")
    for _, row in scenes.iterrows():
        check_image(row)  # size, bands, dtype, band names and readable last blocks
        assert row["band_names"] == "red|green|blue" and row["crs"] == "EPSG:3857"
        assert row["gsd_m"] == pytest.approx(dev.loc[row["scene_id"], "gsd_m"], rel=0.005)  # geodesic
        with rasterio.open(row["image_path"]) as ds, rasterio.open(dev_root / "images" / f"{row['scene_id']}.tif") \
                as ref:
            assert ds.profile["tiled"] and ds.compression is not None and ds.count == 3
            np.testing.assert_array_equal(ds.dataset_mask(), ref.dataset_mask())  # alpha / VRT mask → mask
            np.testing.assert_array_equal(ds.read(), ref.read())
        got = read_labels(row["labels_path"])
        want = read_labels(dev_root / "labels" / f"{row['scene_id']}.geojson")
        assert len(got) == len(want) == row["n_labels"] and set(got["class_path"]) == {"structure/building"}
        assert shapely.hausdorff_distance(got.geometry.values, want.geometry.values).max() < 1e-7  # UTM and back
    text = (out / "DATASET.md").read_text()
    assert "## Licence and attribution\nCC-BY 4.0 / ODbL 1.0" in text and "labels.gpkg" in text
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no temporary folder left"


@pytest.mark.parametrize(("name", "opts"), [("labels.shp", IngestOptions()),
                                            ("labels.fgb", IngestOptions(class_path="Structure/Building"))])
def test_shapefile_and_flatgeobuf_labels(inputs, tmp_path, name, opts):
    src, labels = inputs
    with pytest.warns(UserWarning, match="206 of 386 labels lie on no scene's valid area"):  # Kampala's
        summary = ingest([src / "scenes" / f"{SCENES[1]}.vrt"], src / name, tmp_path / "raw", opts)
    got = read_labels(tmp_path / "raw" / "labels" / f"{SCENES[1]}.geojson")
    assert summary["scenes"] == 1 and len(got) == summary["labels"] == 180
    assert summary["classes"] == {"structure/building": len(labels)}


def test_labelled_area_is_recorded_and_scenes_outside_it_left_out(inputs, tmp_path):
    src, labels = inputs
    nairobi = labels.cx[36:37, :]  # Nairobi's labels: their hull is where labels are complete
    area = gpd.GeoDataFrame(geometry=[nairobi.geometry.union_all().convex_hull], crs=labels.crs)
    area.to_file(tmp_path / "area.fgb", driver="FlatGeobuf")
    with pytest.warns(UserWarning, match=f"{SCENES[0]}.jp2: lies outside the labelled area"), \
            pytest.warns(UserWarning, match="206 of 386 labels lie on no scene"):
        ingest([src / "scenes"], src / "labels.gpkg", tmp_path / "raw", IngestOptions(
            bands=["red", "green", "blue"], labelled_area=tmp_path / "area.fgb"))
    scenes = load_scenes(tmp_path / "raw")
    assert scenes["scene_id"].tolist() == [SCENES[1]]
    assert not (tmp_path / "raw" / "images" / f"{SCENES[0]}.tif").exists()
    assert scenes["labelled_area"].tolist() == [f"areas/{SCENES[1]}.geojson"]
    got = gpd.read_file(tmp_path / "raw" / "areas" / f"{SCENES[1]}.geojson")
    assert len(got) == 1 and shapely.hausdorff_distance(got.geometry.iloc[0], area.geometry.iloc[0]) < 1e-7


def test_bad_labels_are_refused_clearly(inputs, tmp_path):
    src, labels = inputs
    scenes = [src / "scenes" / f"{SCENES[1]}.vrt"]
    for part in ("shp", "shx", "dbf"):
        (tmp_path / f"nocrs.{part}").write_bytes((src / f"labels.{part}").read_bytes())  # no .prj
    with pytest.raises(GeofoundryError, match=r"nocrs.shp: has no CRS .* ogr2ogr -a_srs"):
        ingest(scenes, tmp_path / "nocrs.shp", tmp_path / "a")
    with pytest.raises(GeofoundryError, match=r"labels.fgb: no class_path or class column; .*--class-column"):
        ingest(scenes, src / "labels.fgb", tmp_path / "b")
    elsewhere = labels.assign(geometry=labels.geometry.translate(5, 5))  # 5° away: on no scene
    elsewhere.to_file(tmp_path / "moved.gpkg")
    with pytest.raises(GeofoundryError, match=r"none of its 386 labels lies on a valid pixel"):
        ingest(scenes, tmp_path / "moved.gpkg", tmp_path / "c")
    (tmp_path / "notvector.gpkg").write_text("not a GeoPackage")
    with pytest.raises(GeofoundryError, match=r"notvector.gpkg: cannot read it as a vector file"):
        ingest(scenes, tmp_path / "notvector.gpkg", tmp_path / "d")
    assert not [p.name for p in tmp_path.iterdir() if p.is_dir()], "nothing written"


def test_cli_refuses_an_existing_dataset_without_force(ingested, inputs):
    out, _ = ingested
    src, _ = inputs
    res = CliRunner().invoke(app, ["ingest", str(src / "scenes" / f"{SCENES[1]}.vrt"), "--labels",
                                   str(src / "labels.gpkg"), "--out", str(out)])
    assert res.exit_code == 1 and "exists and is not empty; choose another folder or pass --force" in res.output
    assert len(load_scenes(out)) == 2, "the dataset is untouched"


@pytest.mark.slow
def test_ingested_dataset_runs_select_to_evaluate(ingested, tmp_path):
    out, _ = ingested
    repo = make_project(tmp_path / "repo", out, {"select": {"sites": []}})
    sh("dvc", "repro", "evaluate", cwd=repo)
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert 0 <= metrics["object"]["f1"] <= 1 and set(metrics["site_f1"]) <= set(SCENES)
    report = json.loads((repo / "reports" / "evaluate.json").read_text())
    assert report["object"]["tp"] + report["object"]["fn"] > 0
