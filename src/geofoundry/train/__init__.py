"""Train a preset on the chips: losses and augmentations from params, dvclive tracking, best checkpoint."""

from .run import run

__all__ = ["run"]
