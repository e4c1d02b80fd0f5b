"""The preprocess stage: fit the stretch on train pixels, then cut train/val chips into memory-mapped arrays."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio.features import geometry_mask
from rasterio.windows import Window

from ..config import PreprocessConfig
from ..errors import GeofoundryError
from ..io.atomic import atomic_path
from ..io.geometry import reproject
from ..io.labelled import area_mask, scene_area
from ..io.raster import GDAL_CACHE_MB, band_indexes, bounded_gdal_cache
from ..io.raw import read_labels, select_classes
from ..io.tiling import block_window, chip_windows
from ..io.warp import open_scene
from ..models.input_spec import InputSpec
from ..models.stretch import Stretch
from ..progress import track
from .chips import NpyWriter
from .rasterize import LabelBurner

log = logging.getLogger(__name__)
CHIP_SPLITS = ("train", "val")


@dataclass(frozen=True)
class ChipRef:
    split: str
    scene_id: str
    block_id: str
    window: Window
    valid_frac: float


def scene_grid(row: pd.Series, cfg: PreprocessConfig):
    """The scene's bands by name on the model grid: target GSD and CRS, orthorectified when it carries only RPCs."""
    indexes = band_indexes(row["image_path"], row["band_names"].split("|"), cfg.bands)
    return open_scene(row["image_path"], float(row["gsd_m"]), cfg.gsd_m, indexes, cfg.resampling, crs=cfg.crs,
                      dem=cfg.rpc.dem, height=cfg.rpc.height)


def block_area_mask(geom_3857, grid, window: Window) -> np.ndarray:
    """True where a window's pixels fall inside a block (its edges may be skewed in a non-Mercator CRS)."""
    geom = reproject(geom_3857, "EPSG:3857", grid.ds.crs, densify_parts=64)
    transform = grid.ds.window_transform(window)
    return geometry_mask([geom], out_shape=(int(window.height), int(window.width)), transform=transform, invert=True)


def scene_blocks(row: pd.Series, blocks: gpd.GeoDataFrame, grid):
    """(block row, pixel window) for every block that this scene covers."""
    bounds = reproject(shapely.box(*grid.ds.bounds), grid.ds.crs, "EPSG:3857", densify_parts=64)
    for _, block in blocks[blocks.intersects(bounds)].iterrows():
        geom = reproject(block.geometry, "EPSG:3857", grid.ds.crs, densify_parts=64)
        win = block_window(geom, grid.transform, grid.shape)
        if win is not None:
            yield block, win


