"""Vector ops that keep or drop whole objects (geofence may also cut them)."""

from __future__ import annotations

from typing import Annotated

import geopandas as gpd
import numpy as np
import shapely
from pydantic import AfterValidator, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat

from ..errors import GeofoundryError
from ..io.areas import area_in, load_area
from .registry import Probability, register
from .state import SceneState
from ..io.units import area_m2, to_metres
from .vectorize import valid_area

VECTOR_OP = {"needs": ("objects",)}
Ratio = Annotated[float, Field(ge=1)]


def _check_area(spec: str) -> str:
    load_area(spec)
    return spec


Area = Annotated[str, AfterValidator(_check_area)]


def _area(state: SceneState) -> np.ndarray:
    return area_m2(state.objects.geometry).to_numpy()


@register("min_area", **VECTOR_OP)
def min_area(state: SceneState, *, area_m2: NonNegativeFloat = 4.0) -> SceneState:
    """Drop objects smaller than ``area_m2`` square metres."""
    return state.keep(_area(state) >= area_m2)


@register("max_area", **VECTOR_OP)
def max_area(state: SceneState, *, area_m2: PositiveFloat = 10_000.0) -> SceneState:
    """Drop objects larger than ``area_m2`` square metres."""
    return state.keep(_area(state) <= area_m2)


@register("min_width", **VECTOR_OP)
def min_width(state: SceneState, *, width_m: PositiveFloat = 1.0) -> SceneState:
    """Drop objects nowhere as wide as ``width_m`` (nothing is left after an inward buffer of width_m / 2)."""
    return state.keep(~to_metres(state.objects.geometry).geoms.buffer(-width_m / 2).is_empty.to_numpy())


def _elongation(geom: shapely.Geometry) -> float:
    rect = shapely.minimum_rotated_rectangle(geom)
    if not isinstance(rect, shapely.Polygon):
        return np.inf
    sides = np.hypot(*np.diff(np.asarray(rect.exterior.coords)[:3], axis=0).T)
    return float(sides.max() / sides.min())


@register("aspect_ratio", **VECTOR_OP)
def aspect_ratio(state: SceneState, *, max_ratio: Ratio = 10.0) -> SceneState:
    """Drop objects whose minimum rotated rectangle is more than ``max_ratio`` times longer than wide."""
    ratio = np.array([_elongation(g) for g in to_metres(state.objects.geometry).geoms])
    return state.keep(ratio <= max_ratio)


@register("min_score", **VECTOR_OP)
def min_score(state: SceneState, *, score: Probability = 0.5) -> SceneState:
    """Drop objects whose mean probability (``score``) is below ``score``."""
    return state.keep(state.objects["score"].to_numpy() >= score)


@register("nms", **VECTOR_OP)
def nms(state: SceneState, *, iou: Probability = 0.5, by_class: bool = True) -> SceneState:
    """Non-maximum suppression: of two objects overlapping with IoU above ``iou``, drop the lower score.

    Objects are visited from the highest score down; with ``by_class`` only objects of one class compete.
    """
    objects = state.objects
    geoms = objects.geometry.to_numpy()
    left, right = objects.sindex.query(geoms, predicate="intersects")
    pair = left < right
    if by_class:
        pair &= objects["class_id"].to_numpy()[left] == objects["class_id"].to_numpy()[right]
    left, right = left[pair], right[pair]
    inter = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    union = shapely.area(geoms[left]) + shapely.area(geoms[right]) - inter
    overlaps = inter > iou * union
    left, right = left[overlaps], right[overlaps]
    keep = np.ones(len(objects), bool)
    for i in np.argsort(-objects["score"].to_numpy(), kind="stable"):
        if keep[i]:
            keep[np.concatenate([right[left == i], left[right == i]])] = False
    return state.keep(keep)


@register("geofence", **VECTOR_OP)
def geofence(
    state: SceneState, *, include: Area | None = None, exclude: Area | None = None, clip: bool = True
) -> SceneState:
    """Keep what lies inside ``include`` and outside ``exclude`` (each WKT in EPSG:4326, lon lat, or a vector file).

    With ``clip`` objects are cut at the fence; otherwise whole objects are kept or dropped by a point inside them.
    """
    if include is None and exclude is None:
        raise GeofoundryError("give include, exclude or both")
    objects, crs = state.objects, state.objects.crs
    if not clip:
        inside = objects.geometry.representative_point()
        keep = np.ones(len(objects), bool)
        if include is not None:
            keep &= inside.within(area_in(include, crs)).to_numpy()
        if exclude is not None:
            keep &= ~inside.within(area_in(exclude, crs)).to_numpy()
        return state.keep(keep)
    if include is not None:
        objects = gpd.clip(objects, area_in(include, crs), keep_geom_type=True).sort_index()
    if exclude is not None:
        objects = objects.set_geometry(objects.geometry.difference(area_in(exclude, crs)))
    return state.with_objects(objects)


@register("drop_border_touching", **VECTOR_OP, scene_area=True)
def drop_border_touching(state: SceneState, *, margin_px: NonNegativeInt = 0) -> SceneState:
    """Drop objects that touch the edge of the valid area or raster (cut off there), or come within ``margin_px``."""
    inner = valid_area(state, margin_px).to_crs(state.objects.crs).iloc[0]
    shapely.prepare(inner)
    return state.keep(shapely.contains_properly(inner, state.objects.geometry.to_numpy()))
