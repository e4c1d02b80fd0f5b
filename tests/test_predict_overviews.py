"""Overviews built while strips stream: the COG's levels equal GDAL's own ``average`` overviews, mask included."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import MaskFlags
import torch
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from geofoundry.predict.pyramid import Pyramid, overview_factors
from geofoundry.predict.sliding import Rows, Strip
from geofoundry.predict.writer import ProbabilityWriter

STRIPS = [383, 1, 384, 200, 7, 384, 384, 384]  # odd heights: rows of every level wait for the next strip


def _stream(pyramid: Pyramid, values, valid, as_host, sizes=STRIPS):
    """Feed ``values``/``valid`` to ``pyramid`` in uneven strips; yield (top, strip values, strip valid, levels)."""
    top, sizes = 0, iter(sizes)
    while top < valid.shape[0]:
        n = min(next(sizes, 384), valid.shape[0] - top)
        last = top + n == valid.shape[0]
        v, m = values[:, top:top + n], valid[top:top + n]
        yield top, v, m, [(as_host(a), as_host(b)) for a, b in pyramid.add(v, m, last)]
        top += n


def test_streamed_overviews_equal_gdal_average(dev_root, tmp_path):
    """A real scene's corner (with its nodata) as a one-band map: our COG's overviews and mask overviews are the
    ones GDAL's COG driver computes itself (``average``), bit for bit."""
    with rasterio.open(dev_root / "images" / "kampala_ug_z19.tif") as src:
        window = Window(src.width - 1536, 0, 1536, 1024)  # sizes divide by every factor: GDAL uses 2x2 blocks too
        valid = src.read_masks(1, window=window) > 0
        values = src.read(1, window=window)[None] * valid
        crs, transform = src.crs, src.window_transform(window)
    assert 0.1 < valid.mean() < 0.9
    out = tmp_path / "streamed.tif"
    with ProbabilityWriter(out, crs, transform, 1536, 1024, ["building"]) as writer:
        assert writer.factors == [2, 4]
        pyramid, tops = Pyramid(np, writer.factors), [0, 0]
        for top, v, m, levels in _stream(pyramid, values.astype(np.float32), valid.astype(np.float32), np.asarray):
            writer.write(Strip(Rows(top, len(m), v.astype(np.uint8), np.packbits(m > 0, axis=-1)),
                               [Rows(tops[i], len(b), a.astype(np.uint8), np.packbits(b > 0, axis=-1))
                                for i, (a, b) in enumerate(levels)]))
            tops = [t + len(b) for t, (_, b) in zip(tops, levels)]
    reference = tmp_path / "reference.tif"
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "width": 1536, "height": 1024, "crs": crs,
               "transform": transform}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(tmp_path / "full.tif", "w", **profile) as ds:
            ds.write(values)
            ds.write_mask(valid.astype(np.uint8) * 255)
        rio_copy(tmp_path / "full.tif", reference, driver="COG", blocksize=512, overview_resampling="average")
    with rasterio.open(out) as ours, rasterio.open(reference) as gdal:
        assert ours.overviews(1) == gdal.overviews(1) == [2, 4]
        assert ours.descriptions == ("p(building)",) and ours.tags()["scale"] == "1/255"
        assert ours.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ours.mask_flag_enums == gdal.mask_flag_enums == ([MaskFlags.per_dataset],)
        assert (ours.read() == values).all() and (ours.dataset_mask() == gdal.dataset_mask()).all()
    for level in range(2):
        with rasterio.open(out, overview_level=level) as ours, rasterio.open(reference, overview_level=level) as gdal:
            assert (ours.dataset_mask() == gdal.dataset_mask()).all(), f"mask of overview {level}"
            assert (ours.read() == gdal.read()).all(), f"overview {level}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.tif", "reference.tif", "streamed.tif"]


