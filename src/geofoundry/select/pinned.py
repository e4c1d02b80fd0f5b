"""Splits kept from an earlier selection's blocks file, so that a selection of other scenes of the same ground (other
zooms, sensors or dates) splits it alike: its blocks keep their split and only new blocks are assigned."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow
import shapely

from ..errors import GeofoundryError
from ..io.grid import GRID_CRS, cell_polygon
from .split import SPLITS

COLUMNS = {"block_id", "ix", "iy", "split", "geometry"}


def read_pinned(path: Path, block_size_m: float) -> pd.Series:
    """The split of each block of the blocks file ``path``, by ``block_id``.

    The file must be a select stage's ``blocks.parquet`` made on the same grid (``block_size_m``).
    """
    try:
        pinned = gpd.read_parquet(path)
    except (OSError, ValueError, pyarrow.ArrowException) as e:
        raise GeofoundryError(f"{path}: not a blocks file ({e})") from None
    missing = COLUMNS - set(pinned.columns)
    if missing:
        raise GeofoundryError(f"{path}: lacks the column(s) {sorted(missing)}; pin a data/selection/blocks.parquet")
    unknown = set(pinned["split"]) - set(SPLITS)
    if unknown:
        raise GeofoundryError(f"{path}: unknown split(s) {sorted(map(str, unknown))}; expected {list(SPLITS)}")
    if pinned.crs is None or pinned.crs != GRID_CRS:
        found = pinned.crs.to_string() if pinned.crs is not None else "no CRS"
        raise GeofoundryError(f"{path}: blocks must be in {GRID_CRS}, found {found}")
    cells = [cell_polygon(ix, iy, block_size_m).buffer(block_size_m * 1e-6)
             for ix, iy in zip(pinned["ix"], pinned["iy"])]
    if not shapely.covered_by(pinned.geometry.values, cells).all():
        raise GeofoundryError(f"{path}: its blocks are not cells of the {block_size_m:g} m grid "
                              f"(select.split.block_size_m); it was made with another block size")
    return pinned.set_index("block_id")["split"]


def pinned_splits(blocks: gpd.GeoDataFrame, path: Path, block_size_m: float) -> pd.Series:
    """The split that the blocks file ``path`` gives each of ``blocks`` (by ``block_id``); None where it has none."""
    return blocks["block_id"].map(read_pinned(path, block_size_m))
