"""Preprocess the real 8-band uint16 SpaceNet sample: bands by name, 16→8-bit stretch, nodata=0 respected."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from geofoundry.config import PreprocessConfig, SelectConfig
from geofoundry.models.input_spec import InputSpec
from geofoundry.preprocess import run as preprocess_run
from geofoundry.select import run as select_run

BANDS = ["nir1", "red", "green"]  # false colour, by name: WorldView-2 bands 7, 5, 3


@pytest.fixture(scope="module")
def chips(tmp_path_factory, spacenet_root):
    out = tmp_path_factory.mktemp("rio8")
    select_run(SelectConfig(gsd_range=(1, 3), context_gsd_m=2.0, split={"block_size_m": 60}),
               spacenet_root, out / "selection", out / "select.json")
    cfg = PreprocessConfig(bands=BANDS, gsd_m=1.9067, chip={"size": 32, "stride": 24, "min_valid_frac": 0.2})
    summary = preprocess_run(cfg, out / "selection", out / "chips")
    return out / "chips", summary, spacenet_root


def test_stats_fit_on_valid_pixels_only(chips):
    root, summary, raw = chips
    spec = InputSpec.load(root / "stats.json")
    assert spec.bands == BANDS and spec.source_dtype == "uint16" and summary["train"]["chips"] > 0
    valid_values = []
    for path in sorted((raw / "images").glob("*_8band.tif")):
        with rasterio.open(path) as ds:
            data, valid = ds.read([7, 5, 3]), ds.dataset_mask() > 0
            assert ds.nodata == 0 and (data[:, ~valid] == 0).all()
            valid_values.append(data[:, valid])
    valid_values = np.concatenate(valid_values, axis=1)
    # the 0 fill covers 68-89 % of each chip: had it been sampled, every low (and the highs) would collapse to 0
    assert min(spec.low) >= 5 and min(spec.high) > 1000
    lo_all = np.percentile(valid_values, 0.5, axis=1)
    hi_all = np.percentile(valid_values, 99.5, axis=1)
    np.testing.assert_allclose(spec.low, lo_all, rtol=0.25)
    np.testing.assert_allclose(spec.high, hi_all, rtol=0.25)


def test_chips_compose_bands_by_name_and_ignore_nodata(chips):
    root, _, raw = chips
    spec = InputSpec.load(root / "stats.json")
    index = pd.read_parquet(root / "index.parquet")
    images = np.load(root / "train" / "images.npy", mmap_mode="r")
    labels = np.load(root / "train" / "labels.npy", mmap_mode="r")
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    ignore = labels == spec.ignore_index
    assert ignore.any() and (~ignore).any() and (labels == 1).any()
    assert (images.transpose(1, 0, 2, 3)[:, ignore] == 0).all()  # no data in the input where labels are ignored
    checked = 0
    for _, ref in index[index["split"] == "train"].iterrows():
        with rasterio.open(raw / "images" / f"{ref['scene_id']}.tif") as ds:
            assert Affine(*json.loads(ref["transform"])) == ds.window_transform(
                Window(ref["col_off"], ref["row_off"], 32, 32))
            win = Window(ref["col_off"], ref["row_off"], 32, 32)
            src = ds.read([7, 5, 3], window=win, boundless=True, fill_value=0)
            valid = ds.dataset_mask(window=win, boundless=True) > 0
        ok = valid & ~ignore[ref["index"]]
        np.testing.assert_array_equal(images[ref["index"]][:, ok], spec.stretch.apply(src)[:, ok])
        assert (labels[ref["index"]][~valid] == spec.ignore_index).all()  # invalid pixels are never negatives
        checked += 1
    assert checked == len(images)
