"""Scenes made from a real DEV scene for the fault cases: a small cut of it, in another dtype, with a corrupt block,
truncated, or inside a sparse 100000² frame. Synthetic only where real data cannot show the fault (the sparse
frame's empty expanse)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from geofoundry.io.tiff import read_ifds

from ..conftest import DEV

SCENE = "kampala_ug_z19"
DEV_SCENE = DEV / "images" / f"{SCENE}.tif"  # 2304 × 1280, 0.3 m (the model's GSD), an internal mask
# 512² of it: 128 columns of its nodata collar, then valid pixels (roofs, roads); predicted in about a second
CUT = Window(1408, 0, 512, 512)
RGB = ("red", "green", "blue")
TILED = {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}


def write_scene(dst: Path, data: np.ndarray, mask: np.ndarray, profile: dict, dtype: str = "uint8",
                scale: float = 1.0, nodata: float | None = None, descriptions: tuple[str, ...] | None = RGB) -> Path:
    """``data`` times ``scale`` in ``dtype``: invalid pixels (``mask`` 0) set to ``nodata`` when given, else an
    internal mask; tiled 256², DEFLATE, ``descriptions`` as band names."""
    profile = {**profile, **TILED, "dtype": dtype, "nodata": nodata, "photometric": "minisblack",
               "count": data.shape[0], "height": data.shape[1], "width": data.shape[2]}
    values = (data.astype(np.float64) * scale).astype(dtype)
    if nodata is not None:
        values[:, mask == 0] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(dst, "w", **profile) as out:
        out.write(values)
        if nodata is None:
            out.write_mask(mask)
        if descriptions:
            out.descriptions = descriptions
    return dst


def cut(dst: Path, window: Window = CUT, dtype: str = "uint8", scale: float = 1.0, nodata: float | None = None,
        src: Path = DEV_SCENE) -> Path:
    """``window`` of the real scene ``src`` as a GeoTIFF of its own (see :func:`write_scene`)."""
    with rasterio.open(src) as ds:
        data, mask = ds.read(window=window), ds.dataset_mask(window=window)
        profile = {"driver": "GTiff", "crs": ds.crs, "transform": ds.window_transform(window)}
    return write_scene(dst, data, mask, profile, dtype, scale, nodata)


def convert(src: Path, dst: Path, dtype: str, scale: float = 1.0, nodata: float | None = None) -> Path:
    """All of ``src`` in ``dtype`` (see :func:`write_scene`)."""
    with rasterio.open(src) as ds:
        window = Window(0, 0, ds.width, ds.height)
    return cut(dst, window, dtype, scale, nodata, src)


def corrupt_block(path: Path) -> None:
    """Overwrite the largest block of the image with random bytes (its first bytes kept: GDAL opens the file and
    fails only when it decodes that block, which lies in the valid area)."""
    image = read_ifds(path)[0]
    i = int(np.argmax(image.counts))
    with open(path, "r+b") as f:
        f.seek(int(image.offsets[i]) + 2)
        f.write(np.random.default_rng(0).bytes(int(image.counts[i]) - 4))


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    os.unlink(path)  # a new file: never the one a hard link shares
    path.write_bytes(data[: int(len(data) * keep)])


def sparse_frame(src: Path, dst: Path, side: int, at: int) -> Window:
    """A ``side``² tiled GeoTIFF that holds ``src`` at (``at``, ``at``) and nothing else: its other blocks, image and
    mask, are never written (sparse: no bytes, read as invalid). The values, mask, band descriptions and tags of
    ``src`` are kept (a scene, or a probability map). Returns the window."""
    with rasterio.open(src) as ds:
        data, mask, profile = ds.read(), ds.dataset_mask(), ds.profile
        descriptions, tags = ds.descriptions, ds.tags()
    profile.update(width=side, height=side, sparse_ok=True, BIGTIFF="YES", compress="deflate", tiled=True,
                   blockxsize=512, blockysize=512, transform=profile["transform"] @ Affine.translation(-at, -at))
    window = Window(at, at, data.shape[2], data.shape[1])
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(dst, "w", **profile) as out:
        out.write(data, window=window)
        out.write_mask(mask, window=window)
        out.descriptions = descriptions
        out.update_tags(**tags)
    return window


def read_map(path: Path) -> tuple[np.ndarray, np.ndarray, Affine]:
    """A probability map's values, mask and transform."""
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask(), ds.transform
