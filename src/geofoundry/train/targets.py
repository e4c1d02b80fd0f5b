"""Training targets: plain class masks, or footprint + border (+ contact) classes that tell touching objects apart.

A target is a ``train.target`` name of ``choices.TARGETS``, the registry of targets: its entry, the auxiliary
classes it adds, is all :class:`Target` needs to encode chips and read class maps.

``footprint_border[_contact]`` (after the SpaceNet winners) adds classes after the object classes:

* ``border``: object pixels within ``border_px`` of their object's edge (towards background or another object);
* ``contact``: background pixels within ``contact_px`` of two or more objects (the gaps between neighbours).

Object pixels that are not border keep their class, so the footprint is object classes + border, and the
postprocess op ``watershed_border`` grows objects from the border-free cores. Objects are the instance ids of
``instances.npy`` when preprocess wrote one, else the connected components of each class of the label mask
(objects whose rasterised footprints touch then count as one). Everything is computed on the fly, after the
augmentation, on the ignore-aware label mask: ignored pixels stay ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..choices import BORDER, CONTACT, TARGETS

_BIG = np.iinfo(np.int32).max


def components(mask: np.ndarray, ignore_index: int) -> np.ndarray:
    """Instance ids (int32): 4-connected components of each object class, numbered across classes."""
    ids = np.zeros(mask.shape, np.int32)
    for k in np.unique(mask[(mask > 0) & (mask != ignore_index)]):
        lab, n = ndi.label(mask == k)
        ids[lab > 0] = lab[lab > 0] + ids.max()
    return ids


def _near_two(ids: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose (2r+1)² window holds two or more distinct non-zero ids."""
    size = 2 * radius + 1
    hi = ndi.maximum_filter(ids, size=size)
    lo = ndi.minimum_filter(np.where(ids > 0, ids, _BIG), size=size)
    return (hi > 0) & (lo != hi)


@dataclass(frozen=True)
class Target:
    """The target ``kind`` (a ``train.target`` name) of chips with ``n_classes`` classes (background included): its
    auxiliary classes (``choices.TARGETS``) follow the chip classes, ``border`` first (class ``n_classes``)."""

    n_classes: int
    kind: str = "classes"
    border_px: int = 2
    contact_px: int = 3

    @property
    def auxiliary(self) -> tuple[str, ...]:
        return TARGETS[self.kind]

    def _class(self, name: str) -> int | None:
        """The output class of auxiliary class ``name``, None when the target has none."""
        return self.n_classes + self.auxiliary.index(name) if name in self.auxiliary else None

    def names(self, classes: list[str]) -> list[str]:
        """Output class names: the chip classes, then the auxiliary ones (``border``, ``contact``)."""
        return [*classes, *self.auxiliary]

    def encode(self, mask: np.ndarray, ignore_index: int, instances: np.ndarray | None = None) -> np.ndarray:
        """Target class map (uint8) of one chip's label mask (and instance ids, when known)."""
        if not self.auxiliary:
            return mask
        valid = mask != ignore_index
        objects = (mask > 0) & valid
        ids = components(mask, ignore_index) if instances is None else np.where(objects, instances, 0)
        ids = ids.astype(np.int32)
        out = mask.copy()
        border, contact = self._class(BORDER), self._class(CONTACT)
        if border is not None:
            size = 2 * self.border_px + 1
            edge = ndi.maximum_filter(ids, size=size) != ndi.minimum_filter(ids, size=size)
            out[objects & edge] = border
        if contact is not None:
            out[valid & ~objects & _near_two(ids, self.contact_px)] = contact
        return out

    def footprint(self, classes: np.ndarray) -> np.ndarray:
        """Object pixels of a predicted or target class map: object classes and border (not contact, not ignore)."""
        border = self._class(BORDER)
        last = self.n_classes - 1 if border is None else border
        return (classes > 0) & (classes <= last)

    def instances(self, classes: np.ndarray) -> np.ndarray:
        """Objects of a class map: border-free cores grown over their footprint region (nearest core first);
        footprint regions without a core (objects thinner than the border) are objects of their own."""
        from skimage.segmentation import watershed as flood  # lazily: only validation needs it

        foot, border = self.footprint(classes), self._class(BORDER)
        if border is None:
            return ndi.label(foot)[0]
        cores, n = ndi.label(foot & (classes < border))
        grown = flood(np.zeros(foot.shape, np.uint8), cores, mask=foot) if n else cores
        rest, _ = ndi.label(foot & (grown == 0))
        return np.where(rest > 0, rest + n, grown)
