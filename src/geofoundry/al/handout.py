"""What annotators get: a GeoPackage of the tiles to label and the imagery of each tile as a small COG.

``tiles.gpkg`` holds two layers in the tiles' CRS (the scenes' own; EPSG:4326 when the picked tiles lie in scenes of
several CRSs): ``tiles`` (rank, tile_id, block_id, scene_id, strategy, score, reason, unlabelled_m2, image, bounds)
and an empty ``labels`` layer (``class``, ``class_path``) to draw the objects in; ``geofoundry al import`` reads it
back. ``imagery/<rank>_<tile_id>.tif`` is the tile's ground on the model grid (the bands and pixels the model
scored), with its valid mask, as a COG. Dragging the GeoPackage and the imagery folder into QGIS opens both.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile

from ..config import PreprocessConfig
from ..io.tiling import block_window
from ..preprocess.run import scene_grid

GPKG = "tiles.gpkg"
TILES_LAYER, LABELS_LAYER = "tiles", "labels"
IMAGERY = "imagery"
MARGIN_PX = 16  # imagery around the tile, so that objects on its edge show whole


def write_cog(path: Path, bands: np.ndarray, valid: np.ndarray, transform, crs, band_names: list[str]) -> None:
    """``bands`` (C, h, w) as a COG with an internal mask (JPEG for 3-band uint8, DEFLATE otherwise)."""
    profile = {"driver": "GTiff", "width": bands.shape[2], "height": bands.shape[1], "count": len(bands),
               "dtype": bands.dtype.name, "crs": crs, "transform": transform}
    jpeg = bands.dtype == np.uint8 and len(bands) == 3
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(bands)
            ds.write_mask(valid.astype(np.uint8) * 255)
            ds.descriptions = tuple(band_names)
        path.parent.mkdir(parents=True, exist_ok=True)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", COMPRESS="JPEG" if jpeg else "DEFLATE", QUALITY=90,
                                 BLOCKSIZE=256, OVERVIEWS="AUTO")


def write_imagery(picked: pd.DataFrame, scenes: pd.DataFrame, cfg: PreprocessConfig, out_dir: Path) -> list[str]:
    """The COG of each picked tile (rows with ``rank``, ``tile_id``, ``scene_id``, ``geometry`` in the model grid's
    CRS); returns their paths relative to ``out_dir``."""
    paths = [""] * len(picked)
    by_id = scenes.set_index("scene_id", drop=False)
    for scene_id, group in picked.groupby("scene_id", sort=False):
        with scene_grid(by_id.loc[scene_id], cfg) as grid:
            for k, rec in group.iterrows():
                win = block_window(rec["geometry"].buffer(MARGIN_PX * abs(grid.transform.a)), grid.transform,
                                   grid.shape)
                rel = f"{IMAGERY}/{rec['rank']:03d}_{rec['tile_id']}.tif"
                bands, valid = grid.read(win)
                write_cog(out_dir / rel, bands, valid, grid.ds.window_transform(win), grid.ds.crs, cfg.bands)
                paths[picked.index.get_loc(k)] = rel
    return paths


def write_gpkg(path: Path, tiles: gpd.GeoDataFrame) -> None:
    """The ``tiles`` layer and an empty ``labels`` layer to draw in, in the tiles' CRS."""
    labels = gpd.GeoDataFrame({"class": pd.Series([], dtype=str), "class_path": pd.Series([], dtype=str)},
                              geometry=gpd.GeoSeries([], crs=tiles.crs))
    tiles.to_file(path, layer=TILES_LAYER, engine="pyogrio")
    labels.to_file(path, layer=LABELS_LAYER, engine="pyogrio", geometry_type="MultiPolygon")


def handout(picked: pd.DataFrame, scenes: pd.DataFrame, cfg: PreprocessConfig, out_dir: Path) -> gpd.GeoDataFrame:
    """Write ``out_dir/tiles.gpkg`` and ``out_dir/imagery/``; ``picked`` has one row per tile (``geometry`` in its
    ``crs``). Returns the ``tiles`` layer."""
    images = write_imagery(picked, scenes, cfg, out_dir)
    crs = picked["crs"].iloc[0] if picked["crs"].nunique() == 1 else "EPSG:4326"
    geoms = [gpd.GeoSeries([g], crs=c).to_crs(crs).iloc[0] for g, c in zip(picked["geometry"], picked["crs"])]
    tiles = gpd.GeoDataFrame(picked.drop(columns=["geometry", "crs"]).assign(image=images), geometry=geoms, crs=crs)
    bounds = tiles.geometry.bounds
    tiles = tiles.assign(xmin=bounds["minx"], ymin=bounds["miny"], xmax=bounds["maxx"], ymax=bounds["maxy"])
    write_gpkg(out_dir / GPKG, tiles)
    return tiles
