"""Assign blocks to train/val/test, balanced by site and by positive content, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def assign_splits(blocks: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Return the split of each block.

    Blocks are grouped in strata (site × empty / sparse / dense in objects); inside a stratum, blocks in seeded random
    order go one by one to the split whose share of valid area lags its target fraction the most (in the stratum,
    then over all blocks).
    """
    rng = np.random.default_rng(seed)
    density = blocks["n_objects"] / blocks["valid_area_m2"].clip(lower=1)
    positive = density[blocks["n_objects"] > 0]
    median = positive.median() if len(positive) else 0.0
    level = np.where(blocks["n_objects"] == 0, 0, np.where(density <= median, 1, 2))
    strata = blocks["site"].astype(str) + "/" + pd.Series(level, index=blocks.index).astype(str)
    target = np.array([fractions[s] for s in SPLITS])
    out = pd.Series("", index=blocks.index, dtype=object)
    got_all = np.zeros(len(SPLITS))
    for key in sorted(strata.unique()):
        idx = blocks.index[strata == key].to_numpy()
        idx = idx[rng.permutation(len(idx))]
        got = np.zeros(len(SPLITS))
        for i in idx:
            area = float(blocks.at[i, "valid_area_m2"])
            # lag within the stratum first; the lag over all blocks so far breaks ties and fills small strata
            lag = target * (got.sum() + area) - got + 0.5 * (target * (got_all.sum() + area) - got_all)
            k = int(np.argmax(lag))
            got[k] += area
            got_all[k] += area
            out.at[i] = SPLITS[k]
    return out
