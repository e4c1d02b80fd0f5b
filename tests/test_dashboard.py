"""The dashboard's server on real data (two DEV scenes), over HTTP on 127.0.0.1: counts from the select stage's own
query, "use this selection" written as `geofoundry select --write` writes it, imagery tiles, and the refusals: paths
outside the dataset, a non-loopback bind, a foreign Host header, malformed filter values (4xx with a message)."""

from __future__ import annotations

import json
import os
import shutil

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from geofoundry.dashboard.app import Page, create_app
from geofoundry.dashboard.files import Refused, SceneFiles, inside
from geofoundry.dashboard.server import check_bind
from geofoundry.dashboard.tiles import tile_routes
from geofoundry.errors import GeofoundryError
from geofoundry.pipeline.cli import app as cli
from geofoundry.pipeline.params import load_params
from geofoundry.pipeline.select_query import overrides, preview
from geofoundry.select.changes import write_select

from .dashboard_server import Served, call, page_token, project, serve_project, use_selection


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_raw):
    root = project(tmp_path_factory.mktemp("dash") / "proj", small_raw)
    basemap = tmp_path_factory.mktemp("basemap") / "ortho.tif"  # a local raster drawn under the scenes
    shutil.copy(small_raw / "images" / "nairobi_ke_z19.tif", basemap)
    server = serve_project(root, basemap)
    yield root, server.url
    server.stop()


def test_catalog_facets_and_counts(served):
    root, url = served
    status, facets, _ = call(f"{url}/api/data/catalog")
    assert status == 200
    assert facets["sites"] == {"kampala_ug": 1, "nairobi_ke": 1}
    assert [c["path"] for c in facets["classes"]] == ["structure", "structure/building"]
    assert len(facets["scenes"]["features"]) == 2 and facets["select"]["gsd_range"] == [0.25, 0.35]
    assert (root / "data" / "catalog" / "catalog.json").is_file()  # built once, kept for the next start
    status, counts, _ = call(f"{url}/api/data/query", {"select": {}})
    assert status == 200 and counts["ok"]
    split = counts["metrics"]["split"]
    assert counts["totals"]["blocks"] == sum(split[s]["blocks"] for s in split) == counts["metrics"]["blocks"]
    assert counts["levels"]["structure/building"] == counts["totals"]["objects"] > 0
    status, blocks, _ = call(f"{url}/api/data/blocks", {"select": {}})
    assert len(blocks["ix"]) == counts["totals"]["blocks"] and set(blocks["split"]) == {0, 1, 2}


def test_counts_equal_select_preview(served):
    """The counts of a query are `geofoundry select`'s preview of it (which scans the scenes afresh)."""
    root, url = served
    query = {"classes": ["structure"], "contexts": {"vegetation": [0.05, 0.95]}, "gsd_range": [0.2, 0.4]}
    status, counts, _ = call(f"{url}/api/data/query", {"select": query})
    assert status == 200 and counts["ok"]
    assert counts["metrics"] == preview(root / "params.yaml", query)


def test_empty_selection_says_which_filter(served):
    _, url = served
    status, counts, _ = call(f"{url}/api/data/query", {"select": {"sites": ["atlantis"]}})
    assert status == 200 and not counts["ok"] and "select.sites removed all" in counts["message"]
    status, body, _ = use_selection(url, {"sites": ["atlantis"]})
    assert status == 409 and "not written" in body["error"]


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not JSON"),
    (b'["a"]', 400, "expected"),
    ({"select": {"gsd_range": ["a", 1]}}, 422, "gsd_range"),
    ({"select": {"contexts": {"vegetation": [0.5, 2]}}}, 422, "0 <= min <= max <= 1"),
    ({"select": {"contexts": {"glitter": [0, 1]}}}, 422, "contexts.glitter"),
    ({"select": {"classes": ["a/b/c/d/e"]}}, 422, "at most 4"),
    ({"select": {"dates": ["2020-13-01", "2021-01-01"]}}, 422, "dates"),
    ({"select": {"geofence": {"include": "POLYGON((1 2, 3"}}}, 422, "select.geofence.include"),
    ({"select": {"split": {"seed": 3}}}, 422, "cannot be changed here"),
    ({"select": {"min_valid_frac": "lots"}}, 422, "min_valid_frac"),
])
def test_malformed_filters_get_4xx_with_a_message(served, body, status, words):
    _, url = served
    token = {"x-geofoundry-token": page_token(url, "/data")}
    for endpoint in ("query", "blocks", "use"):
        got, answer, kind = call(f"{url}/api/data/{endpoint}", body, token)
        assert got == status and "json" in kind, (endpoint, got, answer)
        assert words in answer["error"] and "Traceback" not in answer["error"]


