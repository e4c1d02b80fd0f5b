"""The catalog: scenes and geographic blocks with site, sensor, GSD, date, bands, valid fraction, label counts per
class at every hierarchy level and context fractions computed from the pixels, as GeoParquet."""

from .build import build_catalog, run
from .scan import SceneScan, scan_scene

__all__ = ["SceneScan", "build_catalog", "run", "scan_scene"]
