"""Assign blocks to train/val/test, seeded, so that each split gets its fraction of the valid area and, as far as
the blocks allow, of every site, of positive content and of every context."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
AREA_WEIGHT = 2.0


def balance_features(blocks: pd.DataFrame, balance: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(n_blocks, F) non-negative amounts to share out, and their weights; column 0 is the valid area."""
    area = blocks["valid_area_m2"].to_numpy(dtype=float)
    cols, weights = [area], [AREA_WEIGHT]
    for key in balance:
        if key == "site":
            for site in sorted(blocks["site"].astype(str).unique()):
                cols.append(area * (blocks["site"].astype(str) == site).to_numpy())
                weights.append(1.0)
        elif key == "positive":
            per_class = [c for c in blocks.columns if c.startswith("objects:")] or ["n_objects"]
            for c in per_class:
                cols.append(blocks[c].to_numpy(dtype=float))
                weights.append(1.0 / len(per_class))
            cols.append(area * (blocks["n_objects"].to_numpy() > 0))
            weights.append(1.0)
        elif key in blocks:
            cols.append(area * blocks[key].fillna(0).to_numpy(dtype=float))
            weights.append(1.0)
    return np.stack(cols, axis=1), np.asarray(weights)


def assign_splits(blocks: pd.DataFrame, fractions: dict[str, float], seed: int,
                  balance: list[str] = ("site", "positive"), fixed: pd.Series | None = None) -> pd.Series:
    """Return the split of each block.

    Blocks, in seeded random order, go one by one to the split that minimises the weighted squared gap between
    what every split holds of each feature and its target fraction of what has been handed out so far. Blocks
    with a split in ``fixed`` (aligned with ``blocks``; None elsewhere) keep it and are handed out first.
    """
    feats, weights = balance_features(blocks, list(balance))
    totals = feats.sum(axis=0)
    keep = totals > 0
    feats, weights, totals = feats[:, keep], weights[keep], totals[keep]
    target = np.array([fractions[s] for s in SPLITS])[:, None]
    held = np.zeros((len(SPLITS), feats.shape[1]))
    given = np.zeros(feats.shape[1])
    out = np.empty(len(blocks), dtype=object)
    kept = np.zeros(len(blocks), dtype=bool) if fixed is None else fixed.notna().to_numpy()
    for i in np.flatnonzero(kept):
        k = SPLITS.index(fixed.iloc[i])
        held[k] += feats[i]
        given += feats[i]
        out[i] = SPLITS[k]
    for i in np.random.default_rng(seed).permutation(len(blocks)):
        if kept[i]:
            continue
        x = feats[i]
        costs = []
        for k in range(len(SPLITS)):
            trial = held.copy()
            trial[k] += x
            gap = (trial - target * (given + x)) / totals
            costs.append(float((weights * gap**2).sum()))
        k = int(np.argmin(costs))
        held[k] += x
        given += x
        out[i] = SPLITS[k]
    return pd.Series(out, index=blocks.index)
