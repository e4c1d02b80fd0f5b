"""Evaluate one scene: read its prediction raster, predicted vectors and truth labels; count objects and pixels.

The evaluation area is the prediction's valid pixels (the test blocks that were predicted) inside the scene's
labelled area (``scenes.csv`` column ``labelled_area``; without one, everywhere). Predictions hold no
probability outside the test blocks, so a predicted object never reaches past their edge; truth objects are cut to
the area too, and so are predicted objects where a labelled area cuts it: an object that crosses the edge is judged
by its part inside, on both sides. Objects count where their representative point lies in the area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio.errors
import rasterio
import shapely

from ..config import EvaluateConfig
from ..errors import GeofoundryError
from ..io.labelled import area_mask, scene_area
from ..io.raster import mask_outline
from ..io.raw import read_labels, select_classes
from ..io.units import area_m2
from ..models.outputs import footprints, probability_classes
from .objects import average_precision, match, prf
from .pixels import burn, confusion, histograms, in_mask

VECTOR_LAYER = "objects"
POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)


@dataclass(frozen=True)
class Grid:
    """The prediction grid; ``mask`` is the evaluation area (valid pixels ∩ test blocks ∩ labelled area)."""

    crs: rasterio.crs.CRS
    transform: rasterio.Affine
    mask: np.ndarray


@dataclass
class ClassObjects:
    """Object counts of one class in one scene, and the ranked predictions for AP."""

    tp: int
    fp: int
    fn: int
    scores: np.ndarray
    is_tp: np.ndarray


@dataclass
class SceneResult:
    scene_id: str
    site: str
    objects: list[ClassObjects]  # index k - 1 for class k
    confusion: np.ndarray  # (n_classes, n_classes) pixels, background included
    hist: np.ndarray  # (n_classes - 1, 2, 256) probability histograms, see pixels.histograms
    outlines: dict[str, list]  # "tp", "fp" predicted and "fn", "found" truth geometries (overlay, breakdowns)


def read_vectors(path: Path, crs) -> gpd.GeoDataFrame:
    """Predicted polygons (layer ``objects``) with ``class_id`` and ``score``, in ``crs``."""
    try:
        gdf = gpd.read_file(path, layer=VECTOR_LAYER)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as e:
        raise GeofoundryError(f"{path}: cannot read layer {VECTOR_LAYER!r} ({e})") from None
    missing = [c for c in ("class_id", "score") if c not in gdf.columns]
    if missing:
        raise GeofoundryError(f"{path}: layer {VECTOR_LAYER!r} lacks the column(s) {missing}")
    if gdf.crs is None:
        raise GeofoundryError(f"{path}: layer {VECTOR_LAYER!r} has no CRS; postprocess writes the scene CRS")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    return gdf.to_crs(crs).reset_index(drop=True)


def clipped(gdf: gpd.GeoDataFrame, grid: Grid) -> gpd.GeoDataFrame:
    """``gdf``'s polygons cut to the evaluation area (the union of its pixels' squares); those left with no area
    are dropped."""
    cut = shapely.intersection(gdf.geometry.values, mask_outline(grid.mask, grid.transform))
    mixed = ~np.isin(shapely.get_type_id(cut), POLYGONAL)  # an edge touched: collections with lines or points
    cut[mixed] = [shapely.union_all([p for p in shapely.get_parts(g) if p.area > 0]) for g in cut[mixed]]
    out = gdf.set_geometry(cut)
    return out[shapely.area(cut) > 0]


def counted(gdf: gpd.GeoDataFrame, grid: Grid, min_area_m2: float) -> gpd.GeoDataFrame:
    """Objects whose representative point lies in the evaluation area and whose area is >= ``min_area_m2``."""
    keep = in_mask(gdf.geometry.values, grid.mask, grid.transform)
    if min_area_m2 > 0:
        keep &= area_m2(gdf.geometry).to_numpy() >= min_area_m2
    return gdf[keep]


def scene_grid(ds: rasterio.DatasetReader, row: pd.Series) -> tuple[Grid, bool]:
    """The evaluation area of an open prediction raster: its valid pixels inside the scene's labelled area; and
    whether a labelled area cuts it (predicted objects are then cut at its edge too)."""
    mask = ds.dataset_mask() > 0
    labelled = area_mask(scene_area(row, ds.crs), ds.transform, mask.shape)
    return Grid(ds.crs, ds.transform, mask if labelled is None else mask & labelled), labelled is not None


def truth_in(row: pd.Series, grid: Grid, class_paths: list[str]) -> gpd.GeoDataFrame:
    """The scene's truth objects of ``class_paths`` cut to the evaluation area, in the grid's CRS."""
    return clipped(select_classes(read_labels(row["labels_path"]), class_paths).to_crs(grid.crs), grid)


def count_matches(truth: gpd.GeoDataFrame, pred: gpd.GeoDataFrame, n_classes: int,
                  iou_threshold: float) -> tuple[list[ClassObjects], dict[str, list]]:
    """Match the counted ``pred`` objects to the counted ``truth`` objects class by class (ids 1..n_classes - 1):
    the counts and ranked predictions of each class, and the tp/fp (predicted) and fn/found (truth missed and
    matched) geometries."""
    objects, outlines = [], {"tp": [], "fp": [], "fn": [], "found": []}
    for k in range(1, n_classes):
        t_geoms = truth.geometry.values[truth["class_id"].to_numpy() == k]
        p_sel = pred[pred["class_id"] == k]
        p_geoms = p_sel.geometry.values
        p_idx, t_idx, _ = match(t_geoms, p_geoms, iou_threshold)
        is_tp = np.zeros(len(p_geoms), dtype=bool)
        is_tp[p_idx] = True
        found = np.zeros(len(t_geoms), dtype=bool)
        found[t_idx] = True
        objects.append(
            ClassObjects(len(p_idx), int((~is_tp).sum()), int((~found).sum()), p_sel["score"].to_numpy(float), is_tp)
        )
        outlines["tp"] += list(p_geoms[is_tp])
        outlines["fp"] += list(p_geoms[~is_tp])
        outlines["fn"] += list(t_geoms[~found])
        outlines["found"] += list(t_geoms[found])
    return objects, outlines


def pooled(objects: Sequence[ClassObjects]) -> ClassObjects:
    """Counts and ranked predictions summed over classes and scenes."""
    return ClassObjects(sum(o.tp for o in objects), sum(o.fp for o in objects), sum(o.fn for o in objects),
                        np.concatenate([o.scores for o in objects]), np.concatenate([o.is_tp for o in objects]))


def object_metrics(o: ClassObjects) -> dict:
    """Precision, recall, F1, average precision and the counts of pooled objects."""
    ap, _ = average_precision(o.scores, o.is_tp, o.tp + o.fn)
    return {**prf(o.tp, o.fp, o.fn), "ap": ap, "tp": o.tp, "fp": o.fp, "fn": o.fn}


def evaluate_scene(
    row: pd.Series, pred_path: Path, vectors_path: Path, class_names: list[str], class_paths: list[str],
    cfg: EvaluateConfig,
) -> tuple[SceneResult, Grid]:
    """Count object matches, pixel confusion and probability histograms of one scene.

    ``class_names`` and ``class_paths`` are the object classes (background excluded); a border model's raster has
    auxiliary bands after them: pixels are scored on the footprints (``io.outputs.footprints``).
    """
    n_classes = len(class_paths) + 1
    with rasterio.open(pred_path) as ds:
        _, auxiliary = probability_classes(ds, class_names)
        prob = footprints(ds.read(), auxiliary, 255)
        grid, cut = scene_grid(ds, row)
    truth = truth_in(row, grid, class_paths)
    pred = read_vectors(vectors_path, grid.crs)
    if cut:  # unlabelled ground inside the test blocks: predictions are cut at its edge too
        pred = clipped(pred, grid)
    bad = ~pred["class_id"].isin(range(1, n_classes))
    if bad.any():
        ids = sorted(set(pred["class_id"][bad]))
        raise GeofoundryError(f"{vectors_path}: class_id {ids} not in 1..{n_classes - 1} (see classes.json)")

    objects, outlines = count_matches(counted(truth, grid, cfg.min_area_m2), counted(pred, grid, cfg.min_area_m2),
                                      n_classes, cfg.iou_threshold)
    shape = grid.mask.shape
    truth_r = burn(truth.geometry.values, truth["class_id"], shape, grid.transform)
    pred_r = burn(pred.geometry.values, pred["class_id"], shape, grid.transform)
    hist = np.stack([histograms(prob[k - 1], truth_r == k, grid.mask) for k in range(1, n_classes)])
    cm = confusion(truth_r, pred_r, grid.mask, n_classes)
    return SceneResult(row["scene_id"], row["site"], objects, cm, hist, outlines), grid
