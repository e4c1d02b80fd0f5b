"""Polygon outline algorithms (pure shapely/numpy, metric coordinates): straightening and right-angle regularisation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon


def map_polygons(geom: shapely.Geometry, fn: Callable[..., Polygon], **kwargs) -> shapely.Geometry:
    """Apply ``fn(polygon, **kwargs)`` to a Polygon or to each part of a MultiPolygon (parts are unioned)."""
    if isinstance(geom, Polygon):
        return fn(geom, **kwargs)
    if isinstance(geom, MultiPolygon):
        return shapely.union_all([fn(p, **kwargs) for p in geom.geoms])
    return geom


def _ring(coords) -> np.ndarray:
    """Ring vertices without the closing repeat."""
    return np.asarray(coords)[:-1, :2]


def turning_angles(pts: np.ndarray) -> np.ndarray:
    """Direction change in degrees at each vertex of a closed ring ``pts`` (N, 2): 0 = straight on."""
    incoming = pts - np.roll(pts, 1, axis=0)
    outgoing = np.roll(pts, -1, axis=0) - pts
    cross = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0]
    dot = (incoming * outgoing).sum(1)
    return np.degrees(np.abs(np.arctan2(cross, dot)))


def _straighten_ring(pts: np.ndarray, angle_deg: float) -> np.ndarray:
    while len(pts) > 3:
        turn = turning_angles(pts)
        i = int(turn.argmin())
        if turn[i] >= angle_deg:
            break
        pts = np.delete(pts, i, axis=0)
    return pts


def straighten_polygon(poly: Polygon, angle_deg: float) -> Polygon:
    """Remove vertices where the outline turns by less than ``angle_deg``, flattest first (kept if it would break)."""
    rings = [_straighten_ring(_ring(r.coords), angle_deg) for r in (poly.exterior, *poly.interiors)]
    out = Polygon(rings[0], rings[1:])
    return out if out.is_valid else poly


def dominant_direction(poly: Polygon) -> float:
    """Main direction of the exterior edges modulo 90°, in radians (length-weighted circular mean of 4·angle)."""
    d = np.diff(np.asarray(poly.exterior.coords), axis=0)
    angle = np.arctan2(d[:, 1], d[:, 0])
    weight = np.hypot(d[:, 0], d[:, 1])
    return float(np.arctan2((weight * np.sin(4 * angle)).sum(), (weight * np.cos(4 * angle)).sum()) / 4)


def _orthogonal_ring(pts: np.ndarray) -> np.ndarray | None:
    """Axis-parallel version of a ring that is roughly axis-aligned; None if it has fewer than 4 sides.

    Each edge is called horizontal or vertical by its larger extent; a run of consecutive edges of one kind becomes
    one line at their length-weighted mean position, and the corners are where successive lines cross.
    """
    d = np.roll(pts, -1, axis=0) - pts
    length = np.hypot(*d.T)
    pts, d, length = pts[length > 0], d[length > 0], length[length > 0]
    horizontal = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    starts = np.flatnonzero(horizontal != np.roll(horizontal, 1))
    if len(starts) < 4:
        return None
    order = np.roll(np.arange(len(d)), -starts[0])
    mid = pts + d / 2
    position = np.where(horizontal, mid[:, 1], mid[:, 0])
    runs = np.split(order, starts[1:] - starts[0])
    lines = [(horizontal[r[0]], np.average(position[r], weights=length[r])) for r in runs]
    corners = []
    for (h, pos), (_, next_pos) in zip(lines, lines[1:] + lines[:1]):
        corners.append((next_pos, pos) if h else (pos, next_pos))
    return np.array(corners)


def regularize_polygon(poly: Polygon, simplify_m: float) -> Polygon:
    """Building outline with right angles along its dominant direction (fallback: minimum rotated rectangle).

    The outline is simplified (``simplify_m``, removes pixel steps), rotated so that its dominant direction is the
    x axis, made axis-parallel by :func:`_orthogonal_ring`, and rotated back. Holes get the same treatment.
    """
    simple = poly.simplify(simplify_m)
    if simple.is_empty:
        return poly.minimum_rotated_rectangle
    theta = dominant_direction(simple)
    origin = simple.centroid
    upright = affinity.rotate(simple, -theta, origin=origin, use_radians=True)
    exterior = _orthogonal_ring(_ring(upright.exterior.coords))
    if exterior is None:
        return poly.minimum_rotated_rectangle
    holes = [h for h in (_orthogonal_ring(_ring(r.coords)) for r in upright.interiors) if h is not None]
    square = shapely.remove_repeated_points(Polygon(exterior, holes)).simplify(0)
    out = affinity.rotate(square, theta, origin=origin, use_radians=True)
    return out if out.is_valid and out.area > 0 else poly.minimum_rotated_rectangle
