"""The selection query on catalog rows, with no I/O: the select stage runs it on the scenes it has just scanned,
the dashboard on the catalog it holds in memory; both get the same blocks, splits and counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..catalog.scan import COUNT_PREFIX
from ..config import CONTEXTS, SelectConfig, SplitConfig
from ..errors import GeofoundryError
from .filters import apply_filters, filter_blocks, filter_scenes
from .geofence import clip_cells
from .split import SPLITS, assign_splits
from .summary import split_summary

log = logging.getLogger(__name__)


@dataclass
class Selection:
    scenes: gpd.GeoDataFrame  # the scene rows kept, with valid_frac and splits (e.g. "test,train")
    per_scene: gpd.GeoDataFrame  # (scene, block) rows kept, clipped to the geofence, with objects:<name>, n_objects
    #                              and the split of their block
    blocks: gpd.GeoDataFrame  # one row per grid cell: merged rows, with its split
    summary: dict  # split_summary: counts per split

    @property
    def metrics(self) -> dict:
        """What ``metrics/select.json`` holds (and ``geofoundry select`` previews)."""
        return {"scenes": int(len(self.scenes)), "blocks": int(len(self.blocks)), "split": self.summary}


def class_table(prefixes: list[str]) -> dict:
    """classes.json: class k ↔ names[k]; 0 is background."""
    return {"names": ["background"] + [p.split("/")[-1] for p in prefixes], "paths": [None, *prefixes]}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def target_counts(cells: pd.DataFrame, prefixes: list[str]) -> pd.DataFrame:
    """Objects of each target class per row (``objects:<name>``) and in all (``n_objects``), from the catalog's
    ``count:<path>`` columns: an object belongs to the first prefix that matches its class path."""
    def level(path: str):
        col = COUNT_PREFIX + path
        return cells[col].to_numpy() if col in cells else 0

    out = pd.DataFrame(index=cells.index)
    for k, (prefix, name) in enumerate(zip(prefixes, class_table(prefixes)["names"][1:])):
        earlier = prefixes[:k]
        if any(_under(prefix, e) for e in earlier):  # an earlier, more general prefix took all of them
            out[f"objects:{name}"] = 0
            continue
        inner = {e for e in earlier if _under(e, prefix)}  # earlier, more specific prefixes took theirs
        outermost = [e for e in inner if not any(o != e and _under(e, o) for o in inner)]
        out[f"objects:{name}"] = level(prefix) - sum(level(e) for e in outermost)
    out = out.astype(int)
    out["n_objects"] = out.sum(axis=1)
    return out


def _cell_key(ix, iy) -> np.ndarray:
    """One int64 per grid cell, ordered as (ix, iy)."""
    return (np.asarray(ix, dtype=np.int64) << 32) + (np.asarray(iy, dtype=np.int64) + (1 << 31))


def merge_blocks(per_scene: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per cell, in (ix, iy) order: scenes of the same ground share it; areas and counts take the max,
    contexts the mean; id, site, group and (clipped) cell come from its first row. ``per_scene`` holds one row per
    (scene, cell)."""
    counts = [c for c in per_scene.columns if c.startswith("objects:")]
    agg = {"valid_area_m2": "max", "n_objects": "max", **{c: "max" for c in counts}, **{c: "mean" for c in CONTEXTS}}
    first = np.unique(_cell_key(per_scene["ix"], per_scene["iy"]), return_index=True)[1]  # in (ix, iy) order
    if len(first) == len(per_scene):  # one scene on every cell: each row is its block (max and mean of one value)
        blocks = pd.DataFrame({c: per_scene[c].to_numpy()[first] for c in ("ix", "iy", *agg)})
        blocks["n_scenes"] = 1
    else:
        grouped = per_scene.groupby(["ix", "iy"], sort=True)
        blocks = pd.DataFrame(grouped.agg(agg))
        blocks["n_scenes"] = grouped.size().to_numpy()
        blocks = blocks.reset_index()
    for col in ("site", "group"):
        blocks.insert(len(blocks.columns) - 1, col, per_scene[col].to_numpy()[first])
    blocks.insert(0, "block_id", per_scene["block_id"].to_numpy()[first])
    return gpd.GeoDataFrame(blocks, geometry=per_scene.geometry.values[first], crs=per_scene.crs)


