"""COGs assembled from already-compressed tiles (``io.cog_layout``): GDAL reads them as its own COG driver's output."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from geofoundry.io.tiff import Ifd, read_ifds
from geofoundry.predict.cog_layout import LEADER, TRAILER, leader, trailer, write_cog

SIDE = 1280  # 3 x 3 tiles of 512, the last ones partial


@pytest.fixture()
def tiled(dev_root, tmp_path):
    """A real scene's corner as a tiled zstd GeoTIFF with internal mask, one overview file of half its size, and
    the pixels and mask written."""
    with rasterio.open(dev_root / "images" / "kampala_ug_z19.tif") as src:
        window = Window(src.width - SIDE, src.height - SIDE, SIDE, SIDE)
        valid = src.read_masks(1, window=window) > 0
        values = src.read(window=window) * valid
        crs, transform = src.crs, src.window_transform(window)
    assert 0.05 < valid.mean() < 0.95
    files = []
    for factor in (1, 2):
        path = tmp_path / f"x{factor}.tif"
        profile = {"driver": "GTiff", "dtype": "uint8", "count": 3, "width": SIDE // factor, "height": SIDE // factor,
                   "crs": crs, "transform": transform * transform.scale(factor), "tiled": True, "blockxsize": 512,
                   "blockysize": 512, "compress": "zstd", "photometric": "minisblack"}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as ds:
            ds.write(values[:, ::factor, ::factor])
            ds.write_mask(valid[::factor, ::factor].astype(np.uint8) * 255)
            if factor == 1:
                ds.descriptions = ("p(a)", "p(b)", "p(c)")
                ds.update_tags(scale="1/255")
        files.append(path)
    return files, values, valid


@pytest.mark.parametrize("bigtiff", [False, True])
def test_assembled_cog_reads_as_gdal_cog(tiled, tmp_path, bigtiff):
    """Pixels, mask, overview, georeferencing, band descriptions and tags come through; GDAL reports LAYOUT=COG."""
    (full, half), values, valid = tiled
    out = tmp_path / "cog.tif"
    write_cog([tuple(read_ifds(full)), tuple(read_ifds(half))], out, bigtiff=bigtiff)
    assert out.read_bytes()[2] == (43 if bigtiff else 42)
    with rasterio.open(out) as ds, rasterio.open(full) as src:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.crs == src.crs and ds.transform == src.transform and ds.overviews(1) == [2]
        assert ds.descriptions == ("p(a)", "p(b)", "p(c)") and ds.tags()["scale"] == "1/255"
        assert ds.mask_flag_enums == ([MaskFlags.per_dataset],) * 3
        assert (ds.read() == values).all() and ((ds.dataset_mask() > 0) == valid).all()
    with rasterio.open(out, overview_level=0) as ds, rasterio.open(half) as src:
        assert (ds.read() == src.read()).all() and (ds.dataset_mask() == src.dataset_mask()).all()
    image, mask, overview, overview_mask = read_ifds(out)  # our own output lends its tiles in turn
    again = tmp_path / "again.tif"
    write_cog([(image, mask), (overview, overview_mask)], again, bigtiff=not bigtiff)
    with rasterio.open(again) as ds, rasterio.open(out) as first:
        assert (ds.read() == first.read()).all() and (ds.dataset_mask() == first.dataset_mask()).all()


def test_layout_is_gdal_cog_layout(tiled, tmp_path):
    """All IFDs come before the data; tiles run from the overview to the full resolution, each image tile followed
    by its mask tile, each with its size before it and its last 4 bytes after it (as GDAL's COG driver writes)."""
    (full, half), _, _ = tiled
    out = tmp_path / "cog.tif"
    write_cog([tuple(read_ifds(full)), tuple(read_ifds(half))], out)
    ifds = read_ifds(out)
    raw = out.read_bytes()
    assert [struct.unpack("<I", ifd.tags[254][2])[0] if 254 in ifd.tags else 0 for ifd in ifds] == [0, 4, 1, 5]
    image, mask, overview, overview_mask = ifds
    order = [o for i in range(len(overview.offsets)) for o in (overview.offsets[i], overview_mask.offsets[i])]
    order += [o for i in range(len(image.offsets)) for o in (image.offsets[i], mask.offsets[i])]
    assert order == sorted(order) and min(order) > 0
    first_ifd = struct.unpack_from("<I", raw, 4)[0]
    assert raw[8:first_ifd].startswith(b"GDAL_STRUCTURAL_METADATA_SIZE=")
    for ifd in ifds:
        for offset, count in zip(ifd.offsets.astype(int), ifd.counts.astype(int)):
            assert struct.unpack_from("<I", raw, offset - LEADER)[0] == count
            assert raw[offset + count: offset + count + TRAILER] == raw[offset + count - TRAILER: offset + count]
    source = full.read_bytes()  # the tiles are the source's bytes, not decoded and encoded again
    for ours, theirs in zip(ifds[:2], read_ifds(full)):
        for a, b, n in zip(ours.offsets.astype(int), theirs.offsets.astype(int), theirs.counts.astype(int)):
            assert raw[a:a + n] == source[b:b + n]


def test_same_file_without_copy_file_range(tiled, tmp_path, monkeypatch):
    """Where the kernel cannot copy between files (macOS, Windows), the tiles go through a buffer: same bytes."""
    (full, half), _, _ = tiled
    write_cog([tuple(read_ifds(full)), tuple(read_ifds(half))], tmp_path / "kernel.tif")
    monkeypatch.delattr("os.copy_file_range", raising=False)
    write_cog([tuple(read_ifds(full)), tuple(read_ifds(half))], tmp_path / "buffered.tif")
    assert (tmp_path / "kernel.tif").read_bytes() == (tmp_path / "buffered.tif").read_bytes()


def test_framed_tiles_copied_in_runs_give_the_same_cog(tiled, tmp_path):
    """Tiles that already carry their COG leader and trailer, one after the other in their file (as the predict
    writer leaves them), are copied in one run per file: the COG is byte for byte the one made tile by tile."""
    (full, half), _, _ = tiled
    levels = [tuple(read_ifds(full)), tuple(read_ifds(half))]
    framed_levels = []
    for n, (image, mask) in enumerate(levels):
        framed = tmp_path / f"framed{n}.bin"
        offsets = {id(ifd): np.zeros_like(ifd.offsets) for ifd in (image, mask)}
        with open(image.path, "rb") as src, open(framed, "wb") as out:
            for i in range(len(image.offsets)):
                for ifd in (image, mask):
                    if ifd.counts[i]:
                        src.seek(int(ifd.offsets[i]))
                        data = src.read(int(ifd.counts[i]))
                        offsets[id(ifd)][i] = out.tell() + LEADER
                        out.write(leader(len(data)) + data + trailer(data))
        framed_levels.append(tuple(Ifd(framed, ifd.tags, offsets[id(ifd)], ifd.counts, framed=True)
                                   for ifd in (image, mask)))
    write_cog(levels, tmp_path / "tile_by_tile.tif")
    write_cog(framed_levels, tmp_path / "in_runs.tif")
    assert (tmp_path / "tile_by_tile.tif").read_bytes() == (tmp_path / "in_runs.tif").read_bytes()


def test_untiled_or_big_endian_input_is_refused(tmp_path):
    """Only tiled little-endian TIFFs can lend their tiles; the error names the file."""
    striped = tmp_path / "striped.tif"
    with rasterio.open(striped, "w", driver="GTiff", dtype="uint8", count=1, width=64, height=64, crs="EPSG:3857",
                       transform=rasterio.transform.from_origin(500000, 0, 0.5, 0.5)) as ds:
        ds.write(np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="striped.tif.*not tiled"):
        read_ifds(striped)
    big_endian = tmp_path / "motorola.tif"
    big_endian.write_bytes(b"MM\0*" + bytes(60))
    with pytest.raises(ValueError, match="motorola.tif: not a little-endian TIFF"):
        read_ifds(big_endian)
