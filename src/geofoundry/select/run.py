"""The select stage: filter scenes, scan them (footprint, contexts, labels per block), apply the geofence and the
context ranges, split the blocks, write the selection."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd

from ..catalog.scan import scan_scene
from ..config import CONTEXTS, SelectConfig
from ..errors import GeofoundryError
from ..io.atomic import atomic_path, write_json
from ..io.grid import GRID_CRS, block_id
from ..io.labelled import scene_area
from ..io.raster import bounded_gdal_cache
from ..io.raw import check_image, load_scenes, select_classes
from ..progress import track
from .filters import apply_filters, filter_blocks, filter_scenes
from .geofence import clip_cells, fence_3857
from .labelled import labelled_area_m2
from .pinned import pinned_splits
from .split import SPLITS, assign_splits
from .summary import split_summary

log = logging.getLogger(__name__)


def class_table(prefixes: list[str]) -> dict:
    """classes.json: class k ↔ names[k]; 0 is background."""
    return {"names": ["background"] + [p.split("/")[-1] for p in prefixes], "paths": [None, *prefixes]}


def target_counts(cells: gpd.GeoDataFrame, labels: gpd.GeoDataFrame, cfg: SelectConfig) -> pd.DataFrame:
    """Objects of each target class per cell (``objects:<name>``) and in all (``n_objects``)."""
    size, names = cfg.split.block_size_m, class_table(cfg.classes)["names"][1:]
    picked = select_classes(labels, cfg.classes)
    pts = picked.geometry.representative_point()
    keys = pd.DataFrame({"ix": (pts.x // size).astype(int), "iy": (pts.y // size).astype(int),
                         "class_id": picked["class_id"]})
    table = keys.value_counts().unstack("class_id", fill_value=0).reindex(columns=range(1, len(names) + 1),
                                                                           fill_value=0)
    table.columns = [f"objects:{n}" for n in names]
    out = cells[["ix", "iy"]].merge(table, left_on=["ix", "iy"], right_index=True, how="left").fillna(0)
    out = out.drop(columns=["ix", "iy"]).astype(int)
    out["n_objects"] = out.sum(axis=1)
    return out


def scan_selected(scenes: pd.DataFrame, cfg: SelectConfig) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    """Scan every scene; keep scenes with enough valid pixels, then their (scene, block) rows inside the geofence."""
    fence = fence_3857(cfg.geofence)
    per_scene, valid_frac = [], []
    for _, row in track(scenes.iterrows(), "select: scan scenes", total=len(scenes)):
        check_image(row)
        scan = scan_scene(row, cfg.split.block_size_m, cfg.context_gsd_m)
        valid_frac.append(1 - scan.contexts.get("nodata", 1.0))
        cells = clip_cells(scan.cells, scan.footprint, fence)
        cells["labelled_area_m2"] = labelled_area_m2(cells, scan.footprint, scene_area(row, GRID_CRS))
        cells = pd.concat([cells, target_counts(cells, scan.labels, cfg)], axis=1)
        cells["scene_id"], cells["site"], cells["group"] = row["scene_id"], row["site"], row["group"]
        per_scene.append(cells)
    scenes = scenes.assign(valid_frac=valid_frac)
    keep = (scenes["valid_frac"] >= cfg.min_valid_frac).to_numpy()
    apply_filters(scenes, [("select.min_valid_frac", lambda d: d["valid_frac"] >= cfg.min_valid_frac)], "scenes")
    cells = pd.concat([c for c, k in zip(per_scene, keep) if k], ignore_index=True)
    if cells.empty:
        raise GeofoundryError("the selection is empty: select.geofence leaves no valid ground in the selected scenes")
    cells = filter_blocks(gpd.GeoDataFrame(cells, geometry="geometry", crs=GRID_CRS), cfg)
    return scenes[keep].reset_index(drop=True), cells


def merge_blocks(per_scene: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per cell: scenes of the same ground share it; areas and counts take the max, contexts the mean."""
    counts = [c for c in per_scene.columns if c.startswith("objects:")]
    agg = {"valid_area_m2": "max", "labelled_area_m2": "max", "n_objects": "max", **{c: "max" for c in counts},
           **{c: "mean" for c in CONTEXTS}, "site": "first", "group": "first"}
    grouped = per_scene.groupby(["ix", "iy"], sort=True)
    blocks = grouped.agg(agg).join(grouped["scene_id"].nunique().rename("n_scenes")).reset_index()
    blocks.insert(0, "block_id", [block_id(ix, iy) for ix, iy in zip(blocks["ix"], blocks["iy"])])
    geom = grouped["geometry"].first().reset_index(drop=True)  # the same cell (clipped the same way) in every scene
    return gpd.GeoDataFrame(blocks, geometry=geom.values, crs=GRID_CRS)


def run(cfg: SelectConfig, raw_root: Path, out_dir: Path, metrics_path: Path, pinned: Path | None = None) -> dict:
    """Write ``scenes.parquet``, ``blocks.parquet``, ``classes.json`` to ``out_dir`` and split stats to metrics.

    ``pinned``: an earlier ``blocks.parquet`` whose blocks keep their split (``select.split.pinned``).
    """
    with bounded_gdal_cache():
        scenes, per_scene = scan_selected(filter_scenes(load_scenes(raw_root), cfg), cfg)
    scenes = scenes[scenes["scene_id"].isin(per_scene["scene_id"])].reset_index(drop=True)
    blocks = merge_blocks(per_scene)
    fixed = pinned_splits(blocks, pinned, cfg.split.block_size_m) if pinned else None
    if fixed is not None:
        log.info("%d of %d blocks keep their split from %s", fixed.notna().sum(), len(blocks), pinned)
    blocks["split"] = assign_splits(blocks, cfg.split.fractions, cfg.split.seed, cfg.split.balance, fixed).values
    summary = split_summary(blocks, per_scene, class_table(cfg.classes)["names"][1:])
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
