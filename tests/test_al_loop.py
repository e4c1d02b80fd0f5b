"""The active-learning loop on real DEV scenes: ``al rank`` proposes only unlabelled train ground and writes a valid
handout (GeoPackage in the scene CRS, COG imagery); ``al import`` brings labels back, grows the labelled area, is
idempotent, and refuses bad geometries, files without a CRS and test ground, writing nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely

from geofoundry.al.importer import import_labels
from geofoundry.al.models import checkpoint_prober
from geofoundry.al.rank import rank
from geofoundry.config import AlConfig, PredictConfig, RpcConfig
from geofoundry.errors import GeofoundryError
from geofoundry.io.labelled import COLUMN, PATH_COLUMN, area_geojson, read_area
from geofoundry.models.input_spec import InputSpec

from .conftest import copy_subset
from .project import ROOT, env

BLOCK_M = 150.0


def blocks_of(selection_dir: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(selection_dir / "blocks.parquet")


def unlabelled(selection_dir: Path, chips_dir: Path) -> dict[str, list[str]]:
    """Blocks left unlabelled: two train blocks with chips, one val and one test block."""
    blocks = blocks_of(selection_dir)
    index = pd.read_parquet(chips_dir / "index.parquet")
    train = index.loc[index["split"] == "train", "block_id"].value_counts().index[:2].tolist()
    return {"train": train, "val": blocks.loc[blocks["split"] == "val", "block_id"].iloc[:1].tolist(),
            "test": blocks.loc[blocks["split"] == "test", "block_id"].iloc[:1].tolist()}


@pytest.fixture(scope="module")
def partial(tmp_path_factory, selection_dir, chips_dir):
    """The selection with every block labelled but those of ``unlabelled``."""
    out = tmp_path_factory.mktemp("partial") / "selection"
    shutil.copytree(selection_dir, out)
    hidden = [b for blocks in unlabelled(selection_dir, chips_dir).values() for b in blocks]
    blocks = blocks_of(selection_dir)
    area = blocks[~blocks["block_id"].isin(hidden)].to_crs(4326).geometry.union_all()
    (out / "area.geojson").write_text(area_geojson(area))
    scenes = pd.read_parquet(out / "scenes.parquet")
    scenes[PATH_COLUMN] = str(out / "area.geojson")
    scenes.to_parquet(out / "scenes.parquet")
    return out


def cfg(**kw) -> AlConfig:
    return AlConfig(n=5, chip=256, batch_size=4, device="cpu", **kw)


@pytest.mark.slow
def test_rank_proposes_only_unlabelled_train_ground(partial, chips_dir, tiny_model, selection_dir, tmp_path):
    spec = InputSpec.load(chips_dir / "stats.json")
    al = cfg(strategy="hybrid")
    prober = checkpoint_prober(tiny_model, spec, PredictConfig(), al)
    out = tmp_path / "handout"
    tiles = rank(al, prober, spec, partial, chips_dir, BLOCK_M, RpcConfig(), out)
    hidden = unlabelled(selection_dir, chips_dir)
    assert sorted(tiles["block_id"]) == sorted(hidden["train"])  # never the unlabelled val or test block
    assert tiles["rank"].tolist() == [1, 2]
    ranking = pd.read_csv(out / "ranking.csv")
    assert set(ranking["block_id"]) == set(hidden["train"])

    assert pyogrio.list_layers(out / "tiles.gpkg").tolist() == [["tiles", "Polygon"], ["labels", "MultiPolygon"]]
    layer = gpd.read_file(out / "tiles.gpkg", layer="tiles")
    scene_crs = pd.read_parquet(partial / "scenes.parquet")["crs"].unique().tolist()
    assert layer.crs.to_string() in scene_crs and layer.geometry.is_valid.all()
    assert np.allclose(layer.total_bounds, [layer["xmin"].min(), layer["ymin"].min(), layer["xmax"].max(),
                                            layer["ymax"].max()])
    cells = blocks_of(selection_dir).set_index("block_id").geometry
    images = pd.read_parquet(partial / "scenes.parquet").set_index("scene_id")["image_path"]
    for rec in layer.itertuples():
        assert rec.geometry.buffer(-1e-6).within(cells[rec.block_id])
        with rasterio.open(images[rec.scene_id]) as scene:
            seen = rec.geometry.intersection(shapely.box(*scene.bounds))  # the tile's part that the scene covers
        with rasterio.open(out / rec.image) as ds:
            assert ds.crs == layer.crs and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert ds.count == 3 and (ds.dataset_mask() > 0).any()
            assert shapely.box(*ds.bounds).buffer(1e-6).contains(seen)
    assert gpd.read_file(out / "tiles.gpkg", layer="labels").empty

    square = shapely.MultiPolygon([layer.geometry.iloc[0].centroid.buffer(3)])
    drawn = gpd.GeoDataFrame({"class": ["building"], "class_path": ["structure/building"]}, geometry=[square],
                             crs=layer.crs)
    drawn.to_file(out / "tiles.gpkg", layer="labels", mode="a", engine="pyogrio")
    with pytest.raises(GeofoundryError, match="holds 1 drawn label"):
        rank(al, prober, spec, partial, chips_dir, BLOCK_M, RpcConfig(), out)


def test_rank_without_unlabelled_ground_says_so(selection_dir, chips_dir, tiny_model, tmp_path):
    spec = InputSpec.load(chips_dir / "stats.json")
    al = cfg(strategy="entropy")
    with pytest.raises(GeofoundryError, match="no unlabelled ground in the .* train blocks"):
        rank(al, checkpoint_prober(tiny_model, spec, PredictConfig(), al), spec, selection_dir, chips_dir, BLOCK_M,
             RpcConfig(), tmp_path / "out")


# --- import --------------------------------------------------------------------------------------------------------


@pytest.fixture()
def hidden_block(tmp_path, dev_root, selection_dir, chips_dir):
    """A raw copy whose labels of one train block (with buildings) are taken out and whose labelled area leaves that
    block out; and a handout GeoPackage of that block with the taken-out polygons drawn in its labels layer."""
    raw = copy_subset(dev_root, tmp_path / "raw", ["kampala_ug_z19", "nairobi_ke_z19"])
    blocks = blocks_of(selection_dir)
    train = blocks[(blocks["split"] == "train")].sort_values("n_objects", ascending=False).iloc[0]
    cell = train.geometry
    scenes = pd.read_csv(raw / "scenes.csv", dtype=str)
    (raw / "labelled").mkdir()
    taken = []
    for sid in scenes["scene_id"]:
        path = raw / "labels" / f"{sid}.geojson"
        fc = json.loads(path.read_text())
        geoms = gpd.GeoSeries([shapely.geometry.shape(f["geometry"]) for f in fc["features"]], crs=4326).to_crs(3857)
        inside = geoms.intersects(cell).to_numpy()
        taken += [f for f, k in zip(fc["features"], inside) if k]
        fc["features"] = [f for f, k in zip(fc["features"], inside) if not k]
        path.write_text(json.dumps(fc))
        rest = gpd.GeoSeries([blocks.geometry.union_all().difference(cell)], crs=3857).to_crs(4326).iloc[0]
        (raw / "labelled" / f"{sid}.geojson").write_text(area_geojson(rest))
    scenes[COLUMN] = [f"labelled/{sid}.geojson" for sid in scenes["scene_id"]]
    scenes.to_csv(raw / "scenes.csv", index=False)
    drawn = gpd.GeoDataFrame.from_features(taken, crs=4326)[["class_path", "geometry"]].to_crs(3857)
    handout = tmp_path / "tiles.gpkg"
    gpd.GeoDataFrame({"tile_id": [train["block_id"]]}, geometry=[cell], crs=3857).to_file(handout, layer="tiles")
    drawn.to_file(handout, layer="labels")
    return raw, handout, train["block_id"], len(taken)


def snapshot(raw: Path) -> dict[str, bytes]:
    return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}


def test_import_round_trip(hidden_block, selection_dir):
    raw, handout, block_id, n = hidden_block
    assert n >= 3
    before = snapshot(raw)
    area_before = {p: read_area(raw / p) for p in before if p.startswith("labelled/")}
    result = import_labels(handout, raw, selection_dir / "blocks.parquet")
    assert result["labels_added"] == n and result["labelled_m2_added"] > 1000
    after = snapshot(raw)
    assert after["scenes.csv"] == before["scenes.csv"]
    cell = blocks_of(selection_dir).set_index("block_id").geometry[block_id]
    cell_4326 = gpd.GeoSeries([cell], crs=3857).to_crs(4326).iloc[0]
    grown = 0
    for p, old in area_before.items():
        new = read_area(raw / p)
        assert new.buffer(1e-9).contains(old)  # nothing labelled is lost
        grown += new.intersection(cell_4326).area > 0
    assert grown >= 1
    for p in before:  # old labels kept, new ones appended
        if p.startswith("labels/"):
            old, new = json.loads(before[p]), json.loads(after[p])
            assert new["features"][: len(old["features"])] == old["features"]
    again = import_labels(handout, raw, selection_dir / "blocks.parquet")
    assert again["labels_added"] == 0 and sum(s["duplicates_skipped"] for s in again["scenes"].values()) == n
    assert {p: read_area(raw / p).area for p in area_before} == {p: read_area(raw / p).area for p in area_before}


def test_import_refuses_bad_input_and_writes_nothing(hidden_block, selection_dir, tmp_path):
    raw, handout, block_id, _ = hidden_block
    before = snapshot(raw)
    blocks = selection_dir / "blocks.parquet"
    cell = blocks_of(selection_dir).set_index("block_id").geometry[block_id]
    x, y = cell.centroid.coords[0]
    bowtie = shapely.Polygon([(x, y), (x + 5, y + 5), (x + 5, y), (x, y + 5)])
    bad = tmp_path / "bad.gpkg"
    shutil.copy(handout, bad)
    n = pyogrio.read_info(bad, layer="labels")["features"]
    gpd.GeoDataFrame({"class_path": ["structure/building"]}, geometry=[bowtie], crs=3857).to_file(
        bad, layer="labels", mode="a")
    with pytest.raises(GeofoundryError, match=rf"feature {n + 1} is an invalid polygon \(Self-intersection"):
        import_labels(bad, raw, blocks)

    test_cell = blocks_of(selection_dir).query("split == 'test'").geometry.iloc[0]
    on_test = tmp_path / "test.gpkg"
    shutil.copy(handout, on_test)
    gpd.GeoDataFrame({"class_path": ["structure/building"]}, geometry=[test_cell.centroid.buffer(3)],
                     crs=3857).to_file(on_test, layer="labels", mode="a")
    with pytest.raises(GeofoundryError, match="reach test blocks"):
        import_labels(on_test, raw, blocks)
    area = tmp_path / "area.geojson"
    gpd.GeoDataFrame(geometry=[cell.union(test_cell)], crs=3857).to_file(area)
    with pytest.raises(GeofoundryError, match="overlaps test block"):
        import_labels(handout, raw, blocks, area_file=area)

    no_crs = tmp_path / "nocrs.gpkg"
    gpd.GeoDataFrame({"class_path": ["structure/building"]}, geometry=[cell.centroid.buffer(3)]).to_file(
        no_crs, layer="labels")
    with pytest.raises(GeofoundryError, match="has no CRS"):
        import_labels(no_crs, raw, blocks, area_file=area)
    outside = tmp_path / "outside.gpkg"
    shutil.copy(handout, outside)
    gpd.GeoDataFrame({"class_path": ["structure/building"]}, geometry=[shapely.Point(x + 2000, y).buffer(3)],
                     crs=3857).to_file(outside, layer="labels", mode="a")
    with pytest.raises(GeofoundryError, match="lie outside the labelled ground"):
        import_labels(outside, raw, blocks)
    assert snapshot(raw) == before


def test_cli_import_and_bad_options(hidden_block, selection_dir, tmp_path):
    """``geofoundry al``: a bad strategy name and bad input end with ``error (al …)`` and status 1; an import prints
    what each scene got and the DVC step."""
    raw, handout, _, n = hidden_block
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    (project / "data" / "selection").symlink_to(selection_dir)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "geofoundry", "al", *args], cwd=project, env=env(),
                              capture_output=True, text=True, check=False)

    bad = cli("rank", "--strategy", "entropi")
    assert bad.returncode == 1 and "error (al rank)" in bad.stderr and "strategy: Input should be" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = cli("import", str(handout), "--raw", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "error (al import)" in missing.stderr and "raw dataset folder not found" \
        in missing.stderr
    done = cli("import", str(handout), "--raw", str(raw))
    assert done.returncode == 0, done.stderr
    assert f"dvc add {raw}" in " ".join(done.stderr.split())
    assert sum(len(json.loads(p.read_text())["features"]) for p in (raw / "labels").glob("*.geojson")) >= n
