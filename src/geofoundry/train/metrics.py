"""Validation metrics on chips: footprint pixel IoU/F1 and object F1 (objects matched one-to-one at IoU >= 0.5)."""

from __future__ import annotations

import numpy as np


class PixelCounts:
    """Accumulates tp/fp/fn of footprint-vs-rest over valid pixels."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def update(self, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> None:
        p, t = pred & valid, truth & valid
        self.tp += int((p & t).sum())
        self.fp += int((p & ~t).sum())
        self.fn += int((~p & t).sum())

    def scores(self) -> dict[str, float]:
        iou = self.tp / max(1, self.tp + self.fp + self.fn)
        f1 = 2 * self.tp / max(1, 2 * self.tp + self.fp + self.fn)
        return {"iou": iou, "f1": f1}


def object_matches(lp: np.ndarray, lt: np.ndarray, iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """(tp, n_pred, n_truth) for two maps of object ids (0 = none), matched one-to-one by IoU."""
    lp, n_pred = _renumber(lp)
    lt, n_truth = _renumber(lt)
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


def _renumber(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids made consecutive (1..n), and n."""
    values, inverse = np.unique(ids, return_inverse=True)
    if values[0] != 0:
        inverse, values = inverse + 1, np.concatenate([[0], values])
    return inverse.reshape(ids.shape), len(values) - 1


def object_f1(tp: int, n_pred: int, n_truth: int) -> float:
    return 2 * tp / max(1, n_pred + n_truth)
