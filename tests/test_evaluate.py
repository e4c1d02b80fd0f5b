"""geofoundry.evaluate: hand-built geometries and arrays with known answers, then a real DEV scene end to end."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from PIL import Image
from rasterio import Affine
from rasterio.windows import Window
from shapely.affinity import translate
from shapely.geometry import box

from geofoundry.config import EvaluateConfig
from geofoundry.errors import GeofoundryError
from geofoundry.evaluate import run
from geofoundry.evaluate.objects import average_precision, match, prf
from geofoundry.io.units import area_m2
from geofoundry.evaluate.pixels import burn, class_counts, confusion, histograms, in_mask, pr_curve, scores
from geofoundry.evaluate.scene import POLYGONAL, Grid, clipped, counted
from geofoundry.io.raw import load_scenes, read_labels, select_classes

SCENE = "kampala_ug_z19"
WINDOW = Window(1408, 0, 896, 640)  # top-right cluster of valid tiles plus an invalid rim


def unit_grid(west: float, north: float) -> Affine:
    """1 × 1 pixels from (west, north) (rasterio's from_origin warns under affine >= 3.1)."""
    return Affine(1, 0, west, 0, -1, north)


def n_matches(truth, pred, threshold=0.5):
    return len(match(truth, pred, threshold)[0])


# --- objects -----------------------------------------------------------------------------------------------------


def test_perfect_match():
    geoms = [box(0, 0, 1, 1), box(2, 0, 3, 1), box(4, 0, 6, 2)]
    p, t, iou = match(geoms, geoms[::-1], 0.5)
    assert sorted(zip(p, t)) == [(0, 2), (1, 1), (2, 0)] and np.allclose(iou, 1)
    assert prf(3, 0, 0) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_one_truth_two_half_predictions_matches_at_most_once():
    truth = [box(0, 0, 2, 1)]
    assert n_matches(truth, [box(0, 0, 0.9, 1), box(1.1, 0, 2, 1)]) == 0  # IoU 0.45 each
    p, t, iou = match(truth, [box(0, 0, 1.2, 1), box(1.2, 0, 2, 1)], 0.5)  # IoU 0.6 and 0.4
    assert p.tolist() == [0] and t.tolist() == [0] and iou == pytest.approx([0.6])


def test_two_truths_one_prediction_matches_once():
    assert n_matches([box(0, 0, 1, 1), box(1, 0, 2, 1)], [box(0, 0, 2, 1)]) == 1  # IoU 0.5 with each


def test_greedy_takes_highest_iou_first():
    truth = [box(0, 0, 1, 1), box(1, 0, 2, 1)]
    pred = [box(0.9, 0, 2, 1), box(0.25, 0, 1, 1)]  # pred 0: IoU 0.91 with truth 1 (0.05 with 0); pred 1: 0.75
    p, t, iou = match(truth, pred, 0.05)
    assert sorted(zip(p.tolist(), t.tolist())) == [(0, 1), (1, 0)]
    assert sorted(iou) == pytest.approx([0.75, 1 / 1.1])


def test_empty_predictions_and_empty_truth_give_zero():
    assert n_matches([box(0, 0, 1, 1)], []) == 0 and n_matches([], [box(0, 0, 1, 1)]) == 0
    assert prf(0, 0, 3) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # precision undefined → 0
    assert prf(0, 2, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # recall undefined → 0
    assert average_precision(np.array([0.9]), np.array([False]), 0)[0] == 0.0
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3)[0] == 0.0


def test_iou_exactly_at_threshold_matches():
    x0, y0 = 3627854.24, 39135.76  # real Web-Mercator coordinates: areas carry float rounding
    truth, pred = [box(x0, y0, x0 + 2, y0 + 1)], [box(x0, y0, x0 + 1, y0 + 1)]
    assert n_matches(truth, pred, 0.5) == 1
    assert n_matches(truth, pred, 0.5001) == 0
    assert n_matches([box(0, 0, 1, 1)], [box(1, 0, 2, 1)], 1e-6) == 0  # touching: IoU 0


def test_area_in_metres_and_min_area_filter():
    x0, y0 = 0.0, 8399737.89  # EPSG:3857 at latitude 60°: 1 map unit = 0.5 m
    small, large = box(x0, y0, x0 + 10, y0 + 10), box(x0 + 40, y0, x0 + 60, y0 + 20)
    assert list(area_m2(gpd.GeoSeries([small, large], crs="EPSG:3857"))) == pytest.approx([25, 100], rel=0.01)
    assert list(area_m2(gpd.GeoSeries([box(3, 0, 3.001, 0.001)], crs="EPSG:4326"))) == pytest.approx(
        [111.32 * 110.57], rel=1e-3)
    gdf = gpd.GeoDataFrame(geometry=[small, large], crs="EPSG:3857")
    mask = np.ones((100, 100), dtype=bool)
    grid = Grid(gdf.crs, unit_grid(x0 - 10, y0 + 50), mask)
    assert len(counted(gdf, grid, 0)) == 2
    assert counted(gdf, grid, 50).geometry.tolist() == [large]  # raw 3857 areas (100, 400) would keep both
    mask[:, 40:] = False  # the large square's representative point leaves the evaluation area
    assert counted(gdf, grid, 0).geometry.tolist() == [small]


def test_average_precision_known_ranking():
    ap, curve = average_precision(np.array([0.6, 0.9, 0.7, 0.8]), np.array([False, True, True, False]), 3)
    assert ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)  # VOC all-point: envelope 1 up to r=1/3, 2/3 up to r=2/3
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.7, 0.6]
    assert curve["precision"] == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2])
    assert curve["recall"] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert average_precision(np.array([0.9, 0.9]), np.array([False, True]), 1)[0] == 0.5  # a tie is one point
    assert average_precision(np.array([0.9, 0.9]), np.array([True, False]), 1)[0] == 0.5