def fit_stretch(scenes: pd.DataFrame, blocks: gpd.GeoDataFrame, cfg: PreprocessConfig) -> Stretch:
    """Percentiles of valid pixels of the train blocks, sampled evenly across blocks (bounded memory)."""
    train = blocks[blocks["split"] == "train"]
    per_block = max(1, cfg.stretch.sample_pixels // max(1, len(train) * len(scenes)))
    rng = np.random.default_rng(0)
    samples = []
    for _, row in track(scenes.iterrows(), "preprocess: stretch", total=len(scenes)):
        with scene_grid(row, cfg) as grid:
            for block, win in scene_blocks(row, train, grid):
                data, valid = grid.read(win)
                valid &= block_area_mask(block.geometry, grid, win)
                pix = data[:, valid]
                if pix.shape[1] > per_block:
                    pix = pix[:, rng.choice(pix.shape[1], per_block, replace=False)]
                samples.append(pix)
    if not samples or sum(s.shape[1] for s in samples) == 0:
        raise GeofoundryError("no valid train pixels to fit the stretch: check the selection")
    return Stretch.fit(np.concatenate(samples, axis=1), cfg.stretch.low_pct, cfg.stretch.high_pct)


def labelled(valid: np.ndarray, area, grid, window: Window) -> np.ndarray:
    """``valid`` pixels of a window that lie in the scene's labelled ``area`` (None: labelled everywhere)."""
    inside = area_mask(area, grid.ds.window_transform(window), valid.shape)
    return valid if inside is None else valid & inside


def plan_chips(scenes: pd.DataFrame, blocks: gpd.GeoDataFrame, cfg: PreprocessConfig) -> list[ChipRef]:
    """Pass 1 (masks only): every chip window with enough valid, labelled pixels inside its block."""
    refs, size = [], cfg.chip.size
    chip_blocks = blocks[blocks["split"].isin(CHIP_SPLITS)]
    for _, row in track(scenes.iterrows(), "preprocess: plan chips", total=len(scenes)):
        with scene_grid(row, cfg) as grid:
            area = scene_area(row, grid.ds.crs)
            for block, bwin in scene_blocks(row, chip_blocks, grid):
                for win in chip_windows(bwin, size, cfg.chip.stride):
                    _, valid = grid.read(win)
                    inside = valid & block_area_mask(block.geometry, grid, win)
                    frac = float(labelled(inside, area, grid, win).mean())
                    if frac >= cfg.chip.min_valid_frac and frac > 0:
                        refs.append(ChipRef(block["split"], row["scene_id"], block["block_id"], win, frac))
    return refs


def write_chips(refs: list[ChipRef], scenes: pd.DataFrame, blocks: gpd.GeoDataFrame, cfg: PreprocessConfig,
                stretch: Stretch, class_paths: list[str], out_dir: Path) -> pd.DataFrame:
    """Pass 2: read, stretch and label every planned chip straight into preallocated per-split .npy files."""
    size, n_bands = cfg.chip.size, len(cfg.bands)
    geoms = blocks.set_index("block_id").geometry
    rows = []
    for split in CHIP_SPLITS:
        split_refs = [r for r in refs if r.split == split]
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        images = NpyWriter(out_dir / split / "images.npy", (len(split_refs), n_bands, size, size))
        labels = NpyWriter(out_dir / split / "labels.npy", (len(split_refs), size, size))
        instances = NpyWriter(out_dir / split / "instances.npy", (len(split_refs), size, size), np.uint16)
        i = 0
        by_id = scenes.set_index("scene_id", drop=False)
        for scene_id, group in pd.Series(split_refs).groupby([r.scene_id for r in split_refs], sort=False):
            row = by_id.loc[scene_id]
            with scene_grid(row, cfg) as grid:
                truth = select_classes(read_labels(row["labels_path"]), class_paths).to_crs(grid.ds.crs)
                burner = LabelBurner(truth, cfg.border_ignore_px)
                area = scene_area(row, grid.ds.crs)
                for ref in track(group, f"preprocess: {split} chips of {scene_id}"):
                    data, valid = grid.read(ref.window)
                    valid &= block_area_mask(geoms[ref.block_id], grid, ref.window)
                    t = grid.ds.window_transform(ref.window)
                    mask = burner.burn(t, (size, size), labelled(valid, area, grid, ref.window), cfg.ignore_index)
                    images[i] = stretch.apply(data) * valid
                    labels[i] = mask
                    instances[i] = burner.instances(t, (size, size)) * (mask != cfg.ignore_index)
                    rows.append({"split": split, "index": i, "scene_id": scene_id, "block_id": ref.block_id,
                                 "col_off": int(ref.window.col_off), "row_off": int(ref.window.row_off),
                                 "size": size, "valid_frac": ref.valid_frac,
                                 "positive_frac": float(((mask > 0) & (mask != cfg.ignore_index)).mean()),
                                 "crs": grid.ds.crs.to_string(), "transform": json.dumps(list(t)[:6])})
                    i += 1
        for writer in (images, labels, instances):
            writer.close()
    return pd.DataFrame(rows)


def run(cfg: PreprocessConfig, selection_dir: Path, out_dir: Path, gdal_cache_mb: int = GDAL_CACHE_MB) -> dict:
    """Write ``{train,val}/{images,labels,instances}.npy``, ``index.parquet`` and ``stats.json``.

    GDAL's block cache is capped at ``gdal_cache_mb`` so that memory stays bounded whatever the scene size.
    """
    with bounded_gdal_cache(gdal_cache_mb):
        return _run(cfg, selection_dir, out_dir)


def _run(cfg: PreprocessConfig, selection_dir: Path, out_dir: Path) -> dict:
    scenes = pd.read_parquet(selection_dir / "scenes.parquet")
    blocks = gpd.read_parquet(selection_dir / "blocks.parquet")
    classes = json.loads((selection_dir / "classes.json").read_text())
    for _, row in scenes.iterrows():
        band_indexes(row["image_path"], row["band_names"].split("|"), cfg.bands)
    stretch = fit_stretch(scenes, blocks, cfg)
    log.info("stretch low=%s high=%s", stretch.low, stretch.high)
    refs = plan_chips(scenes, blocks, cfg)
    for split in CHIP_SPLITS:
        if not any(r.split == split for r in refs):
            raise GeofoundryError(f"no {split} chip has valid_frac >= {cfg.chip.min_valid_frac}: "
                                  "lower preprocess.chip.min_valid_frac or chip.size")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        index = write_chips(refs, scenes, blocks, cfg, stretch, classes["paths"][1:], tmp)
        index.to_parquet(tmp / "index.parquet", index=False)
        dtypes = {str(d) for d in scenes["dtype"]}
        spec = InputSpec(bands=list(cfg.bands), gsd_m=cfg.gsd_m, source_dtype=",".join(sorted(dtypes)),
                         low=list(stretch.low), high=list(stretch.high), classes=classes["names"],
                         class_paths=classes["paths"], ignore_index=cfg.ignore_index, resampling=cfg.resampling,
                         crs=cfg.crs)
        spec.save(tmp / "stats.json")
    counts = index.groupby("split").agg(chips=("index", "size"), positive=("positive_frac", lambda s: int((s > 0).sum())))
    summary = {s: {k: int(v) for k, v in counts.loc[s].items()} for s in counts.index}
    log.info("chips: %s", summary)
    return summary
