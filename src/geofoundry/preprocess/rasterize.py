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
        h, w = shape
        x0, y0 = transform @ (0, 0)
        x1, y1 = transform @ (w, h)
        hits = self.tree.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        mask = np.zeros(shape, dtype=np.uint8)
        if len(hits):
            order = hits[np.argsort(self.class_ids[hits], kind="stable")]  # higher class ids drawn last
            shapes = [(self.geoms[i], int(self.class_ids[i])) for i in order]
            mask = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")
            if self.border_px:
                edges = rasterize([(self.geoms[i].boundary, 1) for i in hits], out_shape=shape, transform=transform,
                                  fill=0, dtype="uint8", all_touched=True).astype(bool)
                if self.border_px > 1:
                    edges = binary_dilation(edges, iterations=self.border_px - 1)
                mask[edges] = ignore_index
        mask[~valid] = ignore_index
        return mask
