"""Validation metrics on chips: pixel IoU/F1 and object F1 (connected components matched at IoU >= 0.5)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


class PixelCounts:
    """Accumulates tp/fp/fn of target-vs-background over valid pixels."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def update(self, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> None:
        p, t = (pred > 0) & valid, (truth > 0) & valid
        self.tp += int((p & t).sum())
        self.fp += int((p & ~t).sum())
        self.fn += int((~p & t).sum())

    def scores(self) -> dict[str, float]:
        iou = self.tp / max(1, self.tp + self.fp + self.fn)
        f1 = 2 * self.tp / max(1, 2 * self.tp + self.fp + self.fn)
        return {"iou": iou, "f1": f1}


def object_matches(pred: np.ndarray, truth: np.ndarray, iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """(tp, n_pred, n_truth) for connected components of two binary masks, matched one-to-one by IoU."""
    lp, n_pred = ndimage.label(pred)
    lt, n_truth = ndimage.label(truth)
    if n_pred == 0 or n_truth == 0:
        return 0, n_pred, n_truth
    both = (lp > 0) & (lt > 0)
    pairs, inter = np.unique(np.stack([lp[both], lt[both]]), axis=1, return_counts=True)
    area_p = np.bincount(lp.ravel(), minlength=n_pred + 1)
    area_t = np.bincount(lt.ravel(), minlength=n_truth + 1)
    iou = inter / (area_p[pairs[0]] + area_t[pairs[1]] - inter)
    used_p, used_t, tp = set(), set(), 0
    for k in np.argsort(-iou):
        if iou[k] < iou_threshold:
            break
        a, b = pairs[0, k], pairs[1, k]
        if a not in used_p and b not in used_t:
            used_p.add(a), used_t.add(b)
            tp += 1
    return tp, n_pred, n_truth


def object_f1(tp: int, n_pred: int, n_truth: int) -> float:
    return 2 * tp / max(1, n_pred + n_truth)