def _scene_splits(per_scene: pd.DataFrame) -> pd.Series:
    """Each scene's splits, sorted and comma-joined (``test,train``)."""
    scene, scenes = pd.factorize(per_scene["scene_id"])
    split, splits = pd.factorize(per_scene["split"])
    pairs = np.unique(scene.astype(np.int64) * len(splits) + split)
    names = [[] for _ in scenes]
    for pair in pairs:
        names[pair // len(splits)].append(str(splits[pair % len(splits)]))
    return pd.Series([",".join(sorted(n)) for n in names], index=pd.Index(scenes, name="scene_id"))


def split_blocks(blocks: pd.DataFrame, cfg: SplitConfig, fixed: pd.Series | None) -> pd.Series:
    """Each block's split; with ``holdout_site`` (leave-one-site-out), that site's blocks all go to test and the
    others to train and val in the ratio of their fractions (blocks that ``fixed`` pins keep their split)."""
    if cfg.holdout_site is None:
        return assign_splits(blocks, cfg.fractions, cfg.seed, cfg.balance, fixed)
    held = (blocks["site"] == cfg.holdout_site).to_numpy()
    if not held.any():
        raise GeofoundryError(f"select.split.holdout_site: no selected block is of site {cfg.holdout_site!r}; the "
                              f"selection's sites: {sorted(blocks['site'].astype(str).unique())}")
    if held.all():
        raise GeofoundryError(f"select.split.holdout_site: every selected block is of site {cfg.holdout_site!r}, "
                              "none is left to train on")
    kept = cfg.fractions["train"] + cfg.fractions["val"]
    fractions = {"train": cfg.fractions["train"] / kept, "val": cfg.fractions["val"] / kept, "test": 0.0}
    others = blocks[~held]
    out = pd.Series("test", index=blocks.index, dtype=object)
    out[~held] = assign_splits(others, fractions, cfg.seed, cfg.balance,
                               None if fixed is None else fixed[~held]).values
    log.info("leave-one-site-out: the %d blocks of %s are the test split", held.sum(), cfg.holdout_site)
    return out


def query(scenes: gpd.GeoDataFrame, cells: gpd.GeoDataFrame, cfg: SelectConfig,
          fence: shapely.Geometry | None = None, pinned: pd.Series | None = None) -> Selection:
    """Apply the selection ``cfg`` to catalog rows and split the blocks.

    ``scenes``: scene rows (``site, sensor, gsd_m, acquired``, the ``nodata`` fraction, the valid footprint as
    geometry, EPSG:3857); ``cells``: their (scene, block) rows (``block_id, ix, iy, scene_id, site, group,
    valid_area_m2``, contexts, ``count:<class path>``, the cell as geometry), scanned with ``cfg``'s block size and
    context GSD (:func:`geofoundry.catalog.build_catalog`). ``fence``: the geofence in EPSG:3857
    (:func:`~geofoundry.select.geofence.fence_3857`); ``pinned``: split by block_id of blocks that keep theirs.
    Filters run in order (scenes, valid fraction, geofence, contexts) and the first that leaves nothing is named.
    """
    scenes = filter_scenes(scenes, cfg)
    scenes = scenes.assign(valid_frac=1 - scenes["nodata"].fillna(1.0))
    scenes = apply_filters(scenes, [("select.min_valid_frac", lambda d: d["valid_frac"] >= cfg.min_valid_frac)],
                           "scenes")
    cells = cells[cells["scene_id"].isin(scenes["scene_id"])]
    footprints = scenes.set_index("scene_id").geometry.reindex(cells["scene_id"]).values
    cells = clip_cells(cells.reset_index(drop=True), footprints, fence)
    if cells.empty:
        raise GeofoundryError("the selection is empty: select.geofence leaves no valid ground in the selected scenes")
    cells = gpd.GeoDataFrame(pd.concat([cells, target_counts(cells, cfg.classes)], axis=1), crs=cells.crs)
    cells = filter_blocks(cells, cfg)
    scenes = scenes[scenes["scene_id"].isin(cells["scene_id"].unique())].reset_index(drop=True)
    blocks = merge_blocks(cells)
    fixed = blocks["block_id"].map(pinned) if pinned is not None else None
    if fixed is not None:
        log.info("%d of %d blocks keep their split from select.split.pinned", fixed.notna().sum(), len(blocks))
    blocks["split"] = split_blocks(blocks, cfg.split, fixed).values
    cells["split"] = blocks["split"].to_numpy()[np.searchsorted(_cell_key(blocks["ix"], blocks["iy"]),
                                                                _cell_key(cells["ix"], cells["iy"]))]
    summary = split_summary(blocks, cells, class_table(cfg.classes)["names"][1:])
    for split in SPLITS:
        if cfg.split.fractions[split] > 0 and summary[split]["blocks"] == 0:
            raise GeofoundryError(
                f"split {split!r} got no block ({len(blocks)} blocks in all): lower select.split.block_size_m"
            )
    scenes["splits"] = scenes["scene_id"].map(_scene_splits(cells))
    return Selection(scenes, cells, blocks, summary)
