"""What params.yaml offers by name for training and prediction, declared below every package that implements it.

Names are validated when params.yaml loads (:mod:`geofoundry.config`), before any stage runs; config sits below the
stage packages (the layers in pyproject.toml) and cannot import them, nor the torch and smp code they hold. So:

* a registry whose entries are plain data lives here whole, and adding one is one entry: ``TARGETS`` (a training
  target's auxiliary output classes, read by ``train.targets.Target`` and ``models.outputs``) and ``TTA`` (the
  D4 elements ``predict.combine.with_tta`` averages);
* a registry whose entries are code lives in its stage package beside that code, and its names are declared here:
  ``LOSSES`` for ``train.losses.LOSSES``, ``SCHEDULES`` for ``train.optim.SCHEDULES``. Adding one is its entry
  there and its name here; ``tests/test_registries.py`` holds each registry equal to what config accepts (the
  optimisers, whose settings config validates, are declared by their config models: ``config.OptimizerConfig``).
"""

from __future__ import annotations

BORDER, CONTACT = "border", "contact"

# train.target → the auxiliary output classes after the chip classes, in output order (border first when present:
# the footprint is the object classes and the border)
TARGETS: dict[str, tuple[str, ...]] = {
    "classes": (),
    "footprint_border": (BORDER,),
    "footprint_border_contact": (BORDER, CONTACT),
}

# predict.tta → D4 elements as (quarter turns, flip left-right first), averaged;
# "flips": identity, left-right, up-down (= left-right + half turn)
TTA: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flips": ((0, False), (0, True), (2, True)),
    "d4": tuple((k, flip) for flip in (False, True) for k in range(4)),
}

LOSSES = ("ce", "dice", "focal", "lovasz", "tversky")  # train.loss: name → weight
CLASS_WEIGHTED_LOSSES = ("ce", "dice", "focal", "tversky")  # the terms that take train.class_weights
SCHEDULES = ("onecycle", "cosine", "constant")  # train.schedule
