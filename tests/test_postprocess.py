"""geofoundry.postprocess on a probability raster made from real Kampala building labels (DEV data).

The raster is the z19 label mask in a 512×512 window (75 % valid), Gaussian-blurred into probabilities, with known
defects added: two background speckles (2×2 and 5×5 px), a 3×3 px hole in the largest building and a 1 px crack
across another one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import Geod
from rasterio.features import rasterize, shapes
from rasterio.windows import Window
from scipy import ndimage as ndi

from geofoundry.config import PostprocessConfig
from geofoundry.errors import GeofoundryError
from geofoundry.postprocess import OPS, SceneState, build_chain, describe_ops, format_ops_table, run
from geofoundry.postprocess.registry import FIELDS
from geofoundry.postprocess.rings import turning_angles
from geofoundry.postprocess.run import read_scene
from geofoundry.io.units import area_m2, pixel_area_m2

SCENE = "kampala_ug_z19"


@dataclass(frozen=True)
class Real:
    tif: Path
    truth: gpd.GeoDataFrame  # label polygons (EPSG:3857) clipped to the valid window
    ids: np.ndarray  # rasterized label ids, 0 outside buildings / valid area
    speckles: tuple[tuple[int, int, int], ...]  # (row, col, size)
    hole: tuple[int, int]  # (row, col) of the 3×3 hole's top-left pixel
    cracked: int  # label id of the building with the crack


def write_prob_tif(path: Path, prob: np.ndarray, valid: np.ndarray, transform, crs) -> Path:
    """Probability GeoTIFF as the predict stage writes it: uint8 round(255·p) per class, internal mask = valid."""
    profile = dict(driver="GTiff", width=prob.shape[2], height=prob.shape[1], count=prob.shape[0], dtype="uint8",
                   crs=crs, transform=transform, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as ds:
        ds.write(np.round(prob * 255).astype(np.uint8))
        ds.write_mask(valid.astype(np.uint8) * 255)
    return path


@pytest.fixture(scope="module")
def real(tmp_path_factory, dev_root) -> Real:
    with rasterio.open(dev_root / "images" / f"{SCENE}.tif") as ds:
        window = Window(1408, 0, 512, 512)
        transform, crs, valid = ds.window_transform(window), ds.crs, ds.dataset_mask(window=window) > 0
    labels = gpd.read_file(dev_root / "labels" / f"{SCENE}.geojson").to_crs(crs)
    ids = rasterize([(g, i + 1) for i, g in enumerate(labels.geometry)], (512, 512), transform=transform)
    ids[~valid] = 0
    prob = ndi.gaussian_filter((ids > 0).astype(np.float32), 1.0)
    background = np.argwhere(ndi.distance_transform_edt((ids == 0) & valid) > 10)
    speckles = ((*background[len(background) // 3], 2), (*background[2 * len(background) // 3], 5))
    for r, c, s in speckles:
        prob[r : r + s, c : c + s] = 0.6
    sizes = np.bincount(ids.ravel())
    sizes[0] = 0
    largest, cracked = np.argsort(-sizes)[[0, 1]]
    inner = np.argwhere(ndi.distance_transform_edt(ids == largest) > 5)[0]
    prob[inner[0] : inner[0] + 3, inner[1] : inner[1] + 3] = 0
    rows, cols = np.nonzero(ids == cracked)
    crack_row = int(rows.mean())
    prob[crack_row, cols.min() - 3 : cols.max() + 4] = 0
    tif = write_prob_tif(tmp_path_factory.mktemp("pred") / f"{SCENE}.tif", prob[None], valid, transform, crs)
    outline = shapes(valid.astype(np.uint8), mask=valid, transform=transform)
    truth = labels.clip(shapely.union_all([shapely.geometry.shape(g) for g, _ in outline]))
    return Real(tif, truth[~truth.is_empty], ids, speckles, tuple(inner), int(cracked))


@pytest.fixture(scope="module")
def scene(real) -> SceneState:
    return read_scene(real.tif, ["building"])


@pytest.fixture(scope="module")
def objects(scene) -> SceneState:
    return apply(scene, "threshold", "polygonize")


def apply(state: SceneState, *steps, end=("objects",)) -> SceneState:
    """Build a chain from op names or {name: params} items and run it on ``state``."""
    have = [f for f in FIELDS if getattr(state, f) is not None]
    items = [s if isinstance(s, dict) else {s: None} for s in steps]
    return build_chain(items, start=have, end=end)(state)


def mask_of(state: SceneState, *steps) -> np.ndarray:
    return apply(state, "threshold", *steps, end=("mask",)).mask


def iou(a, b) -> float:
    a, b = shapely.union_all(a), shapely.union_all(b)
    return a.intersection(b).area / a.union(b).area


def at(state: SceneState, row: float, col: float) -> np.ndarray:
    """Which objects contain the centre of pixel (row, col)."""
    x, y = state.transform @ (col + 0.5, row + 0.5)
    return state.objects.contains(shapely.Point(x, y)).to_numpy()


def right_angled(geom, tol_deg=1e-6) -> bool:
    polys = getattr(geom, "geoms", [geom])
    turns = np.concatenate([turning_angles(np.asarray(p.exterior.coords)[:-1]) for p in polys])
    return bool(np.all(np.abs(turns - 90) < tol_deg))


# --- raster ops --------------------------------------------------------------------------------------------------


def test_read_scene_matches_the_probability_geotiff(real, scene):
    assert scene.prob.shape == (1, 512, 512) and scene.prob.dtype == np.float32
    assert 0.7 < scene.valid.mean() < 0.8 and scene.crs.to_epsg() == 3857
    assert scene.prob[0][real.ids > 0].mean() > 0.8


def test_threshold_polygonize_recovers_the_buildings(real, objects):
    assert iou(objects.objects.geometry, real.truth.geometry) > 0.95
    truth_regions = ndi.label(real.ids > 0)[1]
    assert abs(len(objects.objects) - (truth_regions + 3)) <= 5  # + 2 speckles + 1 crack; blur may join neighbours
    assert set(objects.objects["class_name"]) == {"building"} and (objects.objects["class_id"] == 1).all()
    assert objects.objects["score"].between(0.5, 1).all()
    assert objects.prob is None and objects.mask is None  # vector stage from here on


def test_polygonize_score_is_the_mean_probability_of_the_pixels(real, scene, objects):
    r, c, s = real.speckles[1]
    assert objects.objects.loc[at(objects, r + 2, c + 2), "score"].item() == pytest.approx(153 / 255)


def test_chain_states_resume_from_any_step(scene):
    """``Chain.states`` gives the state after each step; resuming from a kept state ends where the whole chain does
    (what the running point search relies on to share chain prefixes between trials)."""
    chain = build_chain([{"threshold": {"value": 0.5}}, {"open": {"radius_px": 1}}, {"polygonize": {}},
                         {"min_area": {"area_m2": 5.0}}])
    states = list(chain.states(scene))
    assert len(states) == 4 and states[0].mask is not None and states[1].objects is None
    resumed = list(chain.states(states[1], 2))
    assert len(resumed) == 2 and resumed[-1].objects.geometry.equals(chain(scene).objects.geometry)
    assert list(chain.states(scene, 0, 1))[0].mask.tobytes() == states[0].mask.tobytes()


def test_threshold_per_class_value(scene):
    assert mask_of(scene).sum() > apply(scene, {"threshold": {"value": {"building": 0.9}}}, end=("mask",)).mask.sum()
    with pytest.raises(GeofoundryError, match=r"steps\[0\] 'threshold': unknown class 'roof'; classes: building"):
        apply(scene, {"threshold": {"value": {"roof": 0.3}}}, end=("mask",))


def test_open_removes_the_tiny_speckle_only(real, scene):
    (r1, c1, _), (r2, c2, _) = real.speckles
    before, after = mask_of(scene), mask_of(scene, {"open": {"radius_px": 1}})
    assert before[r1, c1] and not after[r1, c1]
    assert after[r2 + 2, c2 + 2]
    assert after.sum() > 0.95 * before.sum()


def test_close_mends_the_crack(real, scene):
    building = ndi.binary_dilation(real.ids == real.cracked, iterations=2)
    assert ndi.label(mask_of(scene) * building)[1] == 2
    assert ndi.label(mask_of(scene, "close") * building)[1] == 1


def test_fill_holes_only_below_the_area(real, scene):
    r, c = real.hole
    assert not mask_of(scene)[r + 1, c + 1]
    assert not mask_of(scene, {"fill_holes": {"max_area_m2": 0.5}})[r + 1, c + 1]  # 9 px ≈ 0.8 m²
    assert mask_of(scene, {"fill_holes": {"max_area_m2": 2}})[r + 1, c + 1]


def test_remove_small_removes_both_speckles(real, scene):
    before, after = mask_of(scene), mask_of(scene, {"remove_small": {"min_area_m2": 3}})
    assert ndi.label(before)[1] - ndi.label(after)[1] >= 2
    assert not any(after[r, c] for r, c, _ in real.speckles)


def test_watershed_separates_two_touching_discs(scene):
    yy, xx = np.mgrid[:120, :200]
    discs = ((yy - 60) ** 2 + (xx - 70) ** 2 < 30**2) | ((yy - 60) ** 2 + (xx - 125) ** 2 < 30**2)
    synthetic = replace(scene, valid=np.ones(discs.shape, bool), prob=discs[None].astype(np.float32))
    assert len(apply(synthetic, "threshold", "polygonize").objects) == 1
    split = apply(synthetic, "threshold", {"watershed": {"min_distance_px": 10}}, "polygonize").objects
    assert len(split) == 2
    assert sorted(split.geometry.area / discs.sum() / synthetic.transform.a**2) == pytest.approx([0.5, 0.5], abs=0.02)


def test_watershed_border_separates_touching_real_buildings(real, scene, objects):
    ids = real.ids
    edge = (ids > 0) & (ndi.grey_erosion(ids, size=3) != ndi.grey_dilation(ids, size=3))
    prob = np.stack([scene.prob[0], ndi.gaussian_filter(edge.astype(np.float32), 0.7) * 2]).clip(0, 1)
    state = replace(scene, prob=prob, class_names=("building", "border"), auxiliary=("border",))
    split = apply(state, "threshold", "watershed_border", "polygonize").objects
    buildings = len(np.unique(ids[ids > 0]))
    assert len(objects.objects) < len(split) <= buildings + 2
    assert len(split) >= buildings - 4 and set(split["class_name"]) == {"building"}


# --- vector ops ----------------------------------------------------------------------------------------------------


def test_simplify_keeps_the_outline_within_tolerance(objects):
    out = apply(objects, {"simplify": {"tolerance_m": 0.3}}).objects
    vertices = shapely.get_num_coordinates(objects.objects.geometry.to_numpy()).sum()
    assert shapely.get_num_coordinates(out.geometry.to_numpy()).sum() < 0.5 * vertices
    assert iou(out.geometry, objects.objects.geometry) > 0.95
    assert out.geometry.hausdorff_distance(objects.objects.geometry).max() <= 0.3 * 1.01  # EPSG:3857 ≈ metres here


def test_min_area_and_max_area(real, objects):
    small = apply(objects, {"min_area": {"area_m2": 4}})
    assert not any(at(small, r + 1, c + 1).any() for r, c, _ in real.speckles)
    assert (area_m2(small.objects.geometry) >= 4).all() and len(small.objects) >= len(objects.objects) - 6
    big = apply(objects, {"max_area": {"area_m2": 100}}).objects
    assert (area_m2(big.geometry) <= 100).all() and 0 < len(big) < len(objects.objects)


def add_strip(state: SceneState, width_m: float, length_m: float = 20.0) -> SceneState:
    """Objects plus a thin strip (a fence- or road-like false positive) near the first object."""
    x, y = state.objects.geometry.iloc[0].centroid.coords[0]
    strip = gpd.GeoDataFrame({"class_id": [1], "class_name": ["building"], "score": [0.9]},
                             geometry=[shapely.box(x, y, x + length_m, y + width_m)], crs=state.objects.crs)
    return state.with_objects(pd.concat([state.objects, strip], ignore_index=True))


def test_min_width_drops_thin_strips(objects):
    with_strip = add_strip(objects, 0.6)
    out = apply(with_strip, {"min_width": {"width_m": 1.0}}).objects
    assert len(out) >= 0.9 * len(objects.objects)
    assert not out.geometry.geom_equals(with_strip.objects.geometry.iloc[-1]).any()


def test_aspect_ratio_drops_elongated_objects(objects):
    with_strip = add_strip(objects, 1.5)
    out = apply(with_strip, {"aspect_ratio": {"max_ratio": 6}}).objects
    assert len(out) >= 0.9 * len(objects.objects) and len(out) < len(with_strip.objects)
    assert not out.geometry.geom_equals(with_strip.objects.geometry.iloc[-1]).any()


def test_min_score_drops_the_speckles(real, objects):
    out = apply(objects, {"min_score": {"score": 0.65}})
    assert not any(at(out, r + 1, c + 1).any() for r, c, _ in real.speckles)
    assert len(out.objects) >= 0.8 * len(objects.objects)


def test_buffer_unbuffer_removes_a_spike(real):
    building = real.truth.geometry.iloc[0]
    x0, y0, x1, y1 = building.bounds
    spiked = shapely.union(building, shapely.box(x1 - 1, (y0 + y1) / 2, x1 + 3, (y0 + y1) / 2 + 0.3))
    state = state_of([spiked], real.truth.crs)
    opened = apply(state, {"buffer_unbuffer": {"distance_m": -0.5}}).objects.geometry.iloc[0]
    assert opened.bounds[2] == pytest.approx(x1, abs=0.05)
    assert iou([opened], [building]) > 0.97


def test_convex_hull_and_min_rotated_rectangle(objects):
    hull = apply(objects, "convex_hull").objects.geometry
    assert (hull.area >= objects.objects.geometry.area - 1e-6).all()
    assert np.allclose(hull.area, hull.convex_hull.area, rtol=1e-9)
    rect = apply(objects, "min_rotated_rectangle").objects.geometry
    assert (shapely.get_num_coordinates(rect.to_numpy()) == 5).all() and all(right_angled(g) for g in rect)


def test_regularize_gives_right_angles(objects):
    buildings = apply(objects, {"min_area": {"area_m2": 10}})
    out = apply(buildings, "regularize").objects
    assert len(out) == len(buildings.objects) and all(right_angled(g) for g in out.geometry)
    ratios = [iou([a], [b]) for a, b in zip(out.geometry, buildings.objects.geometry)]
    assert np.median(ratios) > 0.85


def test_straighten_removes_collinear_vertices(real):
    truth = real.truth.geometry[real.truth.geometry.area > 20].iloc[:10]
    dense = state_of(list(shapely.segmentize(truth.to_numpy(), 0.3)), real.truth.crs)
    out = apply(dense, {"straighten": {"angle_deg": 1}}).objects.geometry
    assert (shapely.get_num_coordinates(out) <= shapely.get_num_coordinates(truth.to_numpy())).all()
    assert np.allclose(out.area, truth.area, rtol=0.01)


def state_of(geoms, crs, score=None) -> SceneState:
    """A vector-stage state holding ``geoms`` as buildings."""
    frame = gpd.GeoDataFrame({"class_id": 1, "class_name": "building", "score": score or [0.9] * len(geoms)},
                             geometry=list(geoms), crs=crs)
    return SceneState(rasterio.Affine.identity(), crs, np.ones((1, 1), bool), ("building",)).with_objects(frame)


def halves(real, gap_m: float) -> tuple[SceneState, shapely.Polygon]:
    """The largest label polygon cut at x = centroid into two halves, ``gap_m`` apart, and one other building."""
    truth = real.truth.geometry.loc[real.truth.area.sort_values(ascending=False).index]
    whole, other = truth.iloc[0], truth.iloc[5]
    x = whole.centroid.x
    x0, y0, x1, y1 = whole.bounds
    parts = [whole.intersection(shapely.box(x0, y0, x - gap_m / 2, y1)),
             whole.intersection(shapely.box(x + gap_m / 2, y0, x1, y1))]
    return state_of([*parts, other], real.truth.crs, score=[0.8, 0.6, 0.9]), whole


def test_merge_seams_joins_the_halves_of_a_split_building(real):
    state, whole = halves(real, gap_m=0.2)
    merged = apply(state, {"merge_seams": {"gap_m": 0.5}}).objects
    assert len(merged) == 2
    joined = merged.geometry.iloc[0]
    assert joined.geom_type == "Polygon" and joined.area == pytest.approx(whole.area, rel=0.01)
    assert 0.6 < merged["score"].iloc[0] < 0.8  # area-weighted
    assert len(apply(state, {"merge_seams": {"gap_m": 0.1}}).objects) == 3


def test_dissolve_joins_touching_objects_only(real):
    state, whole = halves(real, gap_m=0.0)
    dissolved = apply(state, "dissolve").objects
    assert len(dissolved) == 2 and dissolved.geometry.iloc[0].area == pytest.approx(whole.area, rel=1e-6)
    assert len(apply(halves(real, gap_m=0.2)[0], "dissolve").objects) == 3


def test_nms_removes_a_duplicate(objects):
    original = objects.objects.iloc[[0]]
    duplicate = original.assign(score=0.1).set_geometry(original.translate(0.3, 0.0))
    state = objects.with_objects(pd.concat([objects.objects, duplicate], ignore_index=True))
    out = apply(state, {"nms": {"iou": 0.5}}).objects
    assert len(out) == len(objects.objects) and out["score"].min() > 0.1


def half_box(real, side: str) -> shapely.Polygon:
    x0, y0, x1, y1 = real.truth.total_bounds
    xm = (x0 + x1) / 2
    return shapely.box(x0 - 50, y0 - 50, xm, y1 + 50) if side == "left" else shapely.box(xm, y0 - 50, x1 + 50, y1 + 50)


def test_geofence_clips_to_include_and_cuts_exclude(real, objects):
    left = gpd.GeoSeries([half_box(real, "left")], crs=real.truth.crs).to_crs("EPSG:4326").iloc[0]
    inside = apply(objects, {"geofence": {"include": left.wkt}}).objects
    bound = half_box(real, "left").bounds[2]
    assert 0 < len(inside) < len(objects.objects) and inside.total_bounds[2] <= bound + 1e-6
    outside = apply(objects, {"geofence": {"exclude": left.wkt}}).objects
    assert outside.total_bounds[0] >= bound - 1e-6
    assert inside.area.sum() + outside.area.sum() == pytest.approx(objects.objects.area.sum(), rel=1e-6)


def test_geofence_from_a_file_keeps_whole_objects(real, objects, tmp_path):
    fence = tmp_path / "fence.geojson"
    gpd.GeoDataFrame(geometry=[half_box(real, "left")], crs=real.truth.crs).to_file(fence)
    out = apply(objects, {"geofence": {"include": str(fence), "clip": False}}).objects
    assert out.representative_point().within(half_box(real, "left")).all()
    assert set(out.area.round(6)) <= set(objects.objects.area.round(6))  # whole, not cut


def test_drop_border_touching(objects):
    labels = rasterize([(g, i + 1) for i, g in enumerate(objects.objects.geometry)], objects.shape,
                       transform=objects.transform)
    near_edge = ndi.binary_dilation(~np.pad(objects.valid, 1))[1:-1, 1:-1]  # next to invalid pixels or the edge
    touching = set(np.unique(labels[near_edge & (labels > 0)]) - 1)
    out = apply(objects, "drop_border_touching").objects
    kept = [i for i in range(len(objects.objects)) if i not in touching]
    assert 0 < len(touching) < len(objects.objects)
    assert out.geometry.geom_equals(objects.objects.geometry.iloc[kept].reset_index(drop=True)).all()
    assert len(apply(objects, {"drop_border_touching": {"margin_px": 5}}).objects) < len(out)


def test_reproject_changes_crs_and_metric_ops_still_work(objects):
    reprojected = apply(objects, {"reproject": {"crs": "EPSG:4326"}})
    assert reprojected.objects.crs.to_epsg() == 4326
    same = apply(reprojected, {"min_area": {"area_m2": 4}})
    assert len(same.objects) == len(apply(objects, {"min_area": {"area_m2": 4}}).objects)


def test_attributes(objects):
    out = apply(objects, {"attributes": {"class_paths": {"building": "structure/building"}}}).objects
    assert np.allclose(out["area_m2"], area_m2(objects.objects.geometry), rtol=1e-9)
    assert (out["perimeter_m"] > 0).all() and (out["class_path"] == "structure/building").all()
    assert out["lon"].between(32.58, 32.60).all() and out["lat"].between(0.34, 0.36).all()


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.stage == "vector"))
def test_vector_ops_accept_no_objects(name, objects):
    params = {"include": "POLYGON ((32 0, 33 0, 33 1, 32 1, 32 0))"} if name == "geofence" else {}
    out = apply(objects.with_objects(objects.objects.iloc[:0]), {name: params}).objects
    assert out.empty and {"class_id", "class_name", "score", "geometry"} <= set(out.columns)


def test_ops_leave_their_input_untouched(scene):
    prob, valid = scene.prob.copy(), scene.valid.copy()
    raster = ["threshold", "open", "close", "fill_holes", "remove_small", "watershed", "polygonize"]
    polygons = apply(scene, *raster)
    assert np.array_equal(scene.prob, prob) and np.array_equal(scene.valid, valid)
    before = polygons.objects.copy()
    vector = [n for n, op in OPS.items() if op.stage == "vector" and n != "geofence"]
    out = apply(polygons, *vector, {"geofence": {"exclude": "POINT (0 0)"}})
    assert polygons.objects.equals(before) and out.objects.crs.to_epsg() == 4326 and len(out.objects) > 10


# --- chain validation, listing, stage ----------------------------------------------------------------------------


T, P = {"threshold": None}, {"polygonize": None}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([T, {"simplfy": None}], r"^postprocess.steps\[1\]: unknown operation 'simplfy'; did you mean 'simplify'\?"),
        ([T, P, {"simplify": {"tolerence_m": 1}}],
         r"^postprocess.steps\[2\] 'simplify': unknown parameter 'tolerence_m'; valid: tolerance_m, preserve_topology$"),
        ([T, {"open": {"radius_px": "big"}}, P],
         r"^postprocess.steps\[1\] 'open': parameter 'radius_px': .*integer.*; got 'big' \(expects PositiveInt\)$"),
        ([T, {"open": {"radius_px": 0}}, P], r"'radius_px': Input should be greater than 0"),
        ([{"simplify": None}, T, P], r"^postprocess.steps\[0\] 'simplify': needs polygons, made by 'polygonize'; add it"),
        ([T, P, {"open": None}], r"^postprocess.steps\[2\] 'open': needs a class mask, which step 1 'polygonize' dropped"),
        ([T, P, T], r"^postprocess.steps\[2\] 'threshold': needs class probabilities, which step 1 'polygonize'"),
        ([T, {"watershed": None}, {"fill_holes": None}, P],
         r"steps\[2\] 'fill_holes': would leave the instance ids from step 1 'watershed' stale"),
        ([T, {"open": None}], r"^postprocess.steps: the chain must end with polygons; add 'polygonize'$"),
        ([T, P, {"geofence": {"include": "POLYGON ((1 2"}}], r"steps\[2\] 'geofence': parameter 'include': .*neither WKT"),
        ([T, P, {"reproject": {"crs": "EPSG:0"}}], r"steps\[2\] 'reproject': parameter 'crs': .*not a CRS"),
        ([{"threshold": 0.5}, P], r"steps\[0\] 'threshold': parameters must be a mapping"),
    ],
)
def test_build_chain_errors_name_the_step(steps, message):
    with pytest.raises(GeofoundryError, match=message):
        build_chain(steps)


def test_runtime_errors_name_the_step(objects):
    chain = build_chain([{"polygonize": None}, {"geofence": None}], start=("prob", "mask"))
    with pytest.raises(GeofoundryError, match=r"^postprocess.steps\[1\] 'geofence': give include, exclude or both$"):
        chain(replace(objects, prob=np.zeros((1, 1, 1), np.float32), mask=np.zeros((1, 1), np.int32), objects=None))


def test_describe_ops_lists_every_op():
    rows = describe_ops()
    assert len(rows) == len(OPS) >= 20
    assert all(r["summary"] and r["stage"] in {"raster", "vectorize", "vector"} for r in rows)
    simplify = next(r for r in rows if r["name"] == "simplify")
    assert simplify["params"] == "tolerance_m: PositiveFloat = 0.3, preserve_topology: bool = True"
    assert format_ops_table().row_count == len(OPS)


def test_areas_are_ground_square_metres_in_every_crs(scene, objects):
    x0, y0 = scene.transform @ (256, 256)
    pixel = gpd.GeoSeries([shapely.box(x0, y0 - scene.transform.a, x0 + scene.transform.a, y0)], crs=scene.crs)
    geodesic = abs(Geod(ellps="WGS84").geometry_area_perimeter(pixel.to_crs("EPSG:4326").iloc[0])[0])
    assert pixel_area_m2(scene.transform, scene.crs, scene.shape) == pytest.approx(geodesic, rel=1e-6)
    areas = area_m2(objects.objects.geometry)
    assert np.allclose(area_m2(objects.objects.geometry.to_crs("EPSG:4326")), areas, rtol=2e-3)  # local UTM
    assert np.allclose(area_m2(objects.objects.geometry.to_crs("EPSG:32636")), areas, rtol=2e-3)


def test_run_writes_geopackages_end_to_end(real, tmp_path):
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    (predictions / real.tif.name).write_bytes(real.tif.read_bytes())
    with rasterio.open(real.tif) as ds:
        write_prob_tif(predictions / "empty_scene.tif", np.zeros((1, 64, 64)), np.ones((64, 64), bool),
                       ds.transform, ds.crs)
    vectors = tmp_path / "vectors"
    vectors.mkdir()
    (vectors / "removed_scene.gpkg").write_text("stale")
    cfg = PostprocessConfig(steps=[{"threshold": {"value": 0.5}}, {"open": {"radius_px": 1}}, {"polygonize": {}},
                                   {"simplify": {"tolerance_m": 0.3}}, {"min_area": {"area_m2": 4}}])
    summary = run(cfg, predictions, vectors, ["building"])
    assert sorted(p.name for p in vectors.iterdir()) == ["all.gpkg", "empty_scene.gpkg", f"{SCENE}.gpkg"]
    n = summary["objects_per_scene"][SCENE]
    assert summary == {"scenes": 2, "objects": n, "objects_per_scene": {"empty_scene": 0, SCENE: n}} and n > 30
    scene = gpd.read_file(vectors / f"{SCENE}.gpkg", layer="objects")
    assert scene.crs.to_epsg() == 3857 and len(scene) == n
    assert {"class_id", "class_name", "score", "area_m2"} <= set(scene.columns) and (scene["area_m2"] >= 4).all()
    assert iou(scene.geometry, real.truth.geometry) > 0.95
    empty = pyogrio.read_info(vectors / "empty_scene.gpkg", layer="objects")
    assert empty["features"] == 0 and empty["geometry_type"] == "MultiPolygon" and empty["crs"] == "EPSG:3857"
    assert list(empty["fields"]) == ["class_id", "class_name", "score", "area_m2"]
    merged = gpd.read_file(vectors / "all.gpkg")
    assert merged.crs.to_epsg() == 4326 and (merged["scene_id"] == SCENE).sum() == n == len(merged)
    assert not list(vectors.glob(".*"))  # no temporary files left


def test_geopackages_are_the_same_bytes_when_run_again(real, tmp_path, monkeypatch):
    """Same probabilities, same chain: the same files, byte for byte (DVC sees no change after a re-run). GDAL's
    gpkg_contents.last_change stamp is SOURCE_DATE_EPOCH when set, else 1970-01-01."""
    cfg = PostprocessConfig(steps=WINDOW_CHAINS["default"], window_px=300, halo_px=64)
    digests = []
    for i in range(2):
        run(cfg, real.tif.parent, tmp_path / str(i), ["building"])
        digests.append({p.name: p.read_bytes() for p in sorted((tmp_path / str(i)).iterdir())})
    assert digests[0] == digests[1] and len(digests[0]) == 2
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    run(cfg, real.tif.parent, tmp_path / "dated", ["building"])
    stamp = pyogrio.read_dataframe(tmp_path / "dated" / "all.gpkg", sql="SELECT last_change FROM gpkg_contents")
    assert stamp["last_change"].tolist() == [pd.Timestamp("2023-11-14 22:13:20", tz="UTC")]


WINDOW_CHAINS = {
    "default": [{"threshold": {"value": 0.5}}, {"open": {"radius_px": 2}}, {"fill_holes": {"max_area_m2": 10.0}},
                {"polygonize": {}}, {"simplify": {"tolerance_m": 0.3}}, {"min_area": {"area_m2": 10.0}}],
    "scene_ops": [{"threshold": {"value": 0.4}}, {"close": {"radius_px": 1}}, {"remove_small": {"min_area_m2": 3}},
                  {"polygonize": {}}, {"drop_border_touching": {"margin_px": 2}}, {"nms": {}}, {"dissolve": {}}],
}


@pytest.mark.parametrize("chain", list(WINDOW_CHAINS))
def test_windows_give_the_objects_of_the_whole_scene(real, chain, tmp_path):
    """The 512² DEV map by 100² windows (halo 128 px, wider than any building at 0.3 m; 36 windows on 3 threads)
    and whole: the same objects with the same scores. Window origins round differently in the last bits, which can flip
    Douglas–Peucker's choice between tied vertices: ``simplify`` may then move an outline by up to its tolerance."""
    runs = {}
    for window in (0, 100):
        run(PostprocessConfig(steps=WINDOW_CHAINS[chain], window_px=window, halo_px=128, workers=3), real.tif.parent,
            tmp_path / str(window), ["building"])
        runs[window] = gpd.read_file(tmp_path / str(window) / f"{SCENE}.gpkg", layer="objects")
    whole, windowed = runs[0], runs[100]
    assert len(whole) == len(windowed) >= 20
    tolerance = 0.3 + 1e-6 if chain == "default" else 1e-6
    for geom, score in zip(whole.geometry, whole["score"]):
        distance = windowed.geometry.hausdorff_distance(geom)
        j = int(np.argmin(distance))
        assert distance.iloc[j] <= tolerance and windowed["score"].iloc[j] == pytest.approx(score, abs=1e-9)


