"""Evaluate predictions against truth labels: object matching, pixel metrics, plots and overlays."""

from .run import headline, run

__all__ = ["headline", "run"]
