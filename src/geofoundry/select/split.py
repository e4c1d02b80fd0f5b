"""Assign blocks to train/val/test, seeded, so that each split gets its fraction of the valid area and, as far as
the blocks allow, of every site, of positive content and of every context."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
AREA_WEIGHT = 2.0


def balance_features(blocks: pd.DataFrame, balance: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The amounts to share out: (n_blocks, F) non-negative amounts other than sites (column 0 is the valid area)
    and their weights; each block's site code (sorted site names, -1 without ``site`` in ``balance``), whose area is
    shared out per site with weight 1; and the layout of all features in order (``j`` ≥ 0: column ``j``; ``-1 - s``:
    the area of site ``s``)."""
    area = blocks["valid_area_m2"].to_numpy(dtype=float)
    cols, weights, layout = [area], [AREA_WEIGHT], [0]
    sites = np.full(len(blocks), -1, np.int64)
    for key in balance:
        before = len(cols)
        if key == "site":
            codes, names = pd.factorize(blocks["site"].astype(str), sort=True)
            sites = codes.astype(np.int64)
            layout += [-1 - s for s in range(len(names))]
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
        layout += range(before, len(cols))
    return np.stack(cols, axis=1), np.asarray(weights), sites, np.asarray(layout, dtype=np.int64)


