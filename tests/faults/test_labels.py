"""Bad label files through the select stage (and preprocess): refused with the file and the features named, or
repaired with a warning that says so; never a scene trained with its objects as background.

Each case edits the real labels of one DEV scene in a copy of the small raw dataset and runs the stage script;
refusals come from the scan, before any output is written. Property-based: whatever the features hold, reading
them gives lon/lat polygon footprints with their class, or that error.
"""

from __future__ import annotations

import json
import math
import warnings

import geopandas as gpd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofoundry.errors import GeofoundryError
from geofoundry.io.raw import read_labels

from .conftest import assert_error, replace_bytes, run_stage, snapshot
from .processes import assert_ok
from .rasters import SCENE

CONTRACT = ("labels are Polygon or MultiPolygon features in EPSG:4326 lon/lat with the text properties 'class' and "
            "'class_path' (RAW_LAYOUT.md)")
N = 206  # features of the real kampala_ug_z19 labels


def refusal(path, bad: int, listed: str, total: int = N + 1) -> str:
    return f"{path}: {bad} of {total} features cannot be labels: {listed}; {CONTRACT}: fix or remove them"


@pytest.fixture
def labels(raw_workspace):
    """The Kampala scene's labels in the workspace's raw dataset (as select names them: the resolved path)."""
    return (raw_workspace / "data" / "raw" / "labels" / f"{SCENE}.geojson").resolve()


def edit_labels(path, edit) -> None:
    """Apply ``edit`` to the parsed FeatureCollection at ``path`` (in place, or return a replacement)."""
    fc = json.loads(path.read_text())
    fc = edit(fc) or fc
    replace_bytes(path, json.dumps(fc).encode())


def refused_by_select(workspace, message) -> None:
    """select stops with ``message``; nothing in the workspace changed."""
    before = snapshot(workspace)
    assert_error(run_stage(workspace, "select"), "select", message)
    assert snapshot(workspace) == before


def feature(geometry, fid="x1", **props) -> dict:
    return {"type": "Feature", "id": fid, "geometry": geometry,
            "properties": {"class": "building", "class_path": "structure/building", **props}}


def add(*features):
    def edit(fc):
        fc["features"] += list(features)
    return edit


SQUARE = {"type": "Polygon", "coordinates": [[[32.592, 0.35], [32.5921, 0.35], [32.5921, 0.3501], [32.592, 0.3501],
                                              [32.592, 0.35]]]}
