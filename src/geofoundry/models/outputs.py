"""A model's output classes: the chip (target) classes, then the auxiliary classes of its ``train.target``
(``choices.TARGETS``).

``footprint_border`` models add ``border`` (object pixels near an edge: part of the object's footprint),
``footprint_border_contact`` models also ``contact`` (background between touching objects). Auxiliary classes are
never objects. The checkpoint's ``classes`` are the output classes (background first); probability GeoTIFFs name
their bands ``p(<class>)``, one per non-background output class.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..choices import BORDER, TARGETS
from ..errors import GeofoundryError

_BAND = re.compile(r"^p\((.+)\)$")


def auxiliary(names: Sequence[str], targets: Sequence[str], where: str, kind: str | None = None) -> tuple[str, ...]:
    """The auxiliary classes of output classes ``names``: they must be ``targets`` (both with or both without
    background), then the auxiliary classes of target ``kind`` (of any kind when None); else an error at ``where``."""
    names, targets = list(names), list(targets)
    extra = tuple(names[len(targets):])
    allowed = [TARGETS[kind]] if kind is not None else list(TARGETS.values())
    if names[:len(targets)] != targets or extra not in allowed:
        expected = " or ".join(str(targets + list(a)) for a in allowed)
        what = f" (train.target {kind})" if kind is not None else ""
        raise GeofoundryError(f"{where}: output classes {names}, expected {expected}{what}: the chip classes, "
                              "then the auxiliary classes of the training target")
    return extra


def probability_classes(ds, targets: Sequence[str]) -> tuple[list[str], tuple[str, ...]]:
    """(classes, auxiliary classes) of an open probability GeoTIFF: its band descriptions ``p(<class>)`` or, when it
    has none, ``targets`` (background left out); checked with :func:`auxiliary`."""
    descriptions = list(ds.descriptions)
    if any(descriptions):
        found = [_BAND.match(d or "") for d in descriptions]
        if not all(found):
            raise GeofoundryError(f"{ds.name}: band descriptions {descriptions} are not all 'p(<class>)'")
        names = [m.group(1) for m in found]
    else:
        names = list(targets)
        if ds.count != len(names):
            raise GeofoundryError(f"{ds.name}: {ds.count} bands but {len(names)} classes {names} and no band "
                                  "descriptions; expected one band per non-background class")
    return names, auxiliary(names, targets, f"{ds.name} (band descriptions)")


def footprints(prob: np.ndarray, auxiliary: Sequence[str], full: float) -> np.ndarray:
    """Footprint probabilities (n_objects, H, W) of the object classes from a model's bands (object classes, then
    ``auxiliary``): p(class), plus p(border) for each pixel's most probable object class (the border is part of
    the footprint); ``contact`` is left out (background). ``full`` is probability 1 in ``prob``'s units (1.0 for
    floats, 255 for uint8 levels); the dtype is kept."""
    n = len(prob) - len(auxiliary)
    if BORDER not in auxiliary:
        return prob[:n]
    top = np.arange(n)[:, None, None] == prob[:n].argmax(0)
    total = prob[:n].astype(np.float32) + top * prob[n + list(auxiliary).index(BORDER)].astype(np.float32)
    return np.minimum(total, full).astype(prob.dtype)
