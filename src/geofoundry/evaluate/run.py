"""Evaluate stage: object and pixel metrics of every predicted scene → the headline figures
(``metrics/evaluate.json``), the full report with every breakdown (``reports/evaluate.json``), plots, overlays.

Object metrics use the objects whose representative point lies in the evaluation area and whose area is at least
``min_area_m2``; pixel metrics use every polygon, rasterized on the prediction grid, inside the evaluation area.
Counts are pooled over scenes and classes before the ratios are taken (micro average). Only the object classes of
``classes.json`` are scored: a border model's auxiliary outputs are not (its footprint probability, for the pixel
curves, is p(class) + p(border); contact is background).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from ..config import EvaluateConfig
from ..errors import GeofoundryError
from ..io.atomic import write_json
from ..io.debris import outputs_in
from ..progress import track
from .breakdown import breakdowns, by_touching, context_records, outcomes, truth_contacts
from .objects import average_precision
from .overlay import overlay_blocks, render
from .pixels import class_counts, pr_curve, scores
from .scene import ClassObjects, SceneResult, evaluate_scene, object_metrics, pooled

log = logging.getLogger(__name__)
MAX_CURVE_POINTS = 1000
DIGITS = 6
HEADLINE = {"object": ("precision", "recall", "f1", "ap"), "pixel": ("iou", "f1")}


def load_selection(selection_dir: Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Selected scenes (indexed by ``scene_id``), class names and class paths (background first)."""
    scenes_path, classes_path = selection_dir / "scenes.parquet", selection_dir / "classes.json"
    for path in (scenes_path, classes_path):
        if not path.is_file():
            raise GeofoundryError(f"{path}: missing; run the select stage first")
    try:
        classes = json.loads(classes_path.read_text())
    except json.JSONDecodeError as e:
        raise GeofoundryError(f"{classes_path}: not valid JSON ({e})") from None
    names, paths = classes.get("names"), classes.get("paths")
    if not names or not paths or len(names) != len(paths) or len(names) < 2:
        raise GeofoundryError(f"{classes_path}: needs 'names' and 'paths' of equal length, background first")
    scenes = pd.read_parquet(scenes_path)
    return scenes.set_index("scene_id", drop=False), names, paths


def _pool(results: Sequence[SceneResult], classes: Sequence[int]) -> ClassObjects:
    """Object counts and ranked predictions summed over scenes and classes."""
    return pooled([r.objects[k - 1] for r in results for k in classes])


def _rounded(d: dict) -> dict:
    return {k: round(v, DIGITS) if isinstance(v, float) else v for k, v in d.items()}


def summarize(results: Sequence[SceneResult], classes: Sequence[int]) -> dict:
    """Micro averages: ``{"object": {f1, precision, recall, ap, tp, fp, fn}, "pixel": {iou, f1, precision, recall}}``"""
    cm = sum(r.confusion for r in results)
    tp, fp, fn = np.sum([class_counts(cm, k) for k in classes], axis=0).tolist()
    return {
        "object": _rounded(object_metrics(_pool(results, classes))),
        "pixel": _rounded(scores(tp, fp, fn)),
    }


def headline(report: dict) -> dict:
    """The figures experiments are compared by: object precision, recall, F1 and AP, pixel IoU and F1, object F1
    per site (a few short keys, so that ``dvc exp show`` fits a terminal)."""
    return {
        "object": {k: report["object"][k] for k in HEADLINE["object"]},
        "pixel": {k: report["pixel"][k] for k in HEADLINE["pixel"]},
        "site_f1": {site: m["object"]["f1"] for site, m in report["per_site"].items()},
    }


def level_groups(paths: Sequence[str | None]) -> dict[str, list[int]]:
    """Classes under each prefix of their class paths (``structure``, ``structure/building``, ...)."""
    groups: dict[str, list[int]] = {}
    for k, path in enumerate(paths[1:], start=1):
        parts = path.split("/")
        for level in range(1, len(parts) + 1):
            groups.setdefault("/".join(parts[:level]), []).append(k)
    return groups


def _records(curve: dict[str, np.ndarray], keys: Sequence[str]) -> list[dict]:
    """Curve points as records, thinned evenly to at most ``MAX_CURVE_POINTS``."""
    n = len(curve[keys[0]])
    idx = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int)) if n else []
    return [{k: round(float(curve[k][i]), DIGITS) for k in keys} for i in idx]


def _confusion_records(results: Sequence[SceneResult], names: list[str]) -> list[dict]:
    """Object-level (actual, predicted) records: TP class/class, FP background/class, FN class/background."""
    records = []
    for k, name in enumerate(names[1:], start=1):
        o = _pool(results, [k])
        records += [{"actual": name, "predicted": name}] * o.tp
        records += [{"actual": names[0], "predicted": name}] * o.fp
        records += [{"actual": name, "predicted": names[0]}] * o.fn
    return records


