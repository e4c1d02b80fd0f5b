"""Candidate tiles: unlabelled ground of the selection's train blocks, and their chips on the model grid.

A tile is a block (``select.split.block_size_m``) or, with ``al.tiles_per_block`` k > 1, one of its k × k squares,
clipped to the block's ground (the geofence of the selection). Only train blocks hold candidates: validation and test
ground is never proposed. A candidate is a (tile, scene) pair; each tile is scored in the scene where it has the most
unlabelled valid pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..config import PreprocessConfig
from ..io.geometry import reproject
from ..io.grid import GRID_CRS
from ..io.labelled import area_mask, scene_area
from ..io.tiling import chip_windows
from ..io.units import pixel_area_m2
from ..models.input_spec import InputSpec
from ..preprocess.run import block_area_mask, scene_blocks, scene_grid

CANDIDATE_SPLIT = "train"


def tile_grid(blocks: gpd.GeoDataFrame, per_side: int, block_size_m: float) -> gpd.GeoDataFrame:
    """The tiles of the train blocks (EPSG:3857): ``tile_id``, ``block_id``, geometry clipped to the block."""
    train = blocks[blocks["split"] == CANDIDATE_SPLIT]
    step = block_size_m / per_side
    rows = []
    for block in train.itertuples():
        for j in range(per_side):
            for i in range(per_side):
                x0, y0 = block.ix * block_size_m + i * step, block.iy * block_size_m + j * step
                geom = shapely.box(x0, y0, x0 + step, y0 + step).intersection(block.geometry)
                if geom.area > 0:
                    tile_id = block.block_id if per_side == 1 else f"{block.block_id}-{i}-{j}"
                    rows.append((tile_id, block.block_id, geom))
    tile_ids, block_ids, geoms = zip(*rows) if rows else ((), (), ())
    return gpd.GeoDataFrame({"tile_id": list(tile_ids), "block_id": list(block_ids)}, geometry=list(geoms),
                            crs=GRID_CRS)


def tile_of(points_3857: np.ndarray, tiles: gpd.GeoDataFrame) -> np.ndarray:
    """Index into ``tiles`` of the tile holding each point (x, y), -1 for none."""
    hits = tiles.sindex.query(shapely.points(points_3857), predicate="within")
    out = np.full(len(points_3857), -1)
    out[hits[0]] = hits[1]
    return out


def preprocess_like(spec: InputSpec, rpc) -> PreprocessConfig:
    """The model's grid as preprocess made it (bands, GSD, CRS, resampling of ``stats.json``)."""
    return PreprocessConfig(bands=spec.bands, gsd_m=spec.gsd_m, crs=spec.crs, resampling=spec.resampling, rpc=rpc)


@dataclass(frozen=True)
class Candidate:
    """A tile seen in one scene, on the model grid."""

    tile: int  # index into the tile grid
    scene_id: str
    crs: str  # the model grid's CRS (the scene's own unless preprocess.crs or RPCs say otherwise)
    geometry: shapely.Geometry  # the tile in ``crs``
    valid_px: int  # valid pixels of the tile
    wanted_px: int  # of which unlabelled
    pixel_m2: float  # ground area of one pixel


@dataclass
class Chips:
    """A batch of chips of candidates: uint8 images, wanted pixels, and the candidate each belongs to."""

    images: np.ndarray
    wanted: np.ndarray
    owner: np.ndarray


def read_candidates(scenes: pd.DataFrame, tiles: gpd.GeoDataFrame, cfg: PreprocessConfig, spec: InputSpec,
                    chip: int, min_unlabelled_frac: float, batch: int, found: list[Candidate]) -> Iterator[Chips]:
    """Chips of every candidate, in batches of ``batch``; each candidate is appended to ``found`` as its tile is read
    (``Chips.owner`` indexes it there).

    A (tile, scene) pair is a candidate when at least ``min_unlabelled_frac`` of the tile's valid pixels lie outside
    the scene's labelled area; a scene labelled everywhere has none. Only chips with unlabelled pixels are read.
    """
    images, wanted, owner = [], [], []
    for _, row in scenes.iterrows():
        with scene_grid(row, cfg) as grid:
            labelled = scene_area(row, grid.ds.crs)
            if labelled is None:
                continue
            for tile, win in scene_blocks(row, tiles, grid):
                geom = reproject(tile.geometry, GRID_CRS, grid.ds.crs, densify_parts=64)
                if labelled.contains(geom):
                    continue
                windows = chip_windows(win, chip, chip)
                masks = []
                for w in windows:
                    valid = grid.valid(w) & block_area_mask(tile.geometry, grid, w)
                    masks.append((valid, valid & ~area_mask(labelled, grid.ds.window_transform(w), valid.shape)))
                valid_px, wanted_px = (int(sum(m[k].sum() for m in masks)) for k in (0, 1))
                if not valid_px or wanted_px < min_unlabelled_frac * valid_px:
                    continue
                found.append(Candidate(int(tile.name), row["scene_id"], grid.ds.crs.to_string(), geom, valid_px,
                                       wanted_px, pixel_area_m2(grid.transform, grid.ds.crs, grid.shape)))
                for w, (valid, unlabelled) in zip(windows, masks):
                    if not unlabelled.any():
                        continue
                    images.append(spec.stretch.apply(grid.bands(w)) * valid)
                    wanted.append(unlabelled)
                    owner.append(len(found) - 1)
                    if len(images) == batch:
                        yield Chips(np.stack(images), np.stack(wanted), np.asarray(owner))
                        images, wanted, owner = [], [], []
    if images:
        yield Chips(np.stack(images), np.stack(wanted), np.asarray(owner))


def labelled_chips(chips_dir: Path, tiles: gpd.GeoDataFrame, ignore_index: int, batch: int) -> Iterator[Chips]:
    """The train chips of the preprocess stage (labelled ground) in batches; ``owner``: the tile of each chip's
    centre (-1 outside the tile grid), ``wanted``: its labelled pixels."""
    index = pd.read_parquet(chips_dir / "index.parquet")
    index = index[index["split"] == CANDIDATE_SPLIT].sort_values("index")
    images = np.load(chips_dir / "train" / "images.npy", mmap_mode="r")
    labels = np.load(chips_dir / "train" / "labels.npy", mmap_mode="r")
    centres = []
    for rec in index.itertuples():
        a, b, c, d, e, f = json.loads(rec.transform)
        x, y = a * rec.size / 2 + b * rec.size / 2 + c, d * rec.size / 2 + e * rec.size / 2 + f
        centres.append(reproject(shapely.Point(x, y), rec.crs, GRID_CRS).coords[0])
    owner = tile_of(np.asarray(centres).reshape(-1, 2), tiles)
    for start in range(0, len(index), batch):
        rows = index["index"].to_numpy()[start:start + batch]
        yield Chips(np.asarray(images[rows]), np.asarray(labels[rows]) != ignore_index, owner[start:start + batch])