REFUSED = {  # an edit of the labels → what is listed as refused (feature 206 is the one added)
    "point": (add(feature({"type": "Point", "coordinates": [32.592, 0.35]})), "feature 206 (id 'x1') is a Point"),
    "line": (add(feature({"type": "LineString", "coordinates": [[32.592, 0.35], [32.593, 0.35]]})),
             "feature 206 (id 'x1') is a LineString"),
    "null geometry": (add(feature(None)), "feature 206 (id 'x1') has no geometry (null)"),
    "empty geometry": (add(feature({"type": "Polygon", "coordinates": []})),
                       "feature 206 (id 'x1') has an empty geometry"),
    "collection": (add(feature({"type": "GeometryCollection", "geometries": [SQUARE]})),
                   "feature 206 (id 'x1') is a GeometryCollection"),
    "two-point ring": (add(feature({"type": "Polygon", "coordinates": [[[32.592, 0.35], [32.593, 0.35]]]})),
                       "feature 206 (id 'x1') has malformed coordinates"),
    "string coordinates": (add(feature({"type": "Polygon", "coordinates": "32.592 0.35"})),
                           "feature 206 (id 'x1') has malformed coordinates"),
    "NaN coordinate": (add(feature({"type": "Polygon", "coordinates": [[[32.592, 0.35], [math.nan, 0.35],
                                                                       [32.5921, 0.3501], [32.592, 0.35]]]})),
                       "feature 206 (id 'x1') has NaN or infinite coordinates"),
    "no class_path": (add({**feature(SQUARE), "properties": {"class": "building"}}),
                      "feature 206 (id 'x1') lacks the text property 'class_path'"),
    "class not text": (add({**feature(SQUARE), "properties": {"class": 7, "class_path": None}}),
                       "feature 206 (id 'x1') lacks the text properties 'class', 'class_path'"),
    "not a feature": (add({"type": "Polygon", "coordinates": SQUARE["coordinates"]}),
                      "feature 206 is not a GeoJSON Feature"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_feature_that_cannot_be_a_label_is_refused(raw_workspace, labels, case):
    """Points, lines, null or empty geometries, collections, broken coordinates, a missing class: the stage stops
    and names the file and the feature (index and id)."""
    edit, listed = REFUSED[case]
    edit_labels(labels, edit)
    refused_by_select(raw_workspace, refusal(labels, 1, listed))


def test_many_bad_features_are_counted_and_the_first_five_named(raw_workspace, labels):
    def points(fc):
        for f in fc["features"][:7]:
            f["geometry"] = {"type": "Point", "coordinates": [32.592, 0.35]}

    edit_labels(labels, points)
    listed = ", ".join(f"feature {i} (id {i}) is a Point" for i in range(5)) + " and 2 more"
    refused_by_select(raw_workspace, refusal(labels, 7, listed, total=N))


def to_crs(path, crs: str, member: bool) -> gpd.GeoDataFrame:
    """Rewrite the labels at ``path`` in ``crs``, with or without a GeoJSON ``crs`` member naming it."""
    gdf = gpd.read_file(path).to_crs(crs)
    fc = json.loads(gdf.to_json(drop_id=True))
    fc.pop("crs", None)
    if member:
        fc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:{crs.replace(':', '::')}"}}
    replace_bytes(path, json.dumps(fc).encode())
    return gdf


def test_labels_in_a_projected_crs_are_refused(raw_workspace, labels):
    """Metres where lon/lat are expected (exported in the scene's CRS): refused with the range found, instead of
    labels that fall nowhere and a scene learnt as background."""
    x0, y0, x1, y1 = to_crs(labels, "EPSG:3857", member=False).total_bounds
    refused_by_select(raw_workspace,
                      f"{labels}: coordinates are not longitude/latitude (x {x0:.6g} to {x1:.6g}, y {y0:.6g} to "
                      f"{y1:.6g}; first: feature 0 (id 0)), so the labels are in another CRS; reproject them to "
                      "EPSG:4326 (e.g. ogr2ogr -s_srs <their CRS> -t_srs EPSG:4326)")


@pytest.mark.slow  # two select stages (~20 s)
def test_labels_with_a_crs_member_are_reprojected(raw_workspace, labels):
    """Repair: a ``crs`` member (GDAL writes one for a projected layer) is honoured, reprojected to lon/lat with a
    warning; the selection is that of the original labels."""
    assert_ok(run_stage(raw_workspace, "select"))
    want = (raw_workspace / "reports" / "select.json").read_text()
    to_crs(labels, "EPSG:32636", member=True)
    proc = run_stage(raw_workspace, "select")
    assert_ok(proc)
    assert f"{labels}: features are in EPSG:32636 (its 'crs' member); reprojected to EPSG:4326" in proc.stderr
    assert (raw_workspace / "reports" / "select.json").read_text() == want


def test_a_crs_member_naming_no_crs_is_refused(raw_workspace, labels):
    member = {"type": "name", "properties": {"name": "EPSG:999999"}}
    edit_labels(labels, lambda fc: fc.update(crs=member))
    refused_by_select(raw_workspace, f"{labels}: its 'crs' member {member!r} names no CRS that PROJ knows; {CONTRACT}")


def shifted(dx: float = 0.0, swap: bool = False, only=slice(None)):
    """Move the polygons ``dx`` degrees east, or swap their x and y, for the features ``only``."""
    def move(ring):
        return [[y, x] if swap else [x + dx, y] for x, y in ring]

    def edit(fc):
        for f in fc["features"][only]:
            f["geometry"]["coordinates"] = [move(r) for r in f["geometry"]["coordinates"]]
    return edit


@pytest.mark.parametrize("edit", [pytest.param(shifted(dx=1.0), id="one degree east"),
                                  pytest.param(shifted(swap=True), id="lat/lon swapped")])
def test_labels_outside_their_scene_are_refused(raw_workspace, labels, edit):
    """Labels that overlap none of their scene's valid pixels (wrong place, axis order, scene): refused; they were
    a warning, and the scene trained with 0 building pixels."""
    edit_labels(labels, edit)
    refused_by_select(raw_workspace,
                      f"{labels}: none of its {N} labels overlaps the valid area of its image (wrong place, CRS or "
                      "scene?), so its objects would be learnt as background; fix the labels or leave the scene out "
                      "of scenes.csv")


@pytest.mark.slow  # a select stage that runs to its end (~10 s)
def test_some_labels_outside_the_valid_area_are_ignored_with_a_warning(raw_workspace, labels):
    """Repair: polygons past the valid area are allowed (RAW_LAYOUT.md); those wholly outside are left out."""
    edit_labels(labels, shifted(dx=1.0, only=slice(0, 10)))
    proc = run_stage(raw_workspace, "select")
    assert_ok(proc)
    assert f"{labels}: 10 of {N} labels lie outside the image's valid area; they are ignored" in proc.stderr


@pytest.mark.slow  # a select stage that runs to its end (~10 s)
def test_invalid_polygon_is_repaired_with_a_warning(raw_workspace, labels):
    bowtie = {"type": "Polygon", "coordinates": [[[32.592, 0.350], [32.5921, 0.3501], [32.5921, 0.350],
                                                  [32.592, 0.3501], [32.592, 0.350]]]}
    edit_labels(labels, add(feature(bowtie)))
    proc = run_stage(raw_workspace, "select")
    assert_ok(proc)
    assert f"{labels}: repaired 1 invalid polygon(s) with make_valid" in proc.stderr


@pytest.mark.slow  # a select stage that runs to its end (~10 s)
def test_an_empty_feature_collection_is_a_scene_without_objects(raw_workspace, labels):
    edit_labels(labels, lambda fc: fc.update(features=[]))
    assert_ok(run_stage(raw_workspace, "select"))


@pytest.mark.parametrize("content, message", [
    (b"", "{path}:1: not valid JSON (Expecting value)"),
    (b'{"type": "FeatureCollection", "features": [', "{path}:1: not valid JSON (Expecting value)"),
    (b'{"type": "FeatureCollection", "features": []}\xff',
     "{path}:1: the labels file is not UTF-8 text (byte 0xff); save it as UTF-8"),
], ids=["empty file", "truncated", "not UTF-8"])
def test_unreadable_labels_file_is_refused(raw_workspace, labels, content, message):
    replace_bytes(labels, content)
    refused_by_select(raw_workspace, message.format(path=labels))


@pytest.mark.parametrize("content", ['[{"type": "Feature"}]', '{"type": "Feature", "geometry": null}',
                                     '{"type": "FeatureCollection", "features": {"0": {}}}'],
                         ids=["a list", "one feature", "features not a list"])
def test_json_that_is_not_a_feature_collection_is_refused(raw_workspace, labels, content):
    replace_bytes(labels, content.encode())
    refused_by_select(raw_workspace, f"{labels}: not a GeoJSON FeatureCollection; {CONTRACT}")


def test_a_five_level_class_path_is_refused(raw_workspace, labels):
    edit_labels(labels, add(feature(SQUARE, class_path="a/b/c/d/building")))
    refused_by_select(raw_workspace, f"{labels}: class path 'a/b/c/d/building' has 5 levels; at most 4 are supported")


@pytest.mark.slow  # a select stage to its end, then preprocess (~15 s)
def test_labels_broken_after_select_are_refused_by_preprocess(raw_workspace, labels):
    """The same check guards every stage that reads labels: here preprocess, on a selection made before the labels
    changed; data/chips is left as it was."""
    assert_ok(run_stage(raw_workspace, "select"))
    edit_labels(labels, add(feature({"type": "Point", "coordinates": [32.592, 0.35]})))
    before = snapshot(raw_workspace)
    assert_error(run_stage(raw_workspace, "preprocess"), "preprocess",
                 refusal(labels, 1, "feature 206 (id 'x1') is a Point"))
    assert snapshot(raw_workspace) == before


# ---------------------------------------------------------------- property-based: read_labels on any geometry

coordinate = st.one_of(st.floats(-200, 200), st.just(math.nan), st.just(math.inf), st.integers(-10**7, 10**7))
position = st.lists(coordinate, min_size=1, max_size=3)
ring = st.lists(position, min_size=0, max_size=6)
geometry = st.one_of(
    st.none(),
    st.builds(lambda t, c: {"type": t, "coordinates": c},
              st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "MultiPoint", "Polygonn"]),
              st.one_of(st.lists(ring, max_size=3), st.lists(st.lists(ring, max_size=2), max_size=2), position,
                        st.text(max_size=3), st.none())),
    st.builds(lambda rings: {"type": "Polygon", "coordinates": rings},  # well-formed rings, possibly invalid
              st.lists(st.lists(st.tuples(st.floats(-179, 179), st.floats(-89, 89)), min_size=3, max_size=6)
                       .map(lambda pts: [list(p) for p in pts] + [list(pts[0])]), min_size=1, max_size=2)),
)
properties = st.one_of(st.none(), st.fixed_dictionaries(
    {"class": st.sampled_from(["building", "", None, 3]),
     "class_path": st.sampled_from(["structure/building", "building", "a//b", "", None, "a/b/c/d/e"])}))
