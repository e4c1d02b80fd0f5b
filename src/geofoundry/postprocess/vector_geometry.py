"""Vector ops that change object outlines, merge objects, or add attributes. Geometry work happens in metres."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import geopandas as gpd
import numpy as np
import shapely
from pydantic import AfterValidator, Field, NonNegativeFloat, PositiveFloat
from pyproj import CRS
from pyproj.exceptions import CRSError
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..config import check_class_path
from .registry import register
from .rings import map_polygons, regularize_polygon, straighten_polygon
from .state import SceneState
from ..io.units import map_in_metres, to_metres
from .vector_filters import VECTOR_OP

Angle = Annotated[float, Field(gt=0, lt=180)]
ClassPath = Annotated[str, AfterValidator(check_class_path)]


def _in_metres(state: SceneState, fn: Callable[[gpd.GeoSeries], gpd.GeoSeries]) -> SceneState:
    return state.with_geometry(map_in_metres(state.objects.geometry, fn))


def _each_polygon(state: SceneState, fn: Callable[..., shapely.Polygon], **kwargs) -> SceneState:
    def apply(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
        return gpd.GeoSeries([map_polygons(g, fn, **kwargs) for g in geoms], index=geoms.index, crs=geoms.crs)

    return _in_metres(state, apply)


@register("simplify", **VECTOR_OP)
def simplify(state: SceneState, *, tolerance_m: PositiveFloat = 0.3, preserve_topology: bool = True) -> SceneState:
    """Douglas–Peucker simplification: no vertex moves more than ``tolerance_m`` metres off the outline."""
    return _in_metres(state, lambda g: g.simplify(tolerance_m, preserve_topology=preserve_topology))


@register("buffer_unbuffer", **VECTOR_OP)
def buffer_unbuffer(
    state: SceneState, *, distance_m: float = 0.5, join_style: Literal["mitre", "round", "bevel"] = "mitre"
) -> SceneState:
    """Buffer by ``distance_m`` then back: > 0 fills notches and joins close parts, < 0 removes spikes and slivers."""
    return _in_metres(
        state, lambda g: g.buffer(distance_m, join_style=join_style).buffer(-distance_m, join_style=join_style)
    )


@register("convex_hull", **VECTOR_OP)
def convex_hull(state: SceneState) -> SceneState:
    """Replace each object by its convex hull."""
    return _in_metres(state, lambda g: g.convex_hull)


@register("min_rotated_rectangle", **VECTOR_OP)
def min_rotated_rectangle(state: SceneState) -> SceneState:
    """Replace each object by its minimum-area rotated rectangle (right angles in metres)."""
    return _in_metres(state, lambda g: g.minimum_rotated_rectangle())


@register("regularize", **VECTOR_OP)
def regularize(state: SceneState, *, simplify_m: PositiveFloat = 0.5) -> SceneState:
    """Square building outlines: all edges parallel or perpendicular to the object's dominant direction.

    Simplify by ``simplify_m``, rotate to the length-weighted dominant edge direction, merge runs of edges into
    horizontal/vertical lines, rotate back; an outline that cannot be squared becomes its minimum rotated rectangle.
    """
    return _each_polygon(state, regularize_polygon, simplify_m=simplify_m)


@register("straighten", **VECTOR_OP)
def straighten(state: SceneState, *, angle_deg: Angle = 10.0) -> SceneState:
    """Remove near-collinear vertices: those where the outline turns by less than ``angle_deg`` degrees."""
    return _each_polygon(state, straighten_polygon, angle_deg=angle_deg)


def _merge(state: SceneState, gap_m: float) -> SceneState:
    """Union objects of one class that overlap, touch or lie within ``gap_m``; score = area-weighted mean.

    A merged object keeps the other attributes of its first part.
    """
    objects = state.objects
    if objects.empty:
        return state
    metric = to_metres(objects.geometry)
    parts = metric.geoms
    grown = parts.buffer(gap_m / 2, join_style="mitre") if gap_m else parts
    left, right = grown.sindex.query(grown.to_numpy(), predicate="intersects")
    same = objects["class_id"].to_numpy()[left] == objects["class_id"].to_numpy()[right]
    graph = coo_matrix((np.ones(same.sum()), (left[same], right[same])), shape=(len(objects),) * 2)
    _, group = connected_components(graph, directed=False)
    merged = []
    for g in range(group.max() + 1):
        members = np.flatnonzero(group == g)
        geom = shapely.union_all(parts.to_numpy()[members])
        if gap_m and len(members) > 1:
            bridged = shapely.union_all(grown.to_numpy()[members]).buffer(-gap_m / 2, join_style="mitre")
            geom = shapely.union(geom, bridged)
        merged.append(geom)
    area = parts.area.to_numpy()
    score = np.bincount(group, area * objects["score"].to_numpy()) / np.maximum(np.bincount(group, area), 1e-12)
    out = objects.iloc[np.unique(group, return_index=True)[1]].copy()
    out["score"] = score
    geometry = metric.back(gpd.GeoSeries(merged, crs=parts.crs))
    return state.with_objects(out.set_geometry(geometry.to_numpy(), crs=objects.crs))


@register("dissolve", **VECTOR_OP)
def dissolve(state: SceneState) -> SceneState:
    """Union objects of one class that overlap or touch into single objects (``merge_seams`` with gap_m = 0)."""
    return _merge(state, 0.0)


@register("merge_seams", **VECTOR_OP)
def merge_seams(state: SceneState, *, gap_m: NonNegativeFloat = 0.5) -> SceneState:
    """Rejoin objects split across tile seams: union same-class objects closer than ``gap_m``, bridging the gap.

    Touching neighbours merge too, so it undoes a watershed split.
    """
    return _merge(state, gap_m)


def _check_crs(crs: str) -> str:
    try:
        CRS.from_user_input(crs)
    except CRSError as e:
        raise ValueError(f"not a CRS: {e}") from None
    return crs


CrsText = Annotated[str, AfterValidator(_check_crs)]


@register("reproject", **VECTOR_OP)
def reproject(state: SceneState, *, crs: CrsText = "EPSG:4326") -> SceneState:
    """Transform the objects to ``crs`` (any pyproj input: 'EPSG:32636', WKT, ...); later ops keep working in metres."""
    return state.with_objects(state.objects.to_crs(crs))


@register("attributes", **VECTOR_OP)
def attributes(state: SceneState, *, class_paths: dict[str, ClassPath] | None = None) -> SceneState:
    """Add ``area_m2``, ``perimeter_m``, centroid ``lon``/``lat`` (EPSG:4326) and, with ``class_paths``, ``class_path``.

    ``class_paths`` maps class names to class paths, e.g. ``{building: structure/building}``.
    """
    objects = state.objects.copy()
    metric = to_metres(objects.geometry)
    centroid = metric.back(metric.geoms.centroid).to_crs("EPSG:4326")
    objects["area_m2"] = metric.geoms.area.to_numpy()
    objects["perimeter_m"] = metric.geoms.length.to_numpy()
    objects["lon"], objects["lat"] = centroid.x.to_numpy(), centroid.y.to_numpy()
    if class_paths:
        for name in class_paths:
            state.class_id(name)
        objects["class_path"] = objects["class_name"].map(class_paths)
    return state.with_objects(objects)
