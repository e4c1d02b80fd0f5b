"""The state that post-processing operations pass along the chain, one scene at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS

from ..errors import GeofoundryError
from ..models.outputs import BORDER


@dataclass(frozen=True)
class SceneState:
    """One scene on its way from probabilities to polygons; ops return a new state and never mutate arrays.

    Raster fields (``prob``, ``mask``, ``instances``, ``valid``) share the grid ``transform``/``crs``. In the vector
    part of a windowed run (:mod:`.windows`) ``valid`` is empty (0 × 0) and ``outline``, if an op needs the valid
    area, gives it (shrunk by n pixels, in pixel coordinates) traced window by window.
    ``objects`` (after ``polygonize``) starts in ``crs`` and keeps its own ``.crs`` (``reproject`` changes it).
    Class ``k`` (1-based) is ``class_names[k - 1]`` and ``prob[k - 1]``; 0 means nothing. The last
    ``len(auxiliary)`` classes are the model's auxiliary outputs (``border``, ``contact``): they have probabilities
    but never enter the mask (``threshold`` folds them) nor become objects.
    """

    transform: Affine
    crs: CRS
    valid: np.ndarray  # (H, W) bool
    class_names: tuple[str, ...]
    prob: np.ndarray | None = None  # (K, H, W) float32 in [0, 1]
    mask: np.ndarray | None = None  # (H, W) int32 class ids
    instances: np.ndarray | None = None  # (H, W) int32 instance ids, 0 = none
    objects: gpd.GeoDataFrame | None = None  # class_id (int32), class_name, score (float), geometry
    auxiliary: tuple[str, ...] = ()  # the trailing class_names that are auxiliary outputs, not object classes
    outline: Callable[[int], shapely.Geometry] | None = None  # windowed runs: inset px → valid area (pixel coords)

    @property
    def shape(self) -> tuple[int, int]:
        return self.valid.shape

    @property
    def n_targets(self) -> int:
        """Number of object (target) classes: ids 1..n_targets."""
        return len(self.class_names) - len(self.auxiliary)

    def class_id(self, name: str) -> int:
        """1-based class id of ``name``; an unknown name raises an error that lists the classes."""
        if name not in self.class_names:
            raise GeofoundryError(f"unknown class {name!r}; classes: {', '.join(self.class_names)}")
        return self.class_names.index(name) + 1

    def footprint_prob(self, ids: np.ndarray) -> np.ndarray:
        """(H, W) probability of each pixel's target class in ``ids`` (H, W; 0 reads class 1): p(class), plus
        p(border) when the model outputs a border (border pixels are part of every object's footprint)."""
        p = np.take_along_axis(self.prob, np.clip(ids - 1, 0, None)[None], 0)[0]
        if BORDER in self.auxiliary:
            p = np.minimum(p + self.prob[self.class_id(BORDER) - 1], 1)
        return p

    def with_objects(self, objects: gpd.GeoDataFrame) -> SceneState:
        """New state with ``objects``, dropping empty geometries and renumbering rows."""
        geoms = objects.geometry.to_numpy()
        keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        return replace(self, objects=objects[keep].reset_index(drop=True))

    def with_geometry(self, geometry: gpd.GeoSeries) -> SceneState:
        """New state whose objects have ``geometry`` (same rows); empty results are dropped."""
        return self.with_objects(self.objects.set_geometry(geometry.values, crs=geometry.crs))

    def keep(self, rows: np.ndarray) -> SceneState:
        """New state with only the objects where the boolean ``rows`` is true."""
        return self.with_objects(self.objects[np.asarray(rows, dtype=bool)])
