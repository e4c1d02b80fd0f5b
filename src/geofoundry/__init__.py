"""geofoundry: GeoTIFF scenes + vector labels -> reproducible, deployable detectors."""

__version__ = "0.1.0"
