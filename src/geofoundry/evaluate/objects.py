"""Object metrics on shapely geometries: one-to-one IoU matching (SpaceNet rule), P/R/F1 and average precision.

A ratio whose denominator is 0 is defined as 0: no predictions gives precision 0, no truth gives recall 0,
and then F1 is 0 too (also when both are empty: nothing was found, so there is nothing to credit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely import STRtree

IOU_TOLERANCE = 1e-9  # IoU exactly at the threshold matches, despite float rounding of the areas


def ratio(num: float, den: float) -> float:
    """``num / den``, or 0 when ``den`` is 0."""
    return float(num) / den if den else 0.0


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts (0 where undefined, see the module docstring)."""
    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def match(truth: Sequence, pred: Sequence, iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match predicted to truth geometries one-to-one at IoU >= ``iou_threshold``, greedily by descending IoU.

    Returns ``(pred_index, truth_index, iou)`` of the matched pairs.
    """
    truth, pred = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    empty = np.zeros(0, dtype=int)
    if not len(truth) or not len(pred):
        return empty, empty, np.zeros(0)
    p_idx, t_idx = STRtree(truth).query(pred, predicate="intersects")
    inter = shapely.area(shapely.intersection(pred[p_idx], truth[t_idx]))
    union = shapely.area(pred[p_idx]) + shapely.area(truth[t_idx]) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    keep = iou >= iou_threshold - IOU_TOLERANCE
    p_idx, t_idx, iou = p_idx[keep], t_idx[keep], iou[keep]
    used_p, used_t, pairs = set(), set(), []
    for i in np.argsort(-iou, kind="stable"):
        if p_idx[i] not in used_p and t_idx[i] not in used_t:
            used_p.add(p_idx[i])
            used_t.add(t_idx[i])
            pairs.append(i)
    pairs = np.asarray(pairs, dtype=int)
    return p_idx[pairs], t_idx[pairs], iou[pairs]


def average_precision(scores: np.ndarray, is_tp: np.ndarray, n_truth: int) -> tuple[float, dict[str, np.ndarray]]:
    """VOC all-point interpolated AP of predictions ranked by ``score``, and the precision-recall curve.

    ``is_tp`` flags the predictions matched by :func:`match` (with disjoint predictions and IoU >= 0.5 a truth
    has at most one candidate, so this equals VOC's score-ordered matching). Tied scores form one curve point,
    so the result does not depend on the order of ties. AP is 0 without truth.
    """
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    scores, is_tp = np.asarray(scores, dtype=float)[order], np.asarray(is_tp, dtype=bool)[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, dtype=bool)
    tp = np.cumsum(is_tp)[last_of_tie]
    n = (np.flatnonzero(last_of_tie) + 1).astype(float)
    precision = tp / n if len(n) else np.zeros(0)
    recall = tp / n_truth if n_truth else np.zeros_like(precision)
    curve = {"recall": recall, "precision": precision, "threshold": scores[last_of_tie]}
    if not n_truth or not len(tp):
        return 0.0, curve
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at recall >= r
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * envelope)), curve
