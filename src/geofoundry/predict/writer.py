"""Probability GeoTIFF writer: strips into a temporary tiled file, then a Cloud-Optimized GeoTIFF, renamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from ..io.atomic import atomic_path


class ProbabilityWriter:
    """Context manager: ``write(window, probs, mask)`` strips; on success the COG appears at ``path``."""

    def __init__(self, path: Path, crs, transform, width: int, height: int, class_names: list[str]):
        self.path, self.class_names = Path(path), class_names
        self.profile = {"driver": "GTiff", "dtype": "uint8", "count": len(class_names), "crs": crs,
                        "transform": transform, "width": width, "height": height, "tiled": True,
                        "blockxsize": 256, "blockysize": 256, "BIGTIFF": "IF_SAFER"}

    def __enter__(self) -> ProbabilityWriter:
        self._atomic = atomic_path(self.path)
        self._final = self._atomic.__enter__()
        self._raw_path = self._final.with_suffix(".raw.tif")
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            self._ds = rasterio.open(self._raw_path, "w", **self.profile)
        return self

    def write(self, window: Window, probs: np.ndarray, mask: np.ndarray) -> None:
        """probs (K, h, w) in [0, 1]; mask (h, w) bool = valid output pixels."""
        values = np.rint(np.clip(probs, 0, 1) * 255).astype(np.uint8) * mask
        self._ds.write(values, window=window)
        self._ds.write_mask((mask * 255).astype(np.uint8), window=window)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            for i, name in enumerate(self.class_names, start=1):
                self._ds.set_band_description(i, f"p({name})")
            self._ds.update_tags(scale="1/255", content="class probability")
            self._ds.close()
            if exc_type is None:
                with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                    rio_copy(self._raw_path, self._final, driver="COG", compress="DEFLATE", blocksize=512,
                             overview_resampling="average", num_threads="ALL_CPUS")
        finally:
            self._raw_path.unlink(missing_ok=True)
            self._atomic.__exit__(exc_type, exc, tb)
