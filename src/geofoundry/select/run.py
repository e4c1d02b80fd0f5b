"""The select stage: filter scenes, count objects per block, split blocks, write the selection."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd
import rasterio

from ..config import SelectConfig
from ..errors import GeofoundryError
from ..io.atomic import atomic_path, write_json
from ..io.raster import valid_footprint
from ..io.raw import check_image, load_scenes, read_labels, select_classes
from ..progress import track
from ..io.geometry import reproject
from .blocks import GRID_CRS, block_id, count_objects, scene_cells
from .filters import filter_scenes
from .split import SPLITS, assign_splits

log = logging.getLogger(__name__)


def class_table(prefixes: list[str]) -> dict:
    """classes.json: class k ↔ names[k]; 0 is background."""
    return {"names": ["background"] + [p.split("/")[-1] for p in prefixes], "paths": [None, *prefixes]}


def scene_blocks(row: pd.Series, cfg: SelectConfig) -> gpd.GeoDataFrame:
    """Cells of one scene with valid area and object counts."""
    with rasterio.open(row["image_path"]) as ds:
        footprint = reproject(valid_footprint(ds), ds.crs, GRID_CRS)
    cells = scene_cells(footprint, cfg.split.block_size_m)
    labels = select_classes(read_labels(row["labels_path"]), cfg.classes).to_crs(GRID_CRS)
    labels = labels[labels.intersects(footprint)]
    cells["n_objects"] = count_objects(cells, labels, cfg.split.block_size_m)
    cells["scene_id"], cells["site"], cells["group"] = row["scene_id"], row["site"], row["group"]
    return cells


def merge_blocks(per_scene: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per cell: scenes of the same ground share it; area and counts take the max over those scenes."""
    grouped = per_scene.groupby(["ix", "iy"], sort=True)
    blocks = grouped.agg(valid_area_m2=("valid_area_m2", "max"), n_objects=("n_objects", "max"),
                         n_scenes=("scene_id", "nunique"), site=("site", "first"), group=("group", "first"))
    blocks = blocks.reset_index()
    blocks.insert(0, "block_id", [block_id(ix, iy) for ix, iy in zip(blocks["ix"], blocks["iy"])])
    geom = grouped["geometry"].first().reset_index(drop=True)
    return gpd.GeoDataFrame(blocks, geometry=geom.values, crs=GRID_CRS)


def split_summary(blocks: gpd.GeoDataFrame, per_scene: gpd.GeoDataFrame) -> dict:
    per_scene = per_scene.merge(blocks[["ix", "iy", "split"]], on=["ix", "iy"])
    out = {}
    for split in SPLITS:
        b = blocks[blocks["split"] == split]
        out[split] = {
            "blocks": int(len(b)),
            "scenes": int(per_scene.loc[per_scene["split"] == split, "scene_id"].nunique()),
            "objects": int(b["n_objects"].sum()),
            "valid_km2": round(float(b["valid_area_m2"].sum()) / 1e6, 4),
            "positive_blocks": int((b["n_objects"] > 0).sum()),
        }
    return out


def run(cfg: SelectConfig, raw_root: Path, out_dir: Path, metrics_path: Path) -> dict:
    """Write ``scenes.parquet``, ``blocks.parquet``, ``classes.json`` to ``out_dir`` and split stats to metrics."""
    scenes = filter_scenes(load_scenes(raw_root), cfg)
    for _, row in scenes.iterrows():
        check_image(row)
    per_scene = pd.concat([scene_blocks(row, cfg) for _, row in track(scenes.iterrows(), "select: blocks",
                                                                         total=len(scenes))], ignore_index=True)
    per_scene = gpd.GeoDataFrame(per_scene, geometry="geometry", crs=GRID_CRS)
    if per_scene.empty:
        raise GeofoundryError(f"{raw_root}: the selected scenes have no valid pixels")
    blocks = merge_blocks(per_scene)
    blocks["split"] = assign_splits(blocks, cfg.split.fractions, cfg.split.seed).values
    summary = split_summary(blocks, per_scene)
    for split in SPLITS:
        if cfg.split.fractions[split] > 0 and summary[split]["blocks"] == 0:
            raise GeofoundryError(
                f"split {split!r} got no block ({len(blocks)} blocks in all): lower select.split.block_size_m"
            )
    scene_splits = per_scene.merge(blocks[["ix", "iy", "split"]], on=["ix", "iy"]).groupby("scene_id")["split"]
    scenes["splits"] = scenes["scene_id"].map(lambda s: ",".join(sorted(scene_splits.get_group(s).unique())))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "scenes.parquet") as tmp:
        scenes.to_parquet(tmp, index=False)
    with atomic_path(out_dir / "blocks.parquet") as tmp:
        blocks.to_parquet(tmp, index=False)
    write_json(out_dir / "classes.json", class_table(cfg.classes))
    metrics = {"scenes": int(len(scenes)), "blocks": int(len(blocks)), "split": summary}
    write_json(metrics_path, metrics)
    log.info("selected %d scenes, %d blocks: %s", len(scenes), len(blocks),
             {k: v["blocks"] for k, v in summary.items()})
    return metrics
