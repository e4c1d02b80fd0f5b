"""Validation truth and the score of a trial's objects, with the evaluate stage's area, matching and figures.

The evaluation area of a validation map is its valid pixels (the validation blocks of the scene) inside the scene's
labelled area. A scene's label file holds the polygons of every split; the truth kept is cut to that area as soon as
it is read (as the evaluate stage cuts the test truth to the test area), so no polygon of another split reaches a
trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from ..config import EvaluateConfig
from ..evaluate.scene import (ClassObjects, Grid, clipped, count_matches, counted, object_metrics, pooled, scene_grid,
                              truth_in)

DIGITS = 6


@dataclass(frozen=True)
class ValScene:
    """One validation map with its counted truth."""

    scene_id: str
    grid: Grid
    truth: gpd.GeoDataFrame  # counted truth objects (in the area, >= evaluate.min_area_m2), in the grid's CRS
    cut: bool  # a labelled area cuts the map's valid pixels: objects are cut at its edge, as the truth is


def val_scene(row: pd.Series, map_path: Path, class_paths: list[str], cfg: EvaluateConfig) -> ValScene:
    """The evaluation area of ``map_path`` and the scene's truth objects in it."""
    with rasterio.open(map_path) as ds:
        grid, cut = scene_grid(ds, row)
    return ValScene(row["scene_id"], grid, counted(truth_in(row, grid, class_paths), grid, cfg.min_area_m2), cut)


def score_scene(scene: ValScene, objects: gpd.GeoDataFrame, n_classes: int, cfg: EvaluateConfig) -> list[ClassObjects]:
    """Counts and ranked predictions per class of one map's objects (as the postprocess stage leaves them)."""
    objects = objects[objects.geometry.notna() & ~objects.geometry.is_empty].to_crs(scene.grid.crs)
    if scene.cut:
        objects = clipped(objects, scene.grid)
    return count_matches(scene.truth, counted(objects, scene.grid, cfg.min_area_m2), n_classes,
                         cfg.iou_threshold)[0]


def figures(per_scene: list[list[ClassObjects]]) -> dict:
    """Object precision, recall, F1, AP and counts pooled over scenes and classes (micro average)."""
    metrics = object_metrics(pooled([o for scene in per_scene for o in scene] or
                                    [ClassObjects(0, 0, 0, np.zeros(0), np.zeros(0, bool))]))
    return {k: round(v, DIGITS) if isinstance(v, float) else v for k, v in metrics.items()}
