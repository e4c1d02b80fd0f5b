"""Raster ops: class mask from probabilities, mask clean-up, and separation of touching objects into instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from pydantic import PositiveFloat, PositiveInt
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import disk
from skimage.segmentation import watershed as flood

from ..errors import GeofoundryError
from ..io.units import pixel_area_m2
from ..models.outputs import footprints
from .registry import Probability, register
from .state import SceneState

# Ops that edit the mask must run before instances exist, or the instance ids would no longer match it.
MASK_OP = {"needs": ("mask",), "refuses": ("instances",)}


def label_classes(mask: np.ndarray, label: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Instance ids over all classes: ``label(mask == k)`` for each class, numbered on from the previous class."""
    ids = np.zeros(mask.shape, np.int32)
    for k in np.unique(mask[mask > 0]):
        lab = label(mask == k)
        ids[lab > 0] = lab[lab > 0] + ids.max()
    return ids


def _small_components(b: np.ndarray, max_px: float) -> np.ndarray:
    """Pixels of the 4-connected components of ``b`` that have fewer than ``max_px`` pixels."""
    lab, _ = ndi.label(b)
    small = np.bincount(lab.ravel()) < max_px
    small[0] = False
    return small[lab]


def _per_class(state: SceneState, edit: Callable[[np.ndarray], np.ndarray]) -> SceneState:
    """Apply ``edit`` (bool → bool) to each class of the mask; added pixels only take empty valid ones."""
    out = state.mask.copy()
    for k in np.unique(state.mask[state.mask > 0]):
        was = state.mask == k
        now = edit(was)
        out[was & ~now] = 0
        out[now & (out == 0) & state.valid] = k
    return replace(state, mask=out)


def _pixels(state: SceneState, area_m2: float) -> float:
    return area_m2 / pixel_area_m2(state.transform, state.crs, state.shape)


@register("threshold", needs=("prob",), gives=("mask",), refuses=("instances",))
def threshold(state: SceneState, *, value: Probability | dict[str, Probability] = 0.5) -> SceneState:
    """Class mask from probabilities: the most probable object class among those at or above their threshold,
    else 0.

    ``value`` is one threshold for every object class or ``{class_name: threshold}`` (classes left out use 0.5).
    Pixels outside the valid area are 0. With a border model's auxiliary outputs (``train.target:
    footprint_border[_contact]``) an object class scores its footprint probability: the most probable object
    class of a pixel gets p(class) + p(border), since the border is part of every footprint; ``contact`` counts as
    background. So the mask holds object classes only, every later op sees whole footprints, and
    ``watershed_border`` splits touching ones.
    """
    n = state.n_targets
    if isinstance(value, dict):
        t = np.full(n, 0.5, np.float32)
        for name, v in value.items():
            if state.class_id(name) > n:
                raise GeofoundryError(f"threshold: {name!r} is an auxiliary output, not an object class")
            t[state.class_id(name) - 1] = v
    else:
        t = np.full(n, value, np.float32)
    prob = footprints(state.prob, state.auxiliary, 1.0)
    above = prob >= t[:, None, None]
    best = np.where(above, prob, -1).argmax(0) + 1
    return replace(state, mask=np.where(above.any(0) & state.valid, best, 0).astype(np.int32))


@register("open", **MASK_OP)
def open_(state: SceneState, *, radius_px: PositiveInt = 1) -> SceneState:
    """Morphological opening of each class with a disk of ``radius_px``: removes specks and thin bridges."""
    return _per_class(state, lambda b: ndi.binary_opening(b, structure=disk(radius_px)))


@register("close", **MASK_OP)
def close(state: SceneState, *, radius_px: PositiveInt = 1) -> SceneState:
    """Morphological closing of each class with a disk of ``radius_px``: fills thin cracks and notches."""
    return _per_class(state, lambda b: b | ndi.binary_closing(b, structure=disk(radius_px)))


@register("fill_holes", **MASK_OP)
def fill_holes(state: SceneState, *, max_area_m2: PositiveFloat = 10.0) -> SceneState:
    """Fill holes inside a class region that are smaller than ``max_area_m2`` (larger courtyards stay)."""
    px = _pixels(state, max_area_m2)
    return _per_class(state, lambda b: b | _small_components(ndi.binary_fill_holes(b) & ~b, px))


@register("remove_small", **MASK_OP)
def remove_small(state: SceneState, *, min_area_m2: PositiveFloat = 2.0) -> SceneState:
    """Remove connected regions of a class smaller than ``min_area_m2`` before polygonizing."""
    px = _pixels(state, min_area_m2)
    return _per_class(state, lambda b: b & ~_small_components(b, px))


def _split_at_necks(b: np.ndarray, min_distance_px: int) -> np.ndarray:
    dist = ndi.distance_transform_edt(b)
    peaks = peak_local_max(dist, min_distance=min_distance_px, labels=ndi.label(b)[0], exclude_border=False)
    seeds = np.zeros(b.shape, bool)
    seeds[tuple(peaks.T)] = True
    lab = flood(-dist, ndi.label(seeds)[0], mask=b)
    rest = ndi.label(b & (lab == 0))[0]
    return np.where(rest > 0, rest + lab.max(), lab)


@register("watershed", needs=("mask",), gives=("instances",))
def watershed(state: SceneState, *, min_distance_px: PositiveInt = 10) -> SceneState:
    """Split touching objects of a class at the necks of their distance transform (watershed from its peaks).

    Seeds are local maxima of the distance to the region edge, at least ``min_distance_px`` apart; a region
    without a seed stays one instance.
    """
    return replace(state, instances=label_classes(state.mask, lambda b: _split_at_necks(b, min_distance_px)))


@register("watershed_border", needs=("prob", "mask"), gives=("instances",))
def watershed_border(
    state: SceneState, *, border_class: str = "border", seed_max: Probability = 0.3, min_seed_px: PositiveInt = 4
) -> SceneState:
    """Split touching objects along the model's border band (``train.target: footprint_border[_contact]``).

    Seeds are object pixels with p(border) < ``seed_max`` (seeds smaller than ``min_seed_px`` are ignored); they
    grow over the thresholded footprints (border pixels included, contact pixels left out: see ``threshold``) in
    order of p(border). Each grown object takes its seed's class, so border pixels join their nearest object and
    regions without a seed are dropped.
    """
    if border_class not in state.auxiliary:
        raise GeofoundryError(f"needs the auxiliary output {border_class!r} of a model trained with train.target "
                              f"footprint_border[_contact]; the classes are {list(state.class_names)}")
    border = state.prob[state.class_id(border_class) - 1]
    markers = np.zeros(state.shape, np.int32)
    seed_class = [0]
    for k in np.unique(state.mask[state.mask > 0]):
        seeds = (state.mask == k) & (border < seed_max)
        lab, n = ndi.label(seeds & ~_small_components(seeds, min_seed_px))
        markers[lab > 0] = lab[lab > 0] + len(seed_class) - 1
        seed_class += [k] * n
    instances = flood(border, markers, mask=state.mask > 0).astype(np.int32)
    return replace(state, mask=np.asarray(seed_class, np.int32)[instances], instances=instances)
