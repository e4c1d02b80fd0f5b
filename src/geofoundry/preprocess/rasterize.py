"""Burn label polygons into a chip's class mask, with an ignore value where the truth is unknown."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy.ndimage import binary_dilation


class LabelBurner:
    """Labels of one scene (already in the scene CRS, with ``class_id``), burned window by window."""

    def __init__(self, labels: gpd.GeoDataFrame, border_px: int = 0):
        self.border_px = border_px
        self.geoms = labels.geometry.values
        self.class_ids = labels["class_id"].to_numpy() if len(labels) else np.zeros(0, dtype=int)
        self.tree = shapely.STRtree(self.geoms)

    def burn(self, transform: Affine, shape: tuple[int, int], valid: np.ndarray, ignore_index: int) -> np.ndarray:
        """Class mask (uint8): 0 background, k class k, ``ignore_index`` outside ``valid`` and, with ``border_px``,
        on object edges (every pixel an edge touches, grown by ``border_px - 1``), so touching objects stay apart."""
        hits = self._order(self._hits(transform, shape))
        mask = np.zeros(shape, dtype=np.uint8)
        if len(hits):
            shapes = [(self.geoms[i], int(self.class_ids[i])) for i in hits]
            mask = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")
            if self.border_px:
                edges = rasterize([(self.geoms[i].boundary, 1) for i in hits], out_shape=shape, transform=transform,
                                  fill=0, dtype="uint8", all_touched=True).astype(bool)
                if self.border_px > 1:
                    edges = binary_dilation(edges, iterations=self.border_px - 1)
                mask[edges] = ignore_index
        mask[~valid] = ignore_index
        return mask

    def instances(self, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
        """Object ids (uint16, 1… within the chip, 0 background), drawn in :meth:`burn`'s order, so that a pixel
        has the id of the object whose class it has; touching objects keep apart (training's border targets)."""
        hits = self._order(self._hits(transform, shape))
        if len(hits) >= np.iinfo(np.uint16).max:
            raise ValueError(f"{len(hits)} objects in one chip: more than uint16 instance ids can number")
        if not len(hits):
            return np.zeros(shape, dtype=np.uint16)
        shapes = [(self.geoms[i], n) for n, i in enumerate(hits, start=1)]
        return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint16")

    def _hits(self, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
        """Indexes of the labels whose bounds meet the window."""
        h, w = shape
        x0, y0 = transform @ (0, 0)
        x1, y1 = transform @ (w, h)
        return self.tree.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))

    def _order(self, hits: np.ndarray) -> np.ndarray:
        """Drawing order: higher class ids last (they win where objects overlap)."""
        return hits[np.argsort(self.class_ids[hits], kind="stable")]
