"""Constant blocks of a GeoTIFF's internal mask (``io.mask_blocks``): found from their bytes, read as GDAL reads them."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geofoundry.io.mask_blocks import MIXED, mask_blocks
from geofoundry.io.raster import ModelGrid


@pytest.mark.parametrize("scene", ["kampala_ug_z19", "zanzibar_tz_z19"])
def test_constant_blocks_are_found_and_masks_read_as_gdal_reads_them(dev_root, scene):
    """Collar blocks are all 0, inner blocks all 255, blocks across the footprint's edge stay MIXED; windows read
    through the index (anywhere, partly outside the raster too) equal GDAL's own mask."""
    path = dev_root / "images" / f"{scene}.tif"
    with rasterio.open(path) as ds, rasterio.open(path) as plain:
        blocks = mask_blocks(ds)
        assert blocks is not None and blocks.block == (512, 512)
        assert blocks.values.shape == (-(-ds.height // 512), -(-ds.width // 512))
        full = plain.read_masks(1)
        for r, c in np.ndindex(blocks.values.shape):
            block = full[r * 512:(r + 1) * 512, c * 512:(c + 1) * 512]
            value = blocks.values[r, c]
            assert value == MIXED or (block == value).all(), (r, c)
        assert (blocks.values == 0).any()
        grid, reference = ModelGrid(ds, [1, 2, 3]), ModelGrid(plain, [1, 2, 3])
        reference.__dict__["mask_blocks"] = None  # GDAL decodes every block
        rng = np.random.default_rng(0)
        for _ in range(100):
            window = Window(int(rng.integers(-200, ds.width)), int(rng.integers(-200, ds.height)),
                            int(rng.integers(1, 1300)), int(rng.integers(1, 1300)))
            assert (grid.mask(window) == reference.mask(window)).all(), window
    if scene == "kampala_ug_z19":
        assert (blocks.values == MIXED).any()
    else:
        assert (blocks.values == 255).any() and (blocks.values == 0).mean() > 0.5


def test_no_index_where_there_is_no_internal_mask(dev_root, spacenet_root, tmp_path):
    """A nodata-value mask (SpaceNet uint16), a warped view and a striped file with an internal mask: the mask is
    read as usual."""
    with rasterio.open(spacenet_root / "images" / "rio_img01_8band.tif") as ds:
        assert ds.nodata is not None and mask_blocks(ds) is None
    with rasterio.open(dev_root / "images" / "kampala_ug_z19.tif") as src, WarpedVRT(src, add_alpha=True) as vrt:
        assert mask_blocks(vrt) is None
    striped = tmp_path / "striped.tif"
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "width": 64, "height": 64, "crs": "EPSG:3857",
               "transform": rasterio.transform.from_origin(500000, 0, 0.5, 0.5)}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(striped, "w", **profile) as ds:
        ds.write(np.ones((1, 64, 64), np.uint8))
        ds.write_mask(np.zeros((64, 64), np.uint8))
    with rasterio.open(striped) as ds:
        assert mask_blocks(ds) is None


def test_an_edge_tile_does_not_vouch_for_an_inner_tile_with_the_same_bytes(tmp_path):
    """Synthetic (real data has no such pair): an edge tile valid wherever it shows compresses, padding included, to
    the bytes of an inner tile valid only in its first 100 columns. Only an inner tile is decoded for a byte string,
    so neither is called constant, and masks read through the index equal GDAL's."""
    path = tmp_path / "edge.tif"
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "width": 612, "height": 1024, "crs": "EPSG:3857",
               "transform": rasterio.transform.from_origin(500000, 0, 0.5, 0.5), "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate"}
    mask = np.zeros((1024, 612), np.uint8)
    mask[:512, 512:] = 255  # the edge tile (0, 1): valid wherever it shows
    mask[512:, :100] = 255  # the inner tile (1, 0): valid in its first 100 columns only
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as ds:
        ds.write(np.ones((1, 1024, 612), np.uint8))
        ds.write_mask(mask)
    with rasterio.open(path) as ds:
        blocks = mask_blocks(ds)
        assert blocks.values.tolist() == [[0, MIXED], [MIXED, 0]]
        assert (ModelGrid(ds, [1]).mask(Window(0, 0, 612, 1024)) == mask).all()
