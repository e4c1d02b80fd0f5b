"""Predict whole scenes by streaming, blended sliding windows into probability GeoTIFFs."""

from .run import run

__all__ = ["run"]