def test_use_this_selection_writes_params_as_select_write(served, tmp_path):
    root, url = served
    before = (root / "params.yaml").read_text()
    query = {"classes": ["structure"], "contexts": {"vegetation": [0.0, 0.9]}, "min_valid_frac": 0.1}
    try:
        status, body, _ = use_selection(url, query)
        assert status == 200 and body["written"] == str(root / "params.yaml")
        assert any(line.startswith("dvc repro") for line in body["next"])
        expected = tmp_path / "params.yaml"
        expected.write_text(before)
        write_select(expected, overrides(classes=["structure"], contexts=["vegetation=0:0.9"], min_valid_frac=0.1))
        assert (root / "params.yaml").read_text() == expected.read_text()  # the same bytes, comments kept
        cfg = load_params(root / "params.yaml").select
        assert cfg.classes == ["structure"] and cfg.contexts == {"vegetation": (0.0, 0.9)}
        assert "# class path prefixes" in body["select_yaml"]
        assert sorted(p.name for p in root.iterdir()) == ["data", "params.yaml"]  # nothing else written
    finally:
        (root / "params.yaml").write_text(before)


@pytest.mark.parametrize("headers, words", [
    ({}, "missing or wrong x-geofoundry-token header: reload the page"),
    ({"x-geofoundry-token": "guess"}, "missing or wrong x-geofoundry-token header: reload the page"),
    ("foreign", "origin http://evil.example is not this server's"),
])
def test_another_site_cannot_use_a_selection(served, headers, words):
    """Writing params.yaml needs the token only the data page holds, from this server's own origin."""
    root, url = served
    before = (root / "params.yaml").read_bytes()
    if headers == "foreign":
        headers = {"x-geofoundry-token": page_token(url, "/data"), "origin": "http://evil.example"}
    status, body, _ = use_selection(url, {"classes": ["structure"]}, headers)
    assert status == 403 and body["error"] == f"not written: {words}"
    assert (root / "params.yaml").read_bytes() == before


def test_uploaded_geofence_becomes_wkt(served, tmp_path):
    _, url = served
    box = shapely.box(36.89, -1.32, 36.905, -1.30)  # most of the Nairobi scene
    gpkg = tmp_path / "fence.gpkg"
    gpd.GeoDataFrame(geometry=[box], crs="EPSG:4326").to_crs("EPSG:32737").to_file(gpkg)  # any CRS
    status, body, _ = call(f"{url}/api/data/fence?name=fence.gpkg", gpkg.read_bytes())
    assert status == 200
    assert shapely.from_wkt(body["wkt"]).symmetric_difference(box).area < 1e-4 * box.area
    status, counts, _ = call(f"{url}/api/data/query", {"select": {"geofence": {"include": body["wkt"]}}})
    assert status == 200 and counts["ok"] and counts["metrics"]["scenes"] == 1, counts.get("message")
    assert call(f"{url}/api/data/fence?name=fence.txt", b"x")[0] == 400
    status, body, _ = call(f"{url}/api/data/fence?name=bad.geojson", b"{nope")
    assert status == 422 and "uploaded file" in body["error"]


def test_imagery_tiles_and_labels(served):
    import morecantile

    _, url = served
    status, info, _ = call(f"{url}/api/tiles/scene/kampala_ug_z19")
    assert status == 200 and info["maxzoom"] >= 18
    tiles = list(morecantile.tms.get("WebMercatorQuad").tiles(*info["bounds"], zooms=[info["maxzoom"] - 1]))
    sizes = []
    for tile in tiles:
        status, png, kind = call(f"{url}/tiles/scene/kampala_ug_z19/{tile.z}/{tile.x}/{tile.y}.png")
        assert status in (200, 204)
        if status == 200:
            assert kind == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
            sizes.append(len(png))
    assert max(sizes) > 20_000  # imagery, not only transparent tiles (the scene is 85 % no data)
    assert call(f"{url}/tiles/scene/kampala_ug_z19/{tile.z}/0/0.png")[0] == 204  # far outside the scene
    assert call(f"{url}/tiles/scene/kampala_ug_z19/2/1/1.png")[0] == 404  # below the scene's zooms
    assert call(f"{url}/tiles/scene/kampala_ug_z19/x/1/1.png")[0] == 400
    status, base, _ = call(f"{url}/api/tiles/basemap")
    assert status == 200 and base["configured"] and base["maxzoom"] >= 18
    tile = next(iter(morecantile.tms.get("WebMercatorQuad").tiles(*base["bounds"], zooms=[base["maxzoom"] - 2])))
    assert call(f"{url}/tiles/basemap/{tile.z}/{tile.x}/{tile.y}.png")[0] in (200, 204)
    status, fc, _ = call(f"{url}/api/data/labels/kampala_ug_z19")
    assert status == 200 and len(fc["features"]) == 206 and fc["features"][0]["properties"]["class_path"]


