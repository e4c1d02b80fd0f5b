"""Strip reading: column pieces on several lanes, gaps between runs of tiles, other source dtypes."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from geofoundry.config import PredictConfig
from geofoundry.io.raster import ModelGrid
from geofoundry.io.tiff import read_ifds
from geofoundry.models.input_spec import InputSpec
from geofoundry.predict import sliding
from geofoundry.predict.arrays import TileModel
from geofoundry.predict.pyramid import Pyramid
from geofoundry.predict.sliding import runs

predict_run = importlib.import_module("geofoundry.predict.run")  # the package's ``run`` is the stage function
SCALE = 4000.0  # the echo model's p(building) = first band / SCALE


def echo(batch: np.ndarray) -> np.ndarray:
    """A model whose p(building) is its first input band, scaled: the map shows what was read where."""
    p = np.clip(batch[:, 0] / SCALE, 0, 1)
    return np.stack([1 - p, p], axis=1)


def spec_for(bands: list[str], gsd: float, dtype: str) -> InputSpec:
    return InputSpec(bands=bands, gsd_m=gsd, source_dtype=dtype, low=[0.0] * len(bands), high=[SCALE] * len(bands),
                     classes=["background", "building"], class_paths=[None, "structure/building"])


def test_runs_merge_overlapping_and_touching_spans():
    assert runs([(10, 20), (0, 5), (5, 8), (15, 30), (40, 50)]) == [(0, 8), (10, 30), (40, 50)]
    assert runs([]) == []


@pytest.mark.parametrize("readers", [1, 3])
def test_uint16_scene_is_read_exactly(spacenet_root, readers, tmp_path, monkeypatch):
    """An 8-band uint16 SpaceNet scene with nodata, 3 of its bands by name: the map is the first band, scaled,
    on the valid pixels and 0 elsewhere, however many lanes read it."""
    row = pd.read_csv(spacenet_root / "scenes.csv").set_index("scene_id").loc["rio_img01_8band"]
    path, names = str(spacenet_root / row["image"]), row["band_names"].split("|")
    monkeypatch.setattr(predict_run, "READERS", readers)
    cfg = PredictConfig(tile=32, overlap=8, batch_size=3, overviews=False)
    spec = spec_for(["nir1", "red", "green"], float(row["gsd_m"]), "uint16")
    assert predict_run.predict_scene(path, names, float(row["gsd_m"]), None, spec, TileModel(echo), cfg,
                                     tmp_path / "p.tif")
    with rasterio.open(path) as src, rasterio.open(tmp_path / "p.tif") as out:
        nir, valid = src.read(names.index("nir1") + 1).astype(np.float64), src.dataset_mask() > 0
        got = out.read(1).astype(int)
        assert (out.dataset_mask() > 0).tolist() == valid.tolist()
    expected = np.round(np.clip(nir / SCALE, 0, 1) * 255) * valid
    assert 0.05 < valid.mean() < 0.95 and np.abs(got - expected).max() <= 1


def test_lanes_tile_gaps_and_ring_size_do_not_change_the_map(dev_root, tmp_path, monkeypatch):
    """Two separate areas of one DEV scene (tiles run in two runs with a gap between them), read by one lane and by
    five lanes (pieces aligned on the scene's blocks, then not) with one strip read ahead, and by five lanes with
    four strips read ahead: the same file, byte for byte."""
    row = pd.read_csv(dev_root / "scenes.csv").set_index("scene_id").loc["kampala_ug_z19"]
    path, names, gsd = str(dev_root / row["image"]), row["band_names"].split("|"), float(row["gsd_m"])
    with rasterio.open(path) as src:
        x0, y0, x1, y1 = src.bounds
        assert src.crs.to_epsg() == 3857
    w, h = x1 - x0, y1 - y0
    area = shapely.union_all([shapely.box(x0 + 0.1 * w, y0 + 0.2 * h, x0 + 0.3 * w, y0 + 0.6 * h),
                              shapely.box(x0 + 0.7 * w, y0 + 0.4 * h, x0 + 0.9 * w, y0 + 0.8 * h)])
    cfg = PredictConfig(tile=96, overlap=16, batch_size=4)
    spec = spec_for(["red", "green", "blue"], gsd, "uint8")
    maps = []
    for readers, ahead in [(1, sliding.STRIPS_AHEAD), (5, sliding.STRIPS_AHEAD), (5, 4)]:
        monkeypatch.setattr(predict_run, "READERS", readers)
        monkeypatch.setattr(sliding, "STRIPS_AHEAD", ahead)
        out = tmp_path / f"lanes{readers}_{ahead}.tif"
        assert predict_run.predict_scene(path, names, gsd, area, spec, TileModel(echo), cfg, out)
        with rasterio.open(out) as ds:
            maps.append((ds.read(1), ds.dataset_mask()))
            gap = ds.index(x0 + 0.5 * w, y0 + 0.5 * h)
    assert all((a == b).all() for other in maps[1:] for a, b in zip(maps[0], other))
    values, mask = maps[0]
    assert mask[gap] == 0 and values[mask > 0].max() > 0


def test_stretches_of_nodata_are_skipped_and_left_sparse(dev_root, tmp_path, monkeypatch):
    """zanzibar_tz_z19 is valid only at its top and bottom. Strips between are not read (the mask's blocks there
    are constant), counted on the host and not written: the COG holds no tile for blocks without a valid pixel,
    and reads, at every level, as the map made with every strip read, averaged on the device and written."""
    row = pd.read_csv(dev_root / "scenes.csv").set_index("scene_id").loc["zanzibar_tz_z19"]
    path, names, gsd = str(dev_root / row["image"]), row["band_names"].split("|"), float(row["gsd_m"])
    cfg = PredictConfig(tile=96, overlap=20, batch_size=4)  # 76-row strips: overview rows wait for the next strip
    spec = spec_for(["red", "green", "blue"], gsd, "uint8")
    skipped, skip = [], Pyramid.skip
    monkeypatch.setattr(Pyramid, "skip", lambda self, n, last: skipped.append(skip(self, n, last)) or skipped[-1])
    sparse = tmp_path / "sparse.tif"
    assert predict_run.predict_scene(path, names, gsd, None, spec, TileModel(echo), cfg, sparse)
    assert sum(counts is not None for counts in skipped) > 50 and None in skipped
    monkeypatch.setattr(Pyramid, "skip", lambda self, n, last: None)  # every strip through the device path
    monkeypatch.setattr(ModelGrid, "mask_blocks", None)  # and read
    dense = tmp_path / "dense.tif"
    assert predict_run.predict_scene(path, names, gsd, None, spec, TileModel(echo), cfg, dense)
    empty = [[int((ifd.counts == 0).sum()) for ifd in read_ifds(p)] for p in (sparse, dense)]  # tiles, per IFD
    assert empty[0] == empty[1] and min(empty[0][:3]) > 0, empty  # no tile where no pixel is valid
    with rasterio.open(path) as src:
        valid = src.dataset_mask() > 0
        red = src.read(names.index("red") + 1).astype(np.float64)
    assert 0.05 < valid.mean() < 0.5
    with rasterio.open(sparse) as ds:
        levels = ds.overviews(1)
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and len(levels) == 5
        assert ((ds.dataset_mask() > 0) == valid).all()
        assert np.abs(ds.read(1).astype(int) - np.round(np.clip(red / SCALE, 0, 1) * 255) * valid).max() <= 1
    for level in [None, *range(len(levels))]:
        with rasterio.open(sparse, overview_level=level) as a, rasterio.open(dense, overview_level=level) as b:
            assert (a.read() == b.read()).all() and (a.dataset_mask() == b.dataset_mask()).all(), level
