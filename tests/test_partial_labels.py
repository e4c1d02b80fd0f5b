"""Partly labelled scenes (``scenes.csv`` column ``labelled_area``): unlabelled pixels are ignored in the chips, the
loss and the metrics, never taken as background; without a labelled area nothing changes."""

from __future__ import annotations

import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import torch

from geofoundry import preprocess
from geofoundry.config import ChipConfig, EvaluateConfig, PreprocessConfig
from geofoundry.evaluate import run as evaluate_run
from geofoundry.io.labelled import PATH_COLUMN, area_geojson, read_area
from geofoundry.io.raw import read_labels
from geofoundry.train.losses import WeightedLoss

from .test_evaluate import SCENE, dev, write_vectors  # noqa: F401 - dev is a fixture

IGNORE = 255


def with_area(selection, out, area_4326) -> None:
    """A copy of ``selection`` whose scenes have ``area_4326`` as their labelled area."""
    shutil.copytree(selection, out)
    (out / "area.geojson").write_text(area_geojson(area_4326))
    scenes = pd.read_parquet(out / "scenes.parquet")
    scenes[PATH_COLUMN] = str(out / "area.geojson")
    scenes.to_parquet(out / "scenes.parquet")


def test_labelled_area_file_round_trip(tmp_path):
    area = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)])
    (tmp_path / "a.geojson").write_text(area_geojson(area))
    assert read_area(tmp_path / "a.geojson").equals(area)
    (tmp_path / "empty.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    assert read_area(tmp_path / "empty.geojson").is_empty  # nothing labelled yet


def test_chips_ignore_unlabelled_ground(selection_dir, chips_dir, tmp_path):
    """Labelled: every block but one train block (its chips go) and the west half of another (east half ignored)."""
    blocks = gpd.read_parquet(selection_dir / "blocks.parquet")
    index = pd.read_parquet(chips_dir / "index.parquet")
    train_blocks = index.loc[index["split"] == "train", "block_id"].value_counts().index
    gone, half = train_blocks[0], train_blocks[1]
    west = blocks.set_index("block_id").geometry[half]
    x0, y0, x1, y1 = west.bounds
    labelled = shapely.union_all([g for b, g in zip(blocks["block_id"], blocks.geometry) if b not in (gone, half)]
                                 + [shapely.box(x0, y0, (x0 + x1) / 2, y1).intersection(west)])
    with_area(selection_dir, tmp_path / "selection", gpd.GeoSeries([labelled], crs="EPSG:3857").to_crs(4326).iloc[0])
    out = tmp_path / "chips"
    preprocess.run(PreprocessConfig(chip=ChipConfig(size=128, stride=128)), tmp_path / "selection", out)

    new = pd.read_parquet(out / "index.parquet")
    assert gone not in set(new["block_id"]) and half in set(new["block_id"])
    key = ["split", "block_id", "scene_id", "col_off", "row_off"]
    both = index.merge(new, on=key, suffixes=("_full", "_part"))
    assert len(both) == len(new)  # no chip appears that the fully labelled run did not have
    checked_half = 0
    for split in ("train", "val"):
        pairs = both[both["split"] == split]
        full_lab = np.load(chips_dir / split / "labels.npy")[pairs["index_full"]]
        part_lab = np.load(out / split / "labels.npy")[pairs["index_part"]]
        full_img = np.load(chips_dir / split / "images.npy")[pairs["index_full"]]
        part_img = np.load(out / split / "images.npy")[pairs["index_part"]]
        assert np.array_equal(full_img, part_img)  # the imagery stays: only the labels are unknown there
        whole = (pairs["block_id"] != half).to_numpy()
        assert np.array_equal(full_lab[whole], part_lab[whole])
        for f, p in zip(full_lab[~whole], part_lab[~whole]):
            known = p != IGNORE
            assert np.array_equal(p[known], f[known])  # the labelled west part is as before
            checked_half += int((p == IGNORE).sum() > (f == IGNORE).sum())  # east pixels: ignored, not background
    assert checked_half > 0


def test_ignored_pixels_do_not_count_as_background_in_the_loss():
    torch.manual_seed(0)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:5, 2:5] = 1
    target[0, :, 6:] = IGNORE  # unlabelled ground
    logits = torch.randn(1, 2, 8, 8)
    changed = logits.clone()
    changed[0, 1, :, 6:] += 10  # a confident "building" where nothing is known
    loss = WeightedLoss({"ce": 1.0, "dice": 1.0}, IGNORE)
    assert float(loss(logits, target)) == pytest.approx(float(loss(changed, target)))
    as_background = target.clone()
    as_background[target == IGNORE] = 0
    assert float(loss(changed, as_background)) > float(loss(logits, as_background)) + 0.1


def test_evaluation_leaves_unlabelled_ground_out(dev, tmp_path):  # noqa: F811
    """The labels wholly east of a line through the DEV window are taken out; the labelled area is the ground west of
    the line and the objects across it. Without that area the perfect prediction's objects east of the line are false
    positives; with it they are neither true nor false positives, and nothing else changes."""
    root, truth, _ = dev
    scenes = pd.read_parquet(root / "selection" / "scenes.parquet")
    labels = read_labels(scenes["labels_path"].iloc[0]).to_crs(truth.crs)
    x0, y0, x1, y1 = truth.total_bounds
    cut = (x0 + x1) / 2
    east = (labels.bounds["minx"] > cut).to_numpy()
    across = labels.geometry[labels.intersects(shapely.LineString([(cut, y0 - 1e3), (cut, y1 + 1e3)]))]
    area = shapely.union_all([shapely.box(x0 - 1e3, y0 - 1e3, cut, y1 + 1e3), *across])
    (tmp_path / "labels.geojson").write_text(labels[~east].to_crs(4326).to_json())
    write_vectors(tmp_path / "vectors" / f"{SCENE}.gpkg", truth)

    def metrics(name: str, area) -> dict:
        sel = tmp_path / name
        sel.mkdir()
        shutil.copy(root / "selection" / "classes.json", sel)
        s = scenes.assign(labels_path=str(tmp_path / "labels.geojson"))
        if area is not None:
            (sel / "area.geojson").write_text(area_geojson(gpd.GeoSeries([area], crs=truth.crs).to_crs(4326)[0]))
            s[PATH_COLUMN] = str(sel / "area.geojson")
        s.to_parquet(sel / "scenes.parquet")
        return evaluate_run(EvaluateConfig(), sel, root / "predictions", tmp_path / "vectors", sel / "m.json",
                            sel / "plots", sel / "report.json")

    everywhere, partial = metrics("everywhere", None), metrics("partial", area)
    assert everywhere["object"]["fp"] >= 3 and everywhere["object"]["fn"] == 0
    assert partial["object"]["tp"] == everywhere["object"]["tp"] > 10
    assert (partial["object"]["fp"], partial["object"]["fn"], partial["object"]["f1"]) == (0, 0, 1.0)
    assert everywhere["pixel_confusion"]["background"]["building"] > 0
    assert partial["pixel_confusion"]["background"]["building"] == 0 and partial["pixel"]["iou"] == 1.0
