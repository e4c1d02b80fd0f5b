"""Bad input fails clearly and names the file: CRS, scenes.csv vs file, corrupt TIFF, polygons, labels, classes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import rasterio
from pydantic import ValidationError

from geofoundry.config import SelectConfig
from geofoundry.errors import GeofoundryError
from geofoundry.io.raw import check_image, load_scenes, read_labels
from geofoundry.select import run as select_run

from .conftest import copy_subset

RIO = "rio_img04_3band"


@pytest.fixture()
def rio(tmp_path, spacenet_root) -> Path:
    return copy_subset(spacenet_root, tmp_path / "raw", [RIO, "rio_img05_3band"])


def row_of(root: Path, scene_id: str = RIO) -> pd.Series:
    scenes = load_scenes(root)
    return scenes[scenes["scene_id"] == scene_id].iloc[0]


def test_image_without_crs_is_named(rio):
    path = rio / "images" / f"{RIO}.tif"
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile.update(crs=None)
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(GeofoundryError, match=rf"{RIO}\.tif: image has no CRS"):
        check_image(row_of(rio))


@pytest.mark.parametrize("column,value", [("bands", 4), ("dtype", "uint16"), ("width", 440), ("height", 1)])
def test_scenes_csv_disagreeing_with_the_file(rio, column, value):
    csv = pd.read_csv(rio / "scenes.csv", dtype=str)
    csv.loc[csv["scene_id"] == RIO, column] = str(value)
    csv.to_csv(rio / "scenes.csv", index=False)
    with pytest.raises(GeofoundryError, match=rf"{RIO}\.tif: scenes.csv says {column}={value} but the file has"):
        check_image(row_of(rio))


def test_band_names_count_must_match(rio):
    csv = pd.read_csv(rio / "scenes.csv", dtype=str)
    csv.loc[csv["scene_id"] == RIO, "band_names"] = "red|green"
    csv.to_csv(rio / "scenes.csv", index=False)
    with pytest.raises(GeofoundryError, match=rf"{RIO}\.tif: scenes.csv band_names lists 2 names for 3 bands"):
        check_image(row_of(rio))


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_tiff_is_named(tmp_path, dev_root, keep):
    root = copy_subset(dev_root, tmp_path / "raw", ["kampala_ug_z19"])
    path = root / "images" / "kampala_ug_z19.tif"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(GeofoundryError, match=r"kampala_ug_z19\.tif: cannot read the image .*corrupt or truncated"):
        check_image(row_of(root, "kampala_ug_z19"))


def test_invalid_polygon_is_repaired_with_a_warning(tmp_path):
    bowtie = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]
    path = tmp_path / "labels.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class": "building", "class_path": "structure/building"},
         "geometry": {"type": "Polygon", "coordinates": bowtie}}]}))
    with pytest.warns(UserWarning, match=r"labels\.geojson: repaired 1 invalid polygon"):
        labels = read_labels(path)
    assert labels.geometry.is_valid.all() and labels.geometry.values[0].area == pytest.approx(0.5)


def test_labels_all_outside_the_valid_area_are_refused(rio, tmp_path):
    """Otherwise the scene would train with its objects as background."""
    path = rio / "labels" / f"{RIO}.geojson"
    fc = json.loads(path.read_text())
    for f in fc["features"]:  # move every polygon 1 degree east: off the scene
        f["geometry"]["coordinates"] = [[[x + 1, y] for x, y in ring] for ring in f["geometry"]["coordinates"]]
    path.write_text(json.dumps(fc))
    cfg = SelectConfig(gsd_range=(0, 5), context_gsd_m=2.0, split={"fractions": {"train": 1, "val": 0, "test": 0}})
    with pytest.raises(GeofoundryError, match=rf"{RIO}\.geojson: none of its 13 labels overlaps the valid area"):
        select_run(cfg, rio, tmp_path / "sel", tmp_path / "m.json")


@pytest.mark.parametrize("query,name", [
    ({"sites": ["atlantis"]}, "select.sites"),
    ({"sensors": ["landsat-8"]}, "select.sensors"),
    ({"gsd_range": [5, 10]}, "select.gsd_range"),
    ({"dates": ["2020-01-01", "2021-01-01"]}, "select.dates"),
    ({"min_valid_frac": 0.9}, "select.min_valid_frac"),
    ({"contexts": {"bright": [0.9, 1]}}, "select.contexts.bright"),
    ({"geofence": {"include": "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"}}, "select.geofence"),
])
def test_empty_selection_names_the_filter(rio, tmp_path, query, name):
    cfg = SelectConfig(**{"gsd_range": (0, 5), "context_gsd_m": 2.0, **query})
    with pytest.raises(GeofoundryError, match=rf"the selection is empty: {name}"):
        select_run(cfg, rio, tmp_path / "sel", tmp_path / "m.json")


def test_five_level_class_path_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="has 5 levels; at most 4"):
        SelectConfig(classes=["vehicle/aircraft/military/fighter/f16"])
    path = tmp_path / "labels.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class": "f16", "class_path": "vehicle/aircraft/military/fighter/f16"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}))
    with warnings.catch_warnings(), pytest.raises(GeofoundryError, match=r"labels\.geojson: .* has 5 levels"):
        read_labels(path)