def test_pyramid_on_torch_equals_numpy_for_odd_sizes():
    """Odd sizes and strips: torch and numpy give the same rows; every level gets ceil(size / factor) rows."""
    rng = np.random.default_rng(0)
    h, w = 1001, 777
    valid = (rng.random((h, w)) > 0.2).astype(np.float32)
    values = np.round(rng.random((2, h, w)) * 255).astype(np.float32) * valid
    factors = overview_factors(w, h, 100)
    assert factors == [2, 4, 8, 16]
    rows = {}
    for name, xp, put in [("numpy", np, np.asarray), ("torch", torch, torch.from_numpy)]:
        levels = [lv for *_, lv in _stream(Pyramid(xp, factors), put(values), put(valid), np.asarray)]
        rows[name] = [np.concatenate([lv[i][0] for lv in levels], axis=1) for i in range(len(factors))]
        masks = [np.concatenate([lv[i][1] for lv in levels], axis=0) for i in range(len(factors))]
        assert [m.shape for m in masks] == [(-(-h // f), -(-w // f)) for f in factors]
    for a, b in zip(rows["numpy"], rows["torch"]):
        assert a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("xp,put", [(np, np.asarray), (torch, torch.from_numpy)], ids=["numpy", "torch"])
def test_strips_without_valid_pixels_skipped_on_the_host_give_the_same_levels(xp, put):
    """Stretches of invalid rows, counted on the host where no valid row waits (``skip``) and averaged otherwise
    (``add(..., empty=True)``), give the levels of adding every strip as it is; odd strip heights make rows wait."""
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 100, 200)  # strips of 1..99 rows: now and then a level gets a single new row
    ends = np.cumsum(sizes)
    h, w = int(ends[59]), 301
    valid = np.zeros((h, w), np.float32)
    for a, b in [(0, ends[9]), (ends[25], ends[27]), (ends[40], ends[41]), (ends[55], h)]:  # nodata between
        valid[a:b] = 1
    valid *= rng.random((h, w)) > 0.3
    values = np.round(rng.random((1, h, w)) * 255).astype(np.float32) * valid
    factors = overview_factors(w, h, 40)
    assert factors == [2, 4, 8, 16, 32, 64, 128]
    reference = [lv for *_, lv in _stream(Pyramid(xp, factors), put(values), put(valid), np.asarray, sizes)]
    pyramid, got, top, sizes, ways = Pyramid(xp, factors), [], 0, iter(sizes), []
    while top < h:
        n = min(next(sizes), h - top)
        last, v, m = top + n == h, values[:, top:top + n], valid[top:top + n]
        counts = None if m.any() else pyramid.skip(n, last)
        ways.append("add" if m.any() else "skip" if counts is not None else "add empty")
        if counts is None:
            got.append([(np.asarray(a), np.asarray(b)) for a, b in pyramid.add(put(v), put(m), last, not m.any())])
        else:
            got.append([(np.zeros((1, k, -(-w // f)), np.float32), np.zeros((k, -(-w // f)), np.float32))
                        for k, f in zip(counts, factors)])
        top += n
    assert {"skip", "add empty"} <= set(ways)
    for i in range(len(factors)):
        for part in range(2):
            a = np.concatenate([lv[i][part] for lv in reference], axis=-2)
            b = np.concatenate([lv[i][part] for lv in got], axis=-2)
            assert a.shape == b.shape and np.array_equal(a, b), f"level {i}"


def test_a_failed_prediction_leaves_nothing_behind(tmp_path):
    """An error while strips stream: no COG, no temporary level file or VRT, and an existing map stays as it was."""
    out = tmp_path / "map.tif"
    out.write_bytes(b"previous map")
    transform = rasterio.transform.from_origin(0, 0, 0.3, 0.3)
    with pytest.raises(RuntimeError, match="model failed"):
        with ProbabilityWriter(out, rasterio.crs.CRS.from_epsg(3857), transform, 1200, 1100, ["building"]) as writer:
            assert writer.factors == [2, 4]
            valid = np.ones((384, 1200), bool)
            levels = Pyramid(np, writer.factors).add(np.zeros((1, 384, 1200), np.float32), valid * np.float32(1), False)
            writer.write(Strip(Rows(0, 384, np.zeros((1, 384, 1200), np.uint8), np.packbits(valid, axis=-1)),
                               [Rows(0, len(m), v.astype(np.uint8), np.packbits(m > 0, axis=-1)) for v, m in levels]))
            raise RuntimeError("model failed")
    assert out.read_bytes() == b"previous map"
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]
