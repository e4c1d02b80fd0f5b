"""Turn selected scenes into training chips: bands by name, GSD, 8-bit stretch, labels with an ignore value."""

from .run import run

__all__ = ["run"]
