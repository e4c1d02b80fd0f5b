"""Train a preset on the chips: targets, losses and augmentations from params; DDP; resumable; dvclive tracking."""

from .run import run

__all__ = ["run"]