@numba.njit
def _pairwise_sum(a, lo, n):  # pragma: no cover - compiled
    """numpy's pairwise summation of ``a[lo:lo + n]`` (what ``ndarray.sum`` does), to the last bit."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= 128:
        r = a[lo:lo + 8].copy()
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += a[lo + i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


@numba.njit
def _costs(i, feats, sites, layout, w_all, t_all, held, given, held_site, given_site, target, buf, out):  # pragma: no cover
    """The weighted squared gap after adding block i to each split, computed as numpy computes
    ``(weights * ((trial - target * (given + x)) / totals) ** 2).sum()`` over all features, so that ties go the same
    way."""
    n_splits, n_all = target.shape[0], layout.shape[0]
    for k in range(n_splits):
        for s in range(n_splits):
            for f in range(n_all):
                c = layout[f]
                if c >= 0:
                    h, g, x = held[s, c], given[c], feats[i, c]
                else:
                    site = -1 - c
                    h, g = held_site[s, site], given_site[site]
                    x = feats[i, 0] if sites[i] == site else 0.0
                trial = h + x if s == k else h
                gap = (trial - target[s] * (g + x)) / t_all[f]
                buf[s * n_all + f] = w_all[f] * (gap * gap)
        out[k] = _pairwise_sum(buf, 0, n_splits * n_all)


@numba.njit(nogil=True)
def _greedy(order, feats, weights, totals, sites, layout, target, out):  # pragma: no cover - compiled
    """Hand out the blocks of ``order`` whose ``out`` is -1 (blocks with a split in ``out`` are counted first), each
    to the split with the least weighted squared gap sum.

    Adding block i to split k changes that sum by K + Σ_f c_f x_f (2 b_kf + x_f), with b_kf = held_kf − target_k
    (given_f + x_f), c_f = weight_f / total_f² and K the same for every k: a few terms per block. Where two splits
    come within the rounding error of the full sum, the full sum decides, as numpy rounds it.
    """
    eps = np.finfo(np.float64).eps
    n_splits, n_feats, n_sites = target.shape[0], feats.shape[1], 0
    for i in range(sites.shape[0]):
        n_sites = max(n_sites, sites[i] + 1)
    site_totals = np.zeros(n_sites)
    for i in range(feats.shape[0]):
        if sites[i] >= 0:
            site_totals[sites[i]] += feats[i, 0]
    coef = np.zeros(n_feats)
    for f in range(n_feats):
        if totals[f] > 0:
            coef[f] = weights[f] / totals[f] ** 2
    site_coef = np.zeros(n_sites)
    for s in range(n_sites):
        if site_totals[s] > 0:
            site_coef[s] = 1.0 / site_totals[s] ** 2
    # the features that the full sum runs over: those with a total, in the layout's order
    keep = np.zeros(layout.shape[0], np.bool_)
    for f in range(layout.shape[0]):
        keep[f] = (totals[layout[f]] if layout[f] >= 0 else site_totals[-1 - layout[f]]) > 0
    lay = layout[keep]
    w_all, t_all = np.empty(lay.shape[0]), np.empty(lay.shape[0])
    for f in range(lay.shape[0]):
        w_all[f] = weights[lay[f]] if lay[f] >= 0 else 1.0
        t_all[f] = totals[lay[f]] if lay[f] >= 0 else site_totals[-1 - lay[f]]
    w_sum = n_splits * w_all.sum()
    buf, exact = np.empty(n_splits * lay.shape[0]), np.empty(n_splits)

    held, given = np.zeros((n_splits, n_feats)), np.zeros(n_feats)
    held_site, given_site = np.zeros((n_splits, n_sites)), np.zeros(n_sites)
    for i in range(out.shape[0]):
        if out[i] >= 0:
            held[out[i]] += feats[i]
            given += feats[i]
            if sites[i] >= 0:
                held_site[out[i], sites[i]] += feats[i, 0]
                given_site[sites[i]] += feats[i, 0]
    q = 0.0  # the current weighted squared gap sum (an estimate: it bounds the rounding error)
    for s in range(n_splits):
        for f in range(n_feats):
            q += coef[f] * (held[s, f] - target[s] * given[f]) ** 2
        for f in range(n_sites):
            q += site_coef[f] * (held_site[s, f] - target[s] * given_site[f]) ** 2
    delta = np.empty(n_splits)
    for i in order:
        if out[i] >= 0:
            continue
        s = sites[i]
        common, scale = 0.0, 0.0
        for k in range(n_splits):
            delta[k] = 0.0
        for f in range(n_feats + 1):
            if f < n_feats:
                x, c = feats[i, f], coef[f]
            elif s >= 0:
                x, c = feats[i, 0], site_coef[s]
            else:
                break
            if x == 0.0 or c == 0.0:
                continue
            scale += c * x * (totals[f] if f < n_feats else site_totals[s])
            for k in range(n_splits):
                h, g = (held[k, f], given[f]) if f < n_feats else (held_site[k, s], given_site[s])
                b = h - target[k] * (g + x)
                delta[k] += c * x * (2.0 * b + x)
                common += c * (b * b - (h - target[k] * g) ** 2)
        best, worst = 0, 0
        for k in range(1, n_splits):
            if delta[k] < delta[best]:
                best = k
            if delta[k] > delta[worst]:
                worst = k
        top = q + common + delta[worst]
        err = 4 * (8 * eps * np.sqrt(w_sum * max(top, 0.0)) + (buf.shape[0] + 8) * eps * abs(top)
                   + 64 * eps * eps * w_sum + 8 * eps * scale)
        for k in range(n_splits):
            if k != best and delta[k] - delta[best] <= 2 * err:
                _costs(i, feats, sites, lay, w_all, t_all, held, given, held_site, given_site, target, buf, exact)
                best = int(np.argmin(exact))
                break
        q += common + delta[best]
        out[i] = best
        for f in range(n_feats):
            held[best, f] += feats[i, f]
            given[f] += feats[i, f]
        if s >= 0:
            held_site[best, s] += feats[i, 0]
            given_site[s] += feats[i, 0]
    return out


def assign_splits(blocks: pd.DataFrame, fractions: dict[str, float], seed: int,
                  balance: list[str] = ("site", "positive"), fixed: pd.Series | None = None) -> pd.Series:
    """Return the split of each block.

    Blocks, in seeded random order, go one by one to the split that minimises the weighted squared gap between
    what every split holds of each feature and its target fraction of what has been handed out so far. Blocks
    with a split in ``fixed`` (aligned with ``blocks``; None elsewhere) keep it and are handed out first.
    """
    feats, weights, sites, layout = balance_features(blocks, list(balance))
    target = np.array([fractions[s] for s in SPLITS], dtype=float)
    out = np.full(len(blocks), -1, np.int64)
    if fixed is not None:
        pinned = fixed.notna().to_numpy()
        out[pinned] = [SPLITS.index(s) for s in fixed[pinned]]
    order = np.random.default_rng(seed).permutation(len(blocks)).astype(np.int64)
    # the totals as numpy sums all features at once: row by row, or pairwise when there is one feature
    totals = feats.sum(axis=0) if len(layout) == 1 else np.add.accumulate(feats, axis=0)[-1]
    out = _greedy(order, np.ascontiguousarray(feats, dtype=float), weights, totals, sites, layout, target, out)
    return pd.Series(np.asarray(SPLITS, dtype=object)[out], index=blocks.index)