def _plots(results: Sequence[SceneResult], names: list[str], per_scene: dict) -> dict[str, list[dict]]:
    classes = range(1, len(names))
    o = _pool(results, classes)
    _, object_curve = average_precision(o.scores, o.is_tp, o.tp + o.fn)
    pixel_curve = pr_curve(sum(r.hist.sum(axis=0) for r in results))
    return {
        "object_pr.json": _records(object_curve, ("recall", "precision", "threshold")),
        "pixel_pr.json": _records(pixel_curve, ("recall", "precision", "threshold")),
        "f1_vs_threshold.json": _records(pixel_curve, ("threshold", "f1")),
        "confusion.json": _confusion_records(results, names),
        "per_scene.json": [
            {"scene_id": s, "f1": m["object"]["f1"], "iou": m["pixel"]["iou"]} for s, m in per_scene.items()
        ],
    }


def run(
    cfg: EvaluateConfig,
    selection_dir: Path,
    predictions_dir: Path,
    vectors_dir: Path,
    metrics_path: Path,
    plots_dir: Path,
    report_path: Path,
) -> dict:
    """Evaluate every scene that has a prediction raster; write the headline metrics, the report, plot data and
    overlays; return the report (:func:`headline` picks the metrics from it)."""
    selection_dir, predictions_dir, vectors_dir = Path(selection_dir), Path(predictions_dir), Path(vectors_dir)
    plots_dir = Path(plots_dir)
    scenes, names, paths = load_selection(selection_dir)
    pred_paths = outputs_in(predictions_dir, ".tif")
    if not pred_paths:
        raise GeofoundryError(f"{predictions_dir}: no prediction rasters (*.tif); run the predict stage first")
    unknown = [p.name for p in pred_paths if p.stem not in scenes.index]
    if unknown:
        raise GeofoundryError(f"{predictions_dir}: {unknown} match no scene_id in {selection_dir / 'scenes.parquet'}")
    vector_paths = [vectors_dir / f"{p.stem}.gpkg" for p in pred_paths]
    no_vectors = [str(p) for p in vector_paths if not p.is_file()]
    if no_vectors:
        raise GeofoundryError(f"{no_vectors}: missing; every prediction raster needs its vectors (run postprocess)")

    blocks_path = selection_dir / "blocks.parquet"
    blocks = gpd.read_parquet(blocks_path) if blocks_path.is_file() else None
    overlays = plots_dir / "overlays"
    for stale in outputs_in(overlays, ".png"):
        stale.unlink()
    results, placed, contacts = [], [], []
    for pred_path, vector_path in track(list(zip(pred_paths, vector_paths)), "evaluate: scenes"):
        row = scenes.loc[pred_path.stem]
        result, grid = evaluate_scene(row, pred_path, vector_path, names[1:], paths[1:], cfg)
        placed.append(outcomes(result.outlines, grid.crs, float(row["gsd_m"])))
        contacts.append(truth_contacts(result.outlines, grid.crs))
        shown, n_blocks = overlay_blocks(grid, blocks, placed[-1])
        if len(shown) < n_blocks:
            log.info("%s: overlays of the %d blocks with the most objects, of %d", result.scene_id, len(shown),
                     n_blocks)
        for block, window, f in shown:
            title = (f"{result.scene_id} · block {block} · object F1 {f['f1']:.2f} (P {f['precision']:.2f}, "
                     f"R {f['recall']:.2f}) · {f['tp']} TP, {f['fp']} FP, {f['fn']} FN")
            render(row["image_path"], grid, window, result.outlines, title,
                   overlays / f"{result.scene_id}__{block}.png")
        result.outlines = {}  # geometries are only needed for the overlays and the breakdowns
        results.append(result)
    by = breakdowns(pd.concat(placed, ignore_index=True), blocks)

    classes = range(1, len(names))
    per_scene = {r.scene_id: summarize([r], classes) for r in results}
    cm = sum(r.confusion for r in results)
    report = {
        **summarize(results, classes),
        "n_scenes": len(results),
        "per_class": {names[k]: summarize(results, [k]) for k in classes},
        "per_level": {prefix: summarize(results, ks) for prefix, ks in level_groups(paths).items()},
        "per_site": {
            s: summarize([r for r in results if r.site == s], classes) for s in sorted({r.site for r in results})
        },
        "per_scene": per_scene,
        **by,
        "by_touching": by_touching(pd.concat(contacts, ignore_index=True)),
        "pixel_confusion": {a: {p: int(cm[i, j]) for j, p in enumerate(names)} for i, a in enumerate(names)},
    }
    write_json(plots_dir / "per_context.json", context_records(by))
    for name, records in _plots(results, names, per_scene).items():
        write_json(plots_dir / name, records)
    write_json(report_path, report)
    write_json(metrics_path, headline(report))
    return report
