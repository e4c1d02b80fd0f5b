"""``geofoundry al rank``: score the unlabelled train ground with a model and hand out the tiles worth labelling next.

Reads the selection (``data/selection``: blocks and their splits, scenes with their labelled areas), the model's input
spec (``stats.json``) and, for the diverse strategies, the labelled train chips (``data/chips``); writes the handout
(:mod:`.handout`) and ``ranking.csv`` (every candidate, picked or not, with its score) into ``out_dir``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from ..config import AlConfig, RpcConfig
from ..errors import GeofoundryError
from ..io.atomic import atomic_path
from ..io.raster import bounded_gdal_cache
from ..models.input_spec import InputSpec
from ..progress import track
from .handout import GPKG, LABELS_LAYER, handout
from .score import Scorer
from .strategies import STRATEGIES
from .tiles import Candidate, labelled_chips, preprocess_like, read_candidates, tile_grid

log = logging.getLogger(__name__)


def _refuse_drawn_labels(out_dir: Path) -> None:
    """An earlier handout in ``out_dir`` whose labels layer has features is not overwritten."""
    path = out_dir / GPKG
    if path.is_file() and LABELS_LAYER in pyogrio.list_layers(path)[:, 0]:
        n = pyogrio.read_info(path, layer=LABELS_LAYER)["features"]
        if n:
            raise GeofoundryError(f"{path}: its {LABELS_LAYER!r} layer holds {n} drawn label(s); import them first "
                                  f"(geofoundry al import {path}) or choose another --out")


def rank(cfg: AlConfig, prober, spec: InputSpec, selection_dir: Path, chips_dir: Path | None, block_size_m: float,
         rpc: RpcConfig, out_dir: Path) -> gpd.GeoDataFrame:
    """Rank the candidate tiles with ``prober`` (see :mod:`.score`) by ``cfg.strategy``; write the handout of the
    ``cfg.n`` best into ``out_dir``; return its ``tiles`` layer."""
    _refuse_drawn_labels(out_dir)
    strategy = STRATEGIES[cfg.strategy]
    scenes = pd.read_parquet(selection_dir / "scenes.parquet")
    tiles = tile_grid(gpd.read_parquet(selection_dir / "blocks.parquet"), cfg.tiles_per_block, block_size_m)
    if tiles.empty:
        raise GeofoundryError(f"{selection_dir / 'blocks.parquet'}: no train block, so no ground to propose")
    grid_cfg = preprocess_like(spec, rpc)
    found: list[Candidate] = []
    scorer = Scorer(prober, strategy, spec.classes)
    with bounded_gdal_cache():
        for chips in track(read_candidates(scenes, tiles, grid_cfg, spec, cfg.chip, cfg.min_unlabelled_frac,
                                           cfg.batch_size, found), f"al rank: {cfg.strategy}"):
            scorer.add(chips.images, chips.wanted, chips.owner)
    if not found:
        raise GeofoundryError(
            f"no unlabelled ground in the {tiles['block_id'].nunique()} train blocks: every scene is labelled "
            f"there (scenes.csv's labelled_area; empty means labelled everywhere), or less than "
            f"al.min_unlabelled_frac={cfg.min_unlabelled_frac} of each tile is unlabelled")
    if strategy.diverse and chips_dir is not None:
        for chips in labelled_chips(chips_dir, tiles, spec.ignore_index, cfg.batch_size):
            keep = chips.owner >= 0
            scorer.add_labelled(chips.images[keep], chips.wanted[keep], chips.owner[keep])
    table = candidates_table(found, tiles, scorer)
    best = table.sort_values(["tile", "wanted_px"], ascending=[True, False]).drop_duplicates("tile").index.to_numpy()
    picks = scorer.pick(cfg.n, cfg.seed, best)
    table.loc[[p.index for p in picks], "rank"] = np.arange(1, len(picks) + 1)
    table.loc[[p.index for p in picks], "score"] = [p.score for p in picks]
    table.loc[[p.index for p in picks], "reason"] = [p.reason for p in picks]
    picked = table.loc[[p.index for p in picks]].assign(strategy=cfg.strategy)
    picked["rank"] = picked["rank"].astype(int)
    columns = ["rank", "tile_id", "block_id", "scene_id", "strategy", "score", "reason", "uncertainty",
               "unlabelled_m2", "geometry", "crs"]
    with bounded_gdal_cache(), atomic_path(out_dir) as tmp:  # an earlier handout there is replaced as a whole
        tmp.mkdir(parents=True)
        out = handout(picked[columns], scenes, grid_cfg, tmp)
        table.drop(columns=["geometry", "tile"]).sort_values(["rank", "uncertainty"], ascending=[True, False],
                                                              na_position="last").to_csv(tmp / "ranking.csv",
                                                                                         index=False)
    log.info("handed out %d of %d candidate tiles → %s", len(picks), len(best), out_dir)
    return out


def candidates_table(found: list[Candidate], tiles: gpd.GeoDataFrame, scorer: Scorer) -> pd.DataFrame:
    """One row per (tile, scene) candidate with its uncertainty (when the strategy has one) and unlabelled area."""
    table = pd.DataFrame([asdict(c) for c in found])
    table["tile_id"] = tiles["tile_id"].to_numpy()[table["tile"]]
    table["block_id"] = tiles["block_id"].to_numpy()[table["tile"]]
    table["uncertainty"] = scorer.candidates.scores()[: len(found)] if scorer.strategy.uncertainty else np.nan
    table["unlabelled_m2"] = table["wanted_px"] * table["pixel_m2"]
    table["rank"], table["score"], table["reason"] = np.nan, np.nan, ""
    return table
