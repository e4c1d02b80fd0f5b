"""Select scenes and classes, lay a global block grid over them, and split blocks into train/val/test."""

from .run import run

__all__ = ["run"]