# --- pixels ------------------------------------------------------------------------------------------------------


def test_confusion_and_pixel_scores():
    truth = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 0], [2, 1, 2]])
    valid = np.array([[True, True, True], [True, True, False]])
    cm = confusion(truth, pred, valid, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert class_counts(cm, 1) == (1, 1, 1)
    assert scores(*class_counts(cm, 1)) == pytest.approx({"iou": 1 / 3, "f1": 0.5, "precision": 0.5, "recall": 0.5})
    assert scores(0, 0, 0) == {"iou": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_histogram_pr_curve():
    prob = np.array([255, 200, 200, 0, 7], dtype=np.uint8)
    is_class = np.array([True, True, False, False, True])
    valid = np.array([True, True, True, True, False])
    hist = histograms(prob, is_class, valid)
    assert hist.sum(axis=1).tolist() == [2, 2]
    c = pr_curve(hist)
    assert (c["precision"][0], c["recall"][0]) == (0.5, 1.0)  # t = 0: everything positive
    assert c["precision"][200] == pytest.approx(2 / 3) and c["recall"][200] == 1.0
    assert (c["precision"][201], c["recall"][201], c["f1"][201]) == pytest.approx((1, 0.5, 2 / 3))
    assert c["threshold"][[0, 255]].tolist() == [0.0, 1.0]


def test_in_mask_and_burn():
    mask = np.array([[True, False], [False, False]])
    geoms = [box(0.1, 1.1, 0.9, 1.9), box(1.1, 1.1, 1.9, 1.9), box(5, 5, 6, 6)]
    assert in_mask(geoms, mask, unit_grid(0, 2)).tolist() == [True, False, False]
    assert burn([], [], (2, 2), unit_grid(0, 2)).tolist() == [[0, 0], [0, 0]]
    assert burn([box(0, 0, 1, 2)], [1], (2, 2), unit_grid(0, 2)).tolist() == [[1, 0], [1, 0]]


# --- real DEV scene ----------------------------------------------------------------------------------------------


def test_truth_clipped_to_the_evaluation_area():
    """Objects are cut to the area's pixels; parts without area (an edge or a corner touched) go."""
    mask = np.zeros((4, 6), bool)
    mask[:, :3] = True  # x in [0, 3) of a grid whose top is y = 4
    grid = Grid("EPSG:32636", unit_grid(0, 4), mask)
    gdf = gpd.GeoDataFrame({"class_id": [1, 1, 1, 1]}, geometry=[
        box(2, 1, 5, 2),  # across the edge: its part x in [2, 3) stays
        box(3, 0, 4, 1),  # touches the edge along a line: dropped
        shapely.union(box(1, 2, 3, 3), shapely.LineString([(3, 3), (5, 3)])).convex_hull,  # a polygon: cut
        box(0.5, 0.5, 1.5, 1.5),  # inside: unchanged
    ], crs="EPSG:32636")
    out = clipped(gdf, grid)
    assert out.index.tolist() == [0, 2, 3]
    assert out.geometry.iloc[0].equals(box(2, 1, 3, 2)) and out.geometry.iloc[2].equals(box(0.5, 0.5, 1.5, 1.5))
    assert set(shapely.get_type_id(out.geometry.values)) <= set(POLYGONAL)


@pytest.fixture(scope="module")
def dev(tmp_path_factory, dev_root):
    """Selection, probability raster and truth in the prediction CRS for a window of ``kampala_ug_z19``."""
    root = tmp_path_factory.mktemp("eval")
    (root / "selection").mkdir()
    scenes = load_scenes(dev_root)
    scenes[scenes["scene_id"] == SCENE].to_parquet(root / "selection" / "scenes.parquet")
    classes = {"names": ["background", "building"], "paths": [None, "structure/building"]}
    (root / "selection" / "classes.json").write_text(json.dumps(classes))

    truth = select_classes(read_labels(dev_root / "labels" / f"{SCENE}.geojson"), ["structure/building"])
    with rasterio.open(dev_root / "images" / f"{SCENE}.tif") as ds:
        truth = truth.to_crs(ds.crs)
        transform = ds.transform @ Affine.translation(WINDOW.col_off, WINDOW.row_off)
        mask = ds.dataset_mask(window=WINDOW) > 0
        profile = {"driver": "GTiff", "crs": ds.crs, "transform": transform, "count": 1, "dtype": "uint8",
                   "width": WINDOW.width, "height": WINDOW.height}
    is_building = burn(truth.geometry.values, [1] * len(truth), mask.shape, transform) == 1
    (root / "predictions").mkdir()
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(root / "predictions" / f"{SCENE}.tif", "w",
                                                                  **profile) as out:
        out.write(np.where(is_building, 230, 20).astype(np.uint8), 1)
        out.write_mask(mask)
    grid = Grid(profile["crs"], transform, mask)
    inside = clipped(truth, grid)  # what a perfect model predicts: nothing outside the evaluation area
    inside["cut"] = shapely.area(inside.geometry.values) < shapely.area(truth.geometry.loc[inside.index].values) - 1e-6
    inside = inside.reset_index(drop=True)
    rows, cols = rasterio.transform.rowcol(transform, *shapely.get_coordinates(inside.representative_point()).T)
    rows, cols = np.asarray(rows), np.asarray(cols)
    on_grid = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
    inside["counted"] = on_grid & mask[rows.clip(0, mask.shape[0] - 1), cols.clip(0, mask.shape[1] - 1)]
    return root, inside, grid


def write_vectors(path: Path, gdf: gpd.GeoDataFrame) -> None:
    rng = np.random.default_rng(0)
    out = gdf[["geometry"]].assign(class_id=1, class_name="building", score=rng.uniform(0.5, 1, len(gdf)))
    path.parent.mkdir(exist_ok=True)
    out.to_file(path, layer="objects", driver="GPKG")


def evaluate(root: Path, vectors: str, **cfg) -> dict:
    return run(EvaluateConfig(**cfg), root / "selection", root / "predictions", root / vectors,
               root / f"metrics_{vectors}.json", root / f"plots_{vectors}", root / f"report_{vectors}.json")


def test_dev_scene_truth_against_itself_is_perfect(dev):
    root, truth, _ = dev
    write_vectors(root / "same" / f"{SCENE}.gpkg", truth)
    m = evaluate(root, "same")
    n = int(truth["counted"].sum())
    assert n > 20 and (truth["counted"] & truth["cut"]).sum() >= 3  # objects that cross the area's edge count too
    assert m["object"] == {"f1": 1.0, "precision": 1.0, "recall": 1.0, "ap": 1.0, "tp": n, "fp": 0, "fn": 0}
    assert m["pixel"] == {"iou": 1.0, "f1": 1.0, "precision": 1.0, "recall": 1.0}
    assert m["pixel_confusion"]["background"]["building"] == 0 and m["pixel_confusion"]["building"]["building"] > 0


def test_dev_scene_with_removed_and_shifted_objects(dev):
    root, truth, grid = dev
    idx = np.flatnonzero(truth["counted"])
    removed, shifted = idx[:3], []
    for i in idx[3:]:  # shift by the object's own width: IoU < 0.5 with every truth and still in the area
        g = truth.geometry.iloc[i]
        moved = translate(g, xoff=g.bounds[2] - g.bounds[0])
        iou = shapely.area(shapely.intersection(moved, truth.geometry.values)) / shapely.area(
            shapely.union(moved, truth.geometry.values))
        if iou.max() < 0.5 and in_mask([moved], grid.mask, grid.transform)[0]:
            shifted.append((i, moved))
        if len(shifted) == 2:
            break
    vectors = truth.drop(index=removed)
    for i, moved in shifted:
        vectors.loc[i, "geometry"] = moved
    write_vectors(root / "edited" / f"{SCENE}.gpkg", vectors)

    m = evaluate(root, "edited")
    n = int(truth["counted"].sum())
    assert (m["object"]["tp"], m["object"]["fp"], m["object"]["fn"]) == (n - 5, 2, 5)
    assert m["object"]["precision"] == pytest.approx((n - 5) / (n - 3), abs=1e-6)
    assert m["object"]["recall"] == pytest.approx((n - 5) / n, abs=1e-6)
    assert 0 < m["pixel"]["iou"] < 1 and m["pixel"]["recall"] < 1
    for key, name in (("per_class", "building"), ("per_site", "kampala_ug"), ("per_scene", SCENE)):
        assert m[key] == {name: {"object": m["object"], "pixel": m["pixel"]}}  # one class, site and scene
    assert m["per_level"] == {level: {"object": m["object"], "pixel": m["pixel"]}
                              for level in ("structure", "structure/building")}
    assert m["n_scenes"] == 1 and json.loads((root / "report_edited.json").read_text()) == m
    headline = json.loads((root / "metrics_edited.json").read_text())  # the few figures experiments compare
    assert headline == {"object": {k: m["object"][k] for k in ("precision", "recall", "f1", "ap")},
                        "pixel": {k: m["pixel"][k] for k in ("iou", "f1")}, "site_f1": {"kampala_ug": m["object"]["f1"]}}

    plots = root / "plots_edited"
    pr = {"recall", "precision", "threshold"}
    expected = {"object_pr.json": pr, "pixel_pr.json": pr, "f1_vs_threshold.json": {"threshold", "f1"},
                "confusion.json": {"actual", "predicted"}, "per_scene.json": {"scene_id", "f1", "iou"}}
    for name, keys in expected.items():
        records = json.loads((plots / name).read_text())
        assert records and all(set(r) == keys for r in records), name
    assert len(json.loads((plots / "confusion.json").read_text())) == n - 5 + 2 + 5
    assert len(json.loads((plots / "pixel_pr.json").read_text())) == 256
    pngs = sorted((plots / "overlays").glob(f"{SCENE}__*.png"))  # one per 150 m cell with evaluated pixels
    assert len(pngs) >= 2
    colors = set()
    for png in pngs:
        with Image.open(png) as img:
            assert img.width >= 720 and img.height > 2 * WINDOW.height / len(pngs)  # small blocks drawn at 2×
            colors |= {c for _, c in img.convert("RGB").getcolors(1 << 20)}
            header = {c for _, c in img.convert("RGB").crop((0, 0, img.width, 40)).getcolors(1 << 20)}
        assert {(255, 255, 255), (0, 255, 0), (255, 0, 0), (255, 255, 0)} <= header  # title and legend
    assert {(0, 255, 0), (255, 0, 0), (255, 255, 0)} <= colors


def test_missing_inputs_raise_clear_errors(dev, tmp_path):
    root, _, _ = dev
    with pytest.raises(GeofoundryError, match="no prediction rasters"):
        run(EvaluateConfig(), root / "selection", tmp_path, tmp_path, tmp_path / "m.json", tmp_path / "p",
            tmp_path / "r.json")
    with pytest.raises(GeofoundryError, match=f"{SCENE}.gpkg"):
        run(EvaluateConfig(), root / "selection", root / "predictions", tmp_path, tmp_path / "m.json", tmp_path / "p",
            tmp_path / "r.json")
    (tmp_path / "bad").mkdir()
    gpd.GeoDataFrame({"score": [0.5]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:3857").to_file(
        tmp_path / "bad" / f"{SCENE}.gpkg", layer="objects")
    with pytest.raises(GeofoundryError, match=r"lacks the column\(s\) \['class_id'\]"):
        run(EvaluateConfig(), root / "selection", root / "predictions", tmp_path / "bad", tmp_path / "m.json",
            tmp_path / "p", tmp_path / "r.json")
    with pytest.raises(GeofoundryError, match="scenes.parquet"):
        run(EvaluateConfig(), tmp_path, root / "predictions", tmp_path, tmp_path / "m.json", tmp_path / "p",
            tmp_path / "r.json")


def test_breakdowns_by_size_gsd_and_block_context(dev, tmp_path):
    """Outcomes split by object size, GSD and the context of the block under each object's point."""
    import shutil

    root, truth, grid = dev
    vectors = truth.drop(index=np.flatnonzero(truth["counted"])[:4])  # 4 misses
    write_vectors(tmp_path / "vec" / f"{SCENE}.gpkg", vectors)
    shutil.copytree(root / "selection", tmp_path / "selection")
    west, south, east, north = gpd.GeoSeries([shapely.box(*rasterio.transform.array_bounds(
        *grid.mask.shape, grid.transform))], crs=grid.crs).to_crs("EPSG:3857").total_bounds
    mid = (west + east) / 2
    cells = [shapely.box(west - 1, south - 1, mid, north + 1), shapely.box(mid, south - 1, east + 1, north + 1)]
    gpd.GeoDataFrame({"block_id": ["w", "e"], "vegetation": [0.05, 0.5], "split": ["test", "test"]},
                     geometry=cells, crs="EPSG:3857").to_parquet(tmp_path / "selection" / "blocks.parquet")
    m = run(EvaluateConfig(), tmp_path / "selection", root / "predictions", tmp_path / "vec", tmp_path / "m.json",
            tmp_path / "plots", tmp_path / "r.json")
    total = {k: m["object"][k] for k in ("tp", "fp", "fn")}
    for key in ("by_size", "by_gsd", "by_vegetation"):
        assert {k: sum(b[k] for b in m[key].values()) for k in total} == total, key
    assert sum(g["tp"] + g["fn"] for g in m["by_touching"].values()) == total["tp"] + total["fn"]
    counted = truth[truth["counted"]].to_crs("EPSG:3857").representative_point()
    assert m["by_vegetation"]["lt0.1"]["tp"] + m["by_vegetation"]["lt0.1"]["fn"] == int((counted.x < mid).sum())
    assert m["by_vegetation"]["0.1to0.3"]["tp"] == 0
    assert list(m["by_gsd"]) == ["0.30m"]
    bars = json.loads((tmp_path / "plots" / "per_context.json").read_text())
    assert {"group": "vegetation ge0.3", "f1": m["by_vegetation"]["ge0.3"]["f1"],
            "objects": sum(m["by_vegetation"]["ge0.3"][k] for k in total)} in bars


def test_hierarchy_levels_group_classes():
    from geofoundry.evaluate.run import level_groups

    paths = [None, "vehicle/aircraft/military/fighter", "vehicle/aircraft/civil", "vehicle/ship", "structure"]
    groups = level_groups(paths)
    assert groups["vehicle"] == [1, 2, 3] and groups["vehicle/aircraft"] == [1, 2]
    assert groups["vehicle/aircraft/military/fighter"] == [1] and groups["structure"] == [4]


def test_gsd_bins_join_scenes_that_round_alike():
    """Three 0.3 m scenes whose GSDs differ in the 4th decimal share one bin (their counts add up), 0.15 m another."""
    from geofoundry.evaluate.breakdown import breakdowns

    frame = gpd.GeoDataFrame({"outcome": ["tp", "fp", "fn", "tp", "tp"], "area_m2": [60.0] * 5,
                              "gsd_m": [0.2986, 0.2991, 0.2986, 0.3003, 0.1493]},
                             geometry=[shapely.Point(0, 0)] * 5, crs="EPSG:3857")
    by_gsd = breakdowns(frame, None)["by_gsd"]
    assert list(by_gsd) == ["0.15m", "0.30m"]
    assert {k: by_gsd["0.30m"][k] for k in ("tp", "fp", "fn")} == {"tp": 2, "fp": 1, "fn": 1}


def test_touching_truth_objects_within_half_a_metre():
    """Two roofs 0.4 m apart touch, one 0.6 m away does not; recall is counted on each side."""
    from geofoundry.evaluate.breakdown import by_touching, truth_contacts

    a, b = shapely.box(0, 0, 10, 10), shapely.box(10.4, 0, 20, 10)  # 0.4 m gap
    c, d = shapely.box(0, 30, 10, 40), shapely.box(10.6, 30, 20, 40)  # 0.6 m gap
    truth = truth_contacts({"found": [a, c], "fn": [b, d]}, "EPSG:32636")
    assert truth["touching"].tolist() == [True, False, True, False]
    assert by_touching(truth) == {"touching": {"recall": 0.5, "tp": 1, "fn": 1},
                                  "isolated": {"recall": 0.5, "tp": 1, "fn": 1}}


def test_overlay_blocks_figures_and_cap(dev, monkeypatch):
    """Each block counts the objects whose point lies in it; a scene gets the blocks with the most objects first."""
    from geofoundry.evaluate import overlay
    from geofoundry.evaluate.breakdown import outcomes

    _, truth, grid = dev
    counted = list(truth.geometry[truth["counted"]])
    placed = outcomes({"tp": counted[::2], "fp": [], "fn": counted[1::2]}, grid.crs, 0.3)
    blocks, n = overlay.overlay_blocks(grid, None, placed)
    assert n == len(blocks) >= 3
    assert sum(f["tp"] for _, _, f in blocks) == len(counted[::2])
    assert sum(f["fn"] for _, _, f in blocks) == len(counted[1::2])
    empty, _ = overlay.overlay_blocks(grid, None, outcomes({"tp": [], "fp": [], "fn": []}, grid.crs, 0.3))
    assert len(empty) == n and all(f["tp"] == f["fp"] == f["fn"] == 0 for _, _, f in empty)
    busiest = sorted(f["tp"] + f["fn"] for _, _, f in blocks)[-2:]
    monkeypatch.setattr(overlay, "MAX_PER_SCENE", 2)
    capped, n_capped = overlay.overlay_blocks(grid, None, placed)
    assert n_capped == n and sorted(f["tp"] + f["fn"] for _, _, f in capped) == busiest
