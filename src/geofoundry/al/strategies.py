"""The ranking strategies of active learning, by name (``al.strategy``): what a tile scores and how tiles are picked.

Uncertainty is measured per pixel on the model's footprint distribution (background, then each object class, with a
border model's ``border`` counted in the footprint and ``contact`` as background), scaled to [0, 1], and averaged
over a tile's unlabelled valid pixels:

* ``entropy``: H(p) / log C of the prediction (C classes, background included);
* ``margin``: 1 − (p₁ − p₂), the gap between the two most probable classes;
* ``tta_disagreement`` and ``mc_dropout``: the mutual information H(p̄) − mean H(pₜ) / log C between the prediction
  and the sample t it comes from, over test-time transforms (and ensemble members) or dropout passes (BALD).

Diversity works on the encoder's embedding of each tile (its deepest features averaged, L2-normalised): ``coreset``
picks by k-center greedy (Sener & Savarese 2018): the tile farthest from every labelled or already picked tile, one
at a time; ``hybrid`` picks the tile with the largest entropy × that distance (both scaled by their maximum among
the candidates left), so an uncertain tile next to one just picked waits. ``random`` is the baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import AL_STRATEGIES

Uncertainty = Callable[[np.ndarray], np.ndarray]  # (T, C, ...) probabilities of T samples → (...) in [0, 1]


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy over axis 0 divided by log C, so that it lies in [0, 1]."""
    return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=0) / np.log(len(p))


def entropy(samples: np.ndarray) -> np.ndarray:
    return _entropy(samples.mean(axis=0))


def margin(samples: np.ndarray) -> np.ndarray:
    top = np.sort(samples.mean(axis=0), axis=0)
    return 1.0 - (top[-1] - top[-2])


def mutual_information(samples: np.ndarray) -> np.ndarray:
    """H(mean p) − mean H(p): zero when the samples agree, whatever their confidence."""
    return np.clip(_entropy(samples.mean(axis=0)) - np.mean([_entropy(s) for s in samples], axis=0), 0.0, 1.0)


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    uncertainty: Uncertainty | None = None  # per-pixel score from the samples; None: no uncertainty
    samples: str = "single"  # "single" (the predict stage's model), "tta" (each transform/member), "dropout"
    diverse: bool = False  # picks by distance between tile embeddings


STRATEGIES: dict[str, Strategy] = {s.name: s for s in [
    Strategy("random", "a seeded random draw: the baseline"),
    Strategy("entropy", "mean entropy of the prediction", entropy),
    Strategy("margin", "mean 1 − (p₁ − p₂) of the prediction", margin),
    Strategy("tta_disagreement", "mean mutual information between test-time transforms (and ensemble members) and "
             "the prediction", mutual_information, samples="tta"),
    Strategy("mc_dropout", "mean mutual information between dropout passes and the prediction (BALD); presets with "
             "dropout only", mutual_information, samples="dropout"),
    Strategy("coreset", "k-center greedy on encoder embeddings: the tile farthest from all labelled and picked ones",
             diverse=True),
    Strategy("hybrid", "entropy × distance to the nearest labelled or picked tile, greedily", entropy, diverse=True),
]}
assert tuple(STRATEGIES) == AL_STRATEGIES  # config.AL_STRATEGIES validates al.strategy when params load


@dataclass(frozen=True)
class Pick:
    index: int  # into the candidates
    score: float  # what the strategy ranked by (uncertainty, distance, their product, or the draw's order)
    reason: str


def _distances(candidates: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Euclidean distance of each candidate embedding to its nearest labelled one (inf without any)."""
    if not len(labelled):
        return np.full(len(candidates), np.inf)
    d2 = (candidates ** 2).sum(1)[:, None] + (labelled ** 2).sum(1)[None, :] - 2 * candidates @ labelled.T
    return np.sqrt(np.clip(d2, 0.0, None)).min(axis=1)


def pick(strategy: Strategy, n: int, total: int, scores: np.ndarray | None = None,
         embeddings: np.ndarray | None = None, labelled: np.ndarray | None = None, seed: int = 0) -> list[Pick]:
    """The ``n`` of ``total`` candidates to label next, best first.

    ``scores``: each candidate's uncertainty (strategies with one); ``embeddings`` (total, D) of the candidates and
    ``labelled`` (M, D) of the labelled tiles (diverse strategies). Ties go to the lower index.
    """
    n = min(n, total)
    if strategy.name == "random":
        order = np.random.default_rng(seed).permutation(total)[:n]
        return [Pick(int(i), float(k + 1), f"random draw {k + 1} (seed {seed})") for k, i in enumerate(order)]
    if not strategy.diverse:
        order = np.argsort(-scores, kind="stable")[:n]
        return [Pick(int(i), float(scores[i]), f"{strategy.name} {scores[i]:.4f}") for i in order]
    return _greedy(n, scores, embeddings, labelled, seed)


def _greedy(n: int, scores: np.ndarray | None, emb: np.ndarray, labelled: np.ndarray | None, seed: int) -> list[Pick]:
    """k-center greedy, each distance weighted by the candidate's uncertainty when the strategy has one; with nothing
    labelled yet, the first pick is the most uncertain candidate (or a seeded draw)."""
    dist = _distances(emb, labelled if labelled is not None else emb[:0])
    u = None if scores is None else scores / max(float(scores.max()), 1e-12)
    left = np.ones(len(emb), dtype=bool)
    picks = []
    for _ in range(n):
        if np.isinf(dist).all():
            i = int(np.argmax(u)) if u is not None else int(np.random.default_rng(seed).integers(len(emb)))
            value, reason = (1.0 if u is None else float(u[i])), "first pick, nothing labelled yet: " + (
                f"seeded draw (seed {seed})" if u is None else f"highest entropy {scores[i]:.4f}")
        else:
            d = dist / max(float(dist[left].max()), 1e-12)
            value_all = np.where(left, d if u is None else u * d, -np.inf)
            i = int(np.argmax(value_all))
            value = float(value_all[i])
            reason = (f"k-center: distance {dist[i]:.4f} to the nearest labelled or picked tile" if u is None else
                      f"entropy {scores[i]:.4f} × distance {dist[i]:.4f} (scaled product {value:.4f})")
        picks.append(Pick(i, value, reason))
        left[i] = False
        dist = np.minimum(dist, _distances(emb, emb[[i]]))
    return picks
