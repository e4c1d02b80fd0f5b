"""Side-by-side validation pictures (image | truth | prediction) for dvclive."""

from __future__ import annotations

import numpy as np
from PIL import Image

PALETTE = np.array([[0, 0, 0], [230, 60, 60], [60, 200, 60], [60, 60, 230], [230, 200, 40]], dtype=np.uint8)


def colorize(classes: np.ndarray, ignore_index: int) -> np.ndarray:
    rgb = PALETTE[np.clip(classes, 0, len(PALETTE) - 1)]
    rgb[classes == ignore_index] = (90, 90, 90)
    return rgb


def preview_image(dataset, pairs: list[tuple[np.ndarray, np.ndarray]], ignore_index: int) -> list[Image.Image]:
    """One picture per (target, prediction) pair of the first val chips, in order."""
    out = []
    for i, (truth, pred) in enumerate(pairs):
        image = np.moveaxis(np.asarray(dataset.images[i][:3]), 0, -1)
        if image.shape[-1] < 3:
            image = np.repeat(image[..., :1], 3, axis=-1)
        out.append(Image.fromarray(np.concatenate([image, colorize(truth, ignore_index),
                                                   colorize(pred, ignore_index)], axis=1)))
    return out