@pytest.mark.parametrize("path", ["/tiles/scene/..%2F..%2Fetc%2Fpasswd/1/0/0.png", "/tiles/scene/%2Fetc%2Fpasswd/1/0/0.png",
                                  "/api/data/labels/..%2Fscenes.csv", "/static/..%2F..%2F..%2Fpyproject.toml",
                                  "/static/%2e%2e/app.py"])
def test_paths_outside_the_dataset_are_refused(served, path):
    _, url = served
    status, body, _ = call(url + path)
    assert status in (403, 404), (path, status)
    assert b"[project]" not in (body if isinstance(body, bytes) else json.dumps(body).encode())


def test_scene_files_outside_the_dataset_are_refused(tmp_path, small_raw):
    """A scenes.csv that names files outside the dataset: with ``..``, absolutely, or through a symlink."""
    raw = tmp_path / "raw"
    shutil.copytree(small_raw, raw)
    outside = tmp_path / "outside.tif"
    shutil.copy(raw / "images" / "kampala_ug_z19.tif", outside)
    (raw / "images" / "link.tif").symlink_to(outside)
    scenes = pd.read_csv(raw / "scenes.csv", dtype=str)
    extra = pd.concat([scenes.iloc[[0]]] * 3, ignore_index=True)
    extra["scene_id"] = ["dots", "absolute", "symlink"]
    extra["image"] = ["images/../../outside.tif", str(outside), "images/link.tif"]
    pd.concat([scenes, extra]).to_csv(raw / "scenes.csv", index=False)
    files = SceneFiles(raw)
    for scene in ("dots", "absolute", "symlink"):
        with pytest.raises(Refused):
            files.image(scene)
    with pytest.raises(Refused):
        inside(raw, "C:\\Windows\\win.ini" if os.name == "nt" else "/etc/passwd")
    assert files.image("kampala_ug_z19") == (raw / "images" / "kampala_ug_z19.tif").resolve()
    server = Served(create_app([Page("/data", "Data", "data.html")], tile_routes(files)))
    try:
        for scene in ("dots", "absolute", "symlink"):
            status, body, _ = call(f"{server.url}/tiles/scene/{scene}/19/0/0.png")
            assert status == 403 and "dataset" in body["error"], (scene, body)
        assert call(f"{server.url}/tiles/scene/nope/19/0/0.png")[0] == 404
    finally:
        server.stop()


def test_foreign_host_header_and_headers(served):
    _, url = served
    assert call(f"{url}/data", headers={"Host": "evil.example"})[0] == 400  # DNS rebinding
    status, html, _ = call(f"{url}/data")
    assert status == 200 and b'<a href="/data" aria-current="page">Data</a>' in html
    assert b"http://" not in html and b"https://" not in html  # everything from this server
    import urllib.request

    with urllib.request.urlopen(f"{url}/data") as res:
        assert "default-src 'self'" in res.headers["content-security-policy"]


def test_non_loopback_bind_is_refused_unless_asked(tmp_path):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, allow_remote=False)
    for host in ("0.0.0.0", "192.168.1.10", "example.org", "::"):
        with pytest.raises(GeofoundryError, match="--allow-remote"):
            check_bind(host, allow_remote=False)
    check_bind("0.0.0.0", allow_remote=True)
    res = CliRunner().invoke(cli, ["dashboard", "-p", str(tmp_path / "params.yaml"), "--host", "0.0.0.0"])
    assert res.exit_code == 1 and "error (dashboard): --host 0.0.0.0: not a loopback address" in res.output
    assert "Traceback" not in res.output


def test_vendored_assets_are_the_pinned_builds():
    """static/vendor/ holds what build_assets makes: every file listed with its sha256 in LICENSES.txt."""
    import hashlib
    import re

    from geofoundry.dashboard.build_assets import PACKAGES, VENDOR

    listed = dict(re.findall(r"^  (\S+) \(sha256 ([0-9a-f]{64})\)$", (VENDOR / "LICENSES.txt").read_text(), re.MULTILINE))
    assert set(listed) == {d for *_, members in PACKAGES.values() for d in members.values()}
    for rel, sha in listed.items():
        assert hashlib.sha256((VENDOR / rel).read_bytes()).hexdigest() == sha, rel
    assert sum(p.stat().st_size for p in VENDOR.rglob("*") if p.is_file()) < 400_000
    for js in VENDOR.rglob("*.js"):
        assert "sourceMappingURL" not in js.read_text()
