"""Evaluate predictions against truth labels: object matching, pixel metrics, plots and overlays."""

from .run import run

__all__ = ["run"]
