"""Pixel metrics on arrays: confusion matrix, per-class IoU/F1, exact PR curves from uint8 probability histograms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from rasterio import Affine
from rasterio.features import rasterize

from .objects import prf, ratio

N_LEVELS = 256  # uint8 probability levels: value v means p = v / 255


def burn(geoms: Sequence, class_ids: Sequence[int], shape: tuple[int, int], transform: Affine) -> np.ndarray:
    """Rasterize polygons as class ids (0 = background) on a grid; later geometries win where they overlap."""
    shapes = [(g, int(k)) for g, k in zip(geoms, class_ids) if not g.is_empty]
    if not shapes:
        return np.zeros(shape, dtype=np.uint8)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")


def in_mask(geoms: Sequence, mask: np.ndarray, transform: Affine) -> np.ndarray:
    """True where a geometry's representative point falls on a ``mask`` pixel (off the grid counts as outside)."""
    if not len(geoms):
        return np.zeros(0, dtype=bool)
    xy = shapely.get_coordinates(shapely.point_on_surface(np.asarray(geoms, dtype=object)))
    cols, rows = ~transform @ (xy[:, 0], xy[:, 1])
    rows, cols = np.floor(rows).astype(int), np.floor(cols).astype(int)
    inside = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
    out = np.zeros(len(xy), dtype=bool)
    out[inside] = mask[rows[inside], cols[inside]]
    return out


def confusion(truth: np.ndarray, pred: np.ndarray, valid: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` pixel counts, rows = truth class, columns = predicted class, over ``valid``."""
    codes = truth[valid].astype(np.int64) * n_classes + pred[valid]
    return np.bincount(codes, minlength=n_classes**2).reshape(n_classes, n_classes)


def class_counts(cm: np.ndarray, k: int) -> tuple[int, int, int]:
    """(tp, fp, fn) of class ``k`` in a confusion matrix."""
    tp = int(cm[k, k])
    return tp, int(cm[:, k].sum()) - tp, int(cm[k, :].sum()) - tp


def scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """IoU, F1, precision and recall from pixel counts (0 where undefined)."""
    return {"iou": ratio(tp, tp + fp + fn), **prf(tp, fp, fn)}


def histograms(prob: np.ndarray, is_class: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(2, 256)`` counts of probability values over valid pixels: row 0 truth positives, row 1 negatives."""
    return np.stack([
        np.bincount(prob[valid & is_class], minlength=N_LEVELS),
        np.bincount(prob[valid & ~is_class], minlength=N_LEVELS),
    ]).astype(np.int64)


def pr_curve(hist: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 when predicting positive where ``value >= t``, for every level t (threshold t/255)."""
    tp = np.cumsum(hist[0][::-1])[::-1].astype(float)
    fp = np.cumsum(hist[1][::-1])[::-1].astype(float)
    positives = hist[0].sum()
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    recall = tp / positives if positives else np.zeros_like(tp)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    return {"threshold": np.arange(N_LEVELS) / (N_LEVELS - 1), "precision": precision, "recall": recall, "f1": f1}
