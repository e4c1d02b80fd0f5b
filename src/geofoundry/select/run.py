"""The select stage: filter scenes, scan them as the catalog does (footprint, contexts, labels per block), run the
selection query on those rows (valid fraction, geofence, context ranges, split), write the selection."""

from __future__ import annotations

import logging
from pathlib import Path

from ..catalog.build import build_catalog
from ..config import SelectConfig
from ..io.atomic import atomic_path, write_json
from ..io.raster import bounded_gdal_cache
from ..io.raw import load_scenes
from .filters import filter_scenes
from .geofence import fence_3857
from .pinned import read_pinned
from .query import class_table, query

log = logging.getLogger(__name__)


def run(cfg: SelectConfig, raw_root: Path, out_dir: Path, metrics_path: Path, pinned: Path | None = None) -> dict:
    """Write ``scenes.parquet``, ``blocks.parquet``, ``classes.json`` to ``out_dir`` and split stats to metrics.

    ``pinned``: an earlier ``blocks.parquet`` whose blocks keep their split (``select.split.pinned``).
    """
    raw = filter_scenes(load_scenes(raw_root), cfg)
    fence = fence_3857(cfg.geofence)
    fixed = read_pinned(pinned, cfg.split.block_size_m) if pinned else None
    with bounded_gdal_cache():
        scanned, cells = build_catalog(raw, cfg.split.block_size_m, cfg.context_gsd_m, "select")
    sel = query(scanned, cells, cfg, fence, fixed)
    kept = sel.scenes.set_index("scene_id")
    scenes = raw[raw["scene_id"].isin(kept.index)].reset_index(drop=True)
    scenes["valid_frac"] = scenes["scene_id"].map(kept["valid_frac"])
    scenes["splits"] = scenes["scene_id"].map(kept["splits"])
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "scenes.parquet") as tmp:
        scenes.to_parquet(tmp, index=False)
    with atomic_path(out_dir / "blocks.parquet") as tmp:
        sel.blocks.to_parquet(tmp, index=False)
    write_json(out_dir / "classes.json", class_table(cfg.classes))
    write_json(metrics_path, sel.metrics)
    log.info("selected %d scenes, %d blocks: %s", len(scenes), len(sel.blocks),
             {k: v["blocks"] for k, v in sel.summary.items()})
    return sel.metrics
