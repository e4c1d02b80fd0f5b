"""Post-processing: a chain of registered pure operations (``postprocess.steps``) from probabilities to polygons.

Importing the package registers every op (raster ops, polygonize, vector filters and geometry ops).
"""

from . import raster_ops, vector_filters, vector_geometry, vectorize  # noqa: F401  (registers the ops)
from .registry import OPS, build_chain, describe_ops, format_ops_table, register
from .run import run
from .state import SceneState

__all__ = ["OPS", "SceneState", "build_chain", "describe_ops", "format_ops_table", "register", "run"]
