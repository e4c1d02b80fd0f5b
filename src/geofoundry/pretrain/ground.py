"""The ground pretraining learns on: tiles of the scenes on the model grid (the selection's GSD, bands and stretch),
validation and test blocks left out unless asked for.

Tiles are cut on each scene's model grid (``preprocess.run.scene_grid``: the same warp as the chips), so other zooms
of the same ground come in at the selection's GSD. A tile's pixels that are not valid or lie in a validation or test
block are zero and never drawn: the whole ground of the evaluation stays unseen, not only the tiles inside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio.windows import Window

from ..config import PreprocessConfig, PretrainConfig
from ..errors import GeofoundryError
from ..io.geometry import reproject
from ..io.raw import load_scenes
from ..io.tiling import chip_windows
from ..models.stretch import Stretch
from ..preprocess.run import block_area_mask, scene_grid
from ..progress import track

log = logging.getLogger(__name__)
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Ground:
    tiles: np.ndarray  # (N, C, T, T) uint8, stretched; pixels not drawn are 0
    usable: np.ndarray  # (N, T, T) bool: the pixels drawn (valid, outside the evaluation ground)
    index: pd.DataFrame  # per tile: scene_id, gsd_m, col_off, row_off, usable_frac


def pretrain_scenes(raw_root: Path, selection_dir: Path, which: str) -> pd.DataFrame:
    """The scenes to learn on: every scene of the raw dataset (``all``) or the selected ones (``selection``)."""
    selected = pd.read_parquet(selection_dir / "scenes.parquet")
    if which == "selection":
        return selected
    return load_scenes(raw_root)


def eval_ground(blocks: gpd.GeoDataFrame, include: bool) -> shapely.Geometry | None:
    """The validation and test blocks as one geometry (EPSG:3857); None when they are included."""
    held = blocks[blocks["split"].isin(EVAL_SPLITS)]
    return None if include or held.empty else shapely.union_all(held.geometry.values)


def usable_mask(grid, window: Window, held: shapely.Geometry | None) -> np.ndarray:
    """Valid pixels of a window outside the held-out ground ``held`` (EPSG:3857)."""
    valid = grid.valid(window)
    if held is not None and valid.any():
        valid &= ~block_area_mask(held, grid, window)
    return valid


def scene_held(grid, held: shapely.Geometry | None) -> shapely.Geometry | None:
    """The part of ``held`` over the scene (EPSG:3857), so that each window rasterises only that; None if none."""
    if held is None:
        return None
    bounds = reproject(shapely.box(*grid.ds.bounds), grid.ds.crs, "EPSG:3857", densify_parts=64)
    part = held.intersection(bounds)
    return None if part.is_empty else part


def plan_tiles(scenes: pd.DataFrame, held: shapely.Geometry | None, pcfg: PreprocessConfig,
               cfg: PretrainConfig) -> list[tuple[int, Window, float]]:
    """Pass 1 (masks only): (scene row, window, usable fraction) of every tile with enough usable ground."""
    plan, t = [], cfg.tile_px
    for i, (_, row) in enumerate(track(scenes.iterrows(), "pretrain: plan tiles", total=len(scenes))):
        with scene_grid(row, pcfg) as grid:
            part = scene_held(grid, held)
            area = grid.valid_window() or Window(0, 0, grid.shape[1], grid.shape[0])
            for win in chip_windows(area, t, t):
                frac = float(usable_mask(grid, win, part).mean())
                if frac >= cfg.min_valid_frac:
                    plan.append((i, win, frac))
    return plan


def read_ground(raw_root: Path, selection_dir: Path, stretch: Stretch, pcfg: PreprocessConfig,
                cfg: PretrainConfig) -> Ground:
    """The tiles to learn on (at most ``max_tiles``, drawn evenly with the seed), read and stretched as chips are."""
    scenes = pretrain_scenes(raw_root, selection_dir, cfg.scenes)
    scenes = scenes[[_has_bands(row, pcfg.bands) for _, row in scenes.iterrows()]].reset_index(drop=True)
    if scenes.empty:
        raise GeofoundryError(f"pretrain: no scene carries the bands {pcfg.bands} (preprocess.bands)")
    held = eval_ground(gpd.read_parquet(selection_dir / "blocks.parquet"), cfg.include_eval_ground)
    plan = plan_tiles(scenes, held, pcfg, cfg)
    if not plan:
        raise GeofoundryError(f"pretrain: no {cfg.tile_px} px tile has {cfg.min_valid_frac:.0%} usable ground: lower "
                              "pretrain.tile_px or pretrain.min_valid_frac")
    if len(plan) > cfg.max_tiles:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(plan), cfg.max_tiles, replace=False))
        plan = [plan[k] for k in keep]
    t, n = cfg.tile_px, len(plan)
    tiles, usable = np.zeros((n, len(pcfg.bands), t, t), np.uint8), np.zeros((n, t, t), bool)
    rows = []
    for i, group in pd.Series(range(n)).groupby([p[0] for p in plan], sort=True):
        row = scenes.iloc[i]
        with scene_grid(row, pcfg) as grid:
            part = scene_held(grid, held)
            for k in track(group, f"pretrain: tiles of {row['scene_id']}"):
                win = plan[k][1]
                usable[k] = usable_mask(grid, win, part)
                tiles[k] = stretch.apply(grid.bands(win)) * usable[k]
                rows.append({"tile": k, "scene_id": row["scene_id"], "gsd_m": float(row["gsd_m"]),
                             "col_off": int(win.col_off), "row_off": int(win.row_off), "usable_frac": plan[k][2]})
    index = pd.DataFrame(rows).sort_values("tile", ignore_index=True)
    log.info("pretrain: %d tiles of %d px from %d scenes (%s)", n, t, index["scene_id"].nunique(),
             "validation and test ground included" if held is None else "validation and test ground left out")
    return Ground(tiles, usable, index)


def _has_bands(row: pd.Series, bands: list[str]) -> bool:
    names = str(row["band_names"]).split("|")
    if all(b in names for b in bands):
        return True
    log.warning("pretrain: %s lacks the bands %s, left out", row["scene_id"], [b for b in bands if b not in names])
    return False
