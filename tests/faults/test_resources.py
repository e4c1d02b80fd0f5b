"""Scenes at the extremes of size: a scene that is mostly nodata costs the time and memory of its valid area, in
``predict --bundle`` and in postprocess, with the probabilities the whole extent would give; scenes one pixel wide
or tall are predicted like any other.

The sparse scenes are real pixels (a cut of a DEV scene, or its map) inside a frame whose other blocks were never
written. Peak memory is the kernel's high-water mark of the command's process (``ru_maxrss``), read by a parent
that runs only that command; the bounds are far below what the whole 100000² extent would need.
"""

from __future__ import annotations

import shutil

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from .conftest import run_cli, run_stage
from .processes import assert_ok, cli_args, measured, peak_rss_kib, stage_args
from .rasters import SCENE, cut, read_map, sparse_frame

GIB = 2**20  # KiB
SIDE = 100_000


def predict(site, bundle, scene, out="out"):
    return run_cli("predict", "--bundle", str(bundle), str(scene), "--out", out, cwd=site)


def test_whole_tiles_of_nodata_are_left_out_with_the_same_probabilities(bundle, bundle_for, tmp_path):
    """A scene whose left half is whole blocks of its nodata collar: the map covers the tiles that reach its valid
    blocks, with the probabilities of a map of the whole extent (the same scene with NaN nodata, whose blocks say
    nothing), which is invalid everywhere else."""
    window = Window(1024, 0, 1280, 256)  # 512 columns of collar, then the valid part of a DEV scene
    masked = cut(tmp_path / "masked.tif", window)
    whole = cut(tmp_path / "whole.tif", window, "float32", nodata=float("nan"))
    assert_ok(predict(tmp_path, bundle, masked))
    assert_ok(predict(tmp_path, bundle_for("float32"), whole))
    values, mask, transform = read_map(tmp_path / "out" / "masked.tif")
    full_values, full_mask, full_transform = read_map(tmp_path / "out" / "whole.tif")
    col = round((transform.c - full_transform.c) / transform.a)
    assert transform.f == full_transform.f and 0 < col and mask.shape[1] == full_mask.shape[1] - col
    assert not full_mask[:, :col].any()
    assert (mask == full_mask[:, col:]).all() and (values == full_values[:, :, col:]).all()


def test_a_sparse_frame_is_predicted_over_its_valid_blocks(bundle, tmp_path):
    """An 8192² scene that holds a 512² cut and nothing else (its other blocks never written): the map covers a few
    tiles around the cut, valid where the cut is."""
    small = cut(tmp_path / "small.tif")
    sparse_frame(small, tmp_path / "sparse.tif", 8192, at=7 * 512)
    assert_ok(predict(tmp_path, bundle, tmp_path / "sparse.tif"))
    with rasterio.open(tmp_path / "out" / "sparse.tif") as ds, rasterio.open(small) as ref:
        assert ds.width * ds.height <= 1024**2
        inner = ds.window(*ref.bounds).round_offsets().round_lengths()
        assert (ds.dataset_mask(window=inner) == ref.dataset_mask()).all()
    assert len(gpd.read_file(tmp_path / "out" / "sparse.gpkg")) > 0


@pytest.fixture(scope="module")
def small_map(bundle, tmp_path_factory):
    """A real probability map (``predict --bundle`` on a cut of a DEV scene) and its objects."""
    site = tmp_path_factory.mktemp("small-map")
    assert_ok(predict(site, bundle, cut(site / f"{SCENE}.tif")))
    return site / "out" / f"{SCENE}.tif", site / "out" / f"{SCENE}.gpkg"


def sparse_map_project(workspace, small, side: int) -> None:
    """``small`` (a probability map) at (4096, 4096) of a ``side``² map in the workspace's predictions."""
    predictions = workspace / "data" / "predictions" / "test"  # what the postprocess stage reads
    shutil.rmtree(predictions.parent)
    predictions.mkdir(parents=True)
    sparse_frame(small, predictions / f"{SCENE}.tif", side, at=4096)
    (workspace / "data" / "selection" / "classes.json").write_text('{"names": ["background", "building"]}')


def same_objects(got_path, want_path) -> None:
    got, want = gpd.read_file(got_path), gpd.read_file(want_path)
    # simplify may keep other vertices where the coordinates differ in their last bits
    assert len(got) == len(want) and np.isclose(got.area.sum(), want.area.sum(), rtol=1e-3)


def test_postprocess_skips_the_empty_windows_of_a_sparse_map(workspace, small_map):
    """An 8192² map that holds a small map and nothing else: the windows that the mask's blocks show to be empty are
    not read; the objects are those of the small map."""
    sparse_map_project(workspace, small_map[0], 8192)
    proc = run_stage(workspace, "postprocess")
    assert_ok(proc)
    assert ("the raster part by 1 windows of 4096 px (+256 px halo), 2 at once; 3 other windows hold no valid "
            "pixel") in proc.stderr
    same_objects(workspace / "data" / "vectors" / f"{SCENE}.gpkg", small_map[1])


@pytest.mark.slow  # a 100000² sparse scene written, then predicted (~15 s)
def test_a_sparse_100000_px_scene_costs_its_valid_area(bundle, tmp_path):
    small = cut(tmp_path / "small.tif", Window(1024, 0, 1280, 512))
    sparse_frame(small, tmp_path / "sparse.tif", SIDE, at=SIDE // 2 // 512 * 512)
    proc = measured(cli_args("predict", "--bundle", bundle, tmp_path / "sparse.tif", "--out", tmp_path / "out"),
                    tmp_path)
    assert_ok(proc)
    assert peak_rss_kib(proc) < 1.5 * GIB
    with rasterio.open(tmp_path / "out" / "sparse.tif") as ds:  # the valid blocks' tiles
        assert ds.width * ds.height < 4e6 and (ds.dataset_mask() > 0).any()
    assert len(gpd.read_file(tmp_path / "out" / "sparse.gpkg")) > 0


@pytest.mark.slow  # a 100000² map (625 windows of 4096²) through the postprocess stage (~15 s)
def test_postprocess_of_a_sparse_100000_px_map_costs_its_valid_area(workspace, small_map):
    sparse_map_project(workspace, small_map[0], SIDE)
    proc = measured(stage_args("postprocess"), workspace)
    assert_ok(proc)
    assert ("the raster part by 1 windows of 4096 px (+256 px halo), 2 at once; 624 other windows hold no valid "
            "pixel") in proc.stderr
    assert peak_rss_kib(proc) < 1.5 * GIB
    same_objects(workspace / "data" / "vectors" / f"{SCENE}.gpkg", small_map[1])


@pytest.mark.parametrize("shape", [pytest.param((1, 1), id="one pixel"),
                                   pytest.param((1, 512), id="one row", marks=pytest.mark.slow),
                                   pytest.param((512, 1), id="one column", marks=pytest.mark.slow)])
def test_a_scene_one_pixel_wide_or_tall_is_predicted(shape, bundle, tmp_path):
    row, col = 300, 1800  # a valid pixel of the DEV scene
    window = Window(col if shape[1] == 1 else 1408, row if shape[0] == 1 else 0, shape[1], shape[0])
    assert_ok(predict(tmp_path, bundle, cut(tmp_path / "thin.tif", window)))
    with rasterio.open(tmp_path / "out" / "thin.tif") as ds:
        assert ds.shape == shape and (ds.dataset_mask() > 0).any()