features = st.lists(st.builds(lambda g, p, fid: {"type": "Feature", "geometry": g, "properties": p, "id": fid},
                              geometry, properties, st.one_of(st.none(), st.integers(), st.text(max_size=4))),
                    max_size=6)
crs_member = st.one_of(st.none(), st.sampled_from([
    {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    {"type": "name", "properties": {"name": "EPSG:32636"}}, {"type": "name"}, "EPSG:4326"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fs=features, crs=crs_member)
def test_read_labels_gives_footprints_or_names_the_file(tmp_path, fs, crs):
    """Whatever the features hold, reading gives lon/lat polygon footprints with their class, or a GeofoundryError
    that names the file: never another exception, never a point, line, NaN or out-of-range coordinate."""
    fc = {"type": "FeatureCollection", "features": fs, **({"crs": crs} if crs is not None else {})}
    path = tmp_path / "labels.geojson"
    path.write_text(json.dumps(fc))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # repairs and reprojections say so; checked above
            gdf = read_labels(path)
    except GeofoundryError as e:
        assert str(e).startswith(f"{path}"), str(e)
        return
    assert gdf.crs.to_epsg() == 4326
    assert set(gdf.geom_type) <= {"Polygon", "MultiPolygon"}
    assert gdf.geometry.is_valid.all() and not gdf.geometry.is_empty.any()
    if len(gdf):
        x0, y0, x1, y1 = gdf.total_bounds
        assert -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90
        assert all(isinstance(p, str) and p for p in gdf["class_path"])