def test_window_cores_partition_the_raster():
    from geofoundry.postprocess.windows import windows

    seen = np.zeros((250, 330), int)
    for core, read in windows(250, 330, 100, 16):
        seen[core.toslices()] += 1
        assert read.col_off == max(0, core.col_off - 16) and read.row_off + read.height <= 250
    assert (seen == 1).all()


@pytest.mark.parametrize("inset", [0, 3])
def test_valid_area_by_windows_equals_the_whole_scenes(real, inset):
    """The valid area traced by 100² windows (shrunk within each window's halo, cut to its core, unioned) is the one
    traced from the whole mask: drop_border_touching needs no scene-sized mask in a windowed run."""
    from geofoundry.postprocess.vectorize import pixel_polygon, shrunk
    from geofoundry.postprocess.windows import valid_outline

    with rasterio.open(real.tif) as ds:
        whole = pixel_polygon(shrunk(ds.dataset_mask() > 0, inset))
        assert 0.2 * ds.width * ds.height < whole.area < 0.9 * ds.width * ds.height  # a real nodata edge
    by_windows = valid_outline(str(real.tif), 100, inset)
    assert whole.symmetric_difference(by_windows).area == 0 and by_windows.equals(whole)


def test_run_rejects_band_count_mismatch(real, tmp_path):
    cfg = PostprocessConfig(steps=[{"threshold": None}, {"polygonize": None}])
    with pytest.raises(GeofoundryError, match="1 bands but 2 classes"):
        run(cfg, real.tif.parent, tmp_path / "v", ["building", "border"])
