"""Warped model grids: RPC orthorectification (DEM file or constant height), reprojection to a target CRS, and
labels with an ignore band on object borders. The RPC scenes are made here (GDAL writes RPCs)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.rpc import RPC
from scipy import ndimage

from geofoundry.config import PreprocessConfig, SelectConfig
from geofoundry.io.warp import open_scene
from geofoundry.preprocess import run as preprocess_run
from geofoundry.preprocess.rasterize import LabelBurner
from geofoundry.select import run as select_run

N = 300  # raw image side (pixels)
MARKERS = [(40, 50), (150, 150), (250, 60), (80, 260), (220, 230)]  # (row, col) of 4x4 bright squares' top-left
LON0, LAT0, DEG = 36.9, -1.3, 1e-5  # RPC offsets; about 1.1 m per raw pixel
H_OFF, H_SCALE, TILT = 1000.0, 500.0, 0.2  # a height above H_OFF moves features up the image (line -= TILT·H)


def rpc_model() -> RPC:
    z = [0.0] * 20
    line, samp, den = z.copy(), z.copy(), z.copy()
    line[2], line[3], samp[1], den[0] = -1.0, TILT, 1.0, 1.0  # line ~ -lat + TILT·h ; samp ~ lon
    half = N / 2
    return RPC(height_off=H_OFF, height_scale=H_SCALE, lat_off=LAT0, lat_scale=DEG * half, line_den_coeff=den,
               line_num_coeff=line, line_off=half, line_scale=half, long_off=LON0, long_scale=DEG * half,
               samp_den_coeff=den, samp_num_coeff=samp, samp_off=half, samp_scale=half)


def ground_of(row: float, col: float, height) -> tuple[float, float]:
    """Inverse of the RPC model at raster coordinates (row, col); ``height(lon)`` gives the terrain."""
    half = N / 2
    lon = (col - 0.5 - half) / half * DEG * half + LON0  # GDAL: pixel centres at integer line/sample
    h = (height(lon) - H_OFF) / H_SCALE
    lat = (TILT * h - (row - 0.5 - half) / half) * DEG * half + LAT0
    return lon, lat


def dem_height(lon):
    return 900.0 + 500.0 * (lon - (LON0 - 0.002)) / 0.004  # 900 m in the west to 1400 m in the east


@pytest.fixture(scope="module")
def rpc_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("rpc")
    img = np.full((3, N, N), 60, np.uint8)
    for r, c in MARKERS:
        img[:, r:r + 4, c:c + 4] = 250
    with rasterio.open(root / "scene.tif", "w", driver="GTiff", width=N, height=N, count=3, dtype="uint8",
                       rpcs=rpc_model(), tiled=True, blockxsize=128, blockysize=128) as ds:
        ds.write(img)
    lons = np.linspace(LON0 - 0.002, LON0 + 0.002, 81)
    dem = np.tile(dem_height(lons), (81, 1)).astype(np.float32)
    t = Affine(0.004 / 80, 0, LON0 - 0.002 - 0.002 / 80, 0, -0.004 / 80, LAT0 + 0.002 + 0.002 / 80)
    with rasterio.open(root / "dem.tif", "w", driver="GTiff", width=81, height=81, count=1, dtype="float32",
                       crs="EPSG:4326", transform=t) as ds:
        ds.write(dem, 1)
    return root


def marker_grounds(grid) -> list[tuple[float, float]]:
    """Lon/lat of the centre of every bright marker found on a model grid."""
    band, valid = grid.read(rasterio.windows.Window(0, 0, grid.shape[1], grid.shape[0]))
    lab, n = ndimage.label((band[0] > 150) & valid)
    rows_cols = ndimage.center_of_mass(band[0].astype(float), lab, range(1, n + 1))
    to_ll = Transformer.from_crs(grid.ds.crs, "EPSG:4326", always_xy=True)
    return [to_ll.transform(*(grid.transform * (c + 0.5, r + 0.5))) for r, c in rows_cols]


def assert_markers_at(found, expected, pixel_m):
    geod_m = np.array([111320 * np.cos(np.radians(LAT0)), 110574])
    assert len(found) == len(expected)
    for e in expected:
        err = min(np.hypot(*((np.array(f) - e) * geod_m)) for f in found)
        assert err < pixel_m, (e, err)


@pytest.mark.parametrize("mode", ["dem", "height"])
def test_rpc_orthorectification_lands_where_the_model_and_dem_say(rpc_scene, mode):
    kw = {"dem": str(rpc_scene / "dem.tif")} if mode == "dem" else {"height": 1400.0}
    height = dem_height if mode == "dem" else (lambda lon: 1400.0)
    with open_scene(str(rpc_scene / "scene.tif"), 1.1, 1.0, [1, 2, 3], **kw) as grid:
        assert grid.ds.crs.to_epsg() == 32737  # the local UTM zone by default
        assert abs(grid.transform.a - 1.0) < 0.01
        found = marker_grounds(grid)
    expected = [ground_of(r + 2, c + 2, height) for r, c in MARKERS]
    assert_markers_at(found, expected, pixel_m=1.0)
    # and the terrain matters: at the RPC height offset the markers would be far away
    wrong = [ground_of(r + 2, c + 2, lambda lon: H_OFF) for r, c in MARKERS]
    assert max(min(np.hypot(*(np.subtract(f, w) * 1e5)) for f in found) for w in wrong) > 5


def test_reprojection_to_a_target_crs_keeps_positions(tmp_path):
    to_m = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    x0, y0 = to_m.transform(LON0, LAT0)
    img = np.full((3, 400, 400), 60, np.uint8)
    for r, c in MARKERS:
        img[:, r:r + 4, c:c + 4] = 250
    t = Affine(0.5, 0, x0, 0, -0.5, y0)
    with rasterio.open(tmp_path / "m.tif", "w", driver="GTiff", width=400, height=400, count=3, dtype="uint8",
                       crs="EPSG:3857", transform=t) as ds:
        ds.write(img)
    to_ll = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    expected = [to_ll.transform(*(t * (c + 2, r + 2))) for r, c in MARKERS]
    with open_scene(str(tmp_path / "m.tif"), 0.5, 0.5, [1, 2, 3], crs="EPSG:32737") as grid:
        assert grid.ds.crs.to_epsg() == 32737 and abs(grid.transform.a - 0.5) < 0.01
        assert_markers_at(marker_grounds(grid), expected, pixel_m=0.5)


def test_rpc_scene_through_select_and_preprocess(rpc_scene, tmp_path):
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "labels").mkdir()
    (raw / "images" / "rpc_a.tif").write_bytes((rpc_scene / "scene.tif").read_bytes())
    boxes = [shapely.Point(ground_of(r + 2, c + 2, lambda lon: H_OFF)).buffer(3e-5, cap_style="square")
             for r, c in MARKERS]
    gpd.GeoDataFrame({"class": ["marker"] * 5, "class_path": ["test/marker"] * 5}, geometry=boxes, crs="EPSG:4326").to_file(
        raw / "labels" / "rpc_a.geojson", driver="GeoJSON")
    pd.DataFrame([{"scene_id": "rpc_a", "image": "images/rpc_a.tif", "labels": "labels/rpc_a.geojson",
                   "site": "synthetic", "country": "KE", "sensor": "rpc-test", "gsd_m": 1.1, "acquired": "",
                   "crs": "EPSG:4326", "width": N, "height": N, "bands": 3, "dtype": "uint8",
                   "band_names": "red|green|blue", "nodata": "", "group": "rpc_a"}]).to_csv(raw / "scenes.csv",
                                                                                          index=False)
    select_run(SelectConfig(classes=["test"], gsd_range=(1, 2), split={"block_size_m": 100, "fractions": {
        "train": 0.5, "val": 0.5, "test": 0.0}}), raw, tmp_path / "sel", tmp_path / "m.json")
    cfg = PreprocessConfig(gsd_m=1.0, crs="EPSG:32737", chip={"size": 32, "stride": 32, "min_valid_frac": 0.1})
    preprocess_run(cfg, tmp_path / "sel", tmp_path / "chips")
    index = pd.read_parquet(tmp_path / "chips" / "index.parquet")
    assert set(index["crs"]) == {"EPSG:32737"}
    assert json.loads((tmp_path / "chips" / "stats.json").read_text())["crs"] == "EPSG:32737"
    hits = 0
    for split in ("train", "val"):
        images = np.load(tmp_path / "chips" / split / "images.npy")
        labels = np.load(tmp_path / "chips" / split / "labels.npy")
        bright = images[:, 0] > 200
        hits += int(bright.sum())
        assert (labels[bright] == 1).mean() > 0.9  # labels placed by the RPC model cover the orthorectified markers
    assert hits > 0


def test_border_ignore_separates_touching_objects():
    a, b = shapely.box(2, 2, 10, 10), shapely.box(10, 2, 18, 10)
    labels = gpd.GeoDataFrame({"class_id": [1, 1]}, geometry=[a, b])
    t = Affine(1, 0, 0, 0, -1, 12)
    valid = np.ones((12, 20), bool)
    plain = LabelBurner(labels).burn(t, (12, 20), valid, 255)
    bordered = LabelBurner(labels, border_px=1).burn(t, (12, 20), valid, 255)
    assert (plain[2:10, 2:18] == 1).all()
    assert (bordered[:, 10] [2:10] == 255).all() and (bordered[2:10, 2] == 255).all()  # shared and outer edges
    assert (bordered[4:8, 4:8] == 1).all() and (bordered[4:8, 12:16] == 1).all() and bordered[0, 0] == 0
    wide = LabelBurner(labels, border_px=2).burn(t, (12, 20), valid, 255)
    assert (wide == 255).sum() > (bordered == 255).sum()
