"""Self-supervised pretraining of a preset's encoder on the scenes' pixels, labelled or not, evaluation ground out."""

from .run import run

__all__ = ["run"]
