"""What params.yaml offers by name for training, prediction and the running point search, declared below every
package that implements it.

Names are validated when params.yaml loads (:mod:`geofoundry.config`), before any stage runs; config sits below the
stage packages (the layers in pyproject.toml) and cannot import them, nor the torch and smp code they hold. So:

* a registry whose entries are plain data lives here whole, and adding one is one entry: ``TARGETS`` (a training
  target's auxiliary output classes, read by ``train.targets.Target`` and ``models.outputs``) and ``TTA`` (the
  D4 elements ``predict.combine.with_tta`` averages);
* a registry whose entries are code lives in its stage package beside that code, and its names are declared here:
  ``LOSSES`` for ``train.losses.LOSSES``, ``SCHEDULES`` for ``train.optim.SCHEDULES``, ``ARCHS`` for
  ``models.registry.PRESETS``, ``POSTPROCESS_OPS`` for ``postprocess.OPS`` (the ops' parameters are validated by
  the postprocess chain, when a stage builds it), ``RPS_SEARCHES`` and ``RPS_OBJECTIVES`` for
  ``rps.samplers.SAMPLERS`` and ``rps.objectives.OBJECTIVES``, ``PRETRAIN_METHODS`` for ``pretrain.methods.METHODS``.
  Adding one is its entry there and its name here;
  ``tests/test_registries.py`` holds each registry equal to what config accepts (the optimisers, whose settings
  config validates, are declared by their config models: ``config.OptimizerConfig``).
"""

from __future__ import annotations

import difflib

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
RPS_SEARCHES = ("grid", "random", "tpe")  # rps.search
RPS_EXHAUSTIVE = ("grid",)  # searches that try every point: lists and stepped ranges only, within rps.trials
RPS_OBJECTIVES = ("f1", "recall_at_precision", "precision_at_recall")  # rps.objective
PRETRAIN_METHODS = ("simclr",)  # pretrain.method: pretrain.methods.METHODS

# arch: the model presets
ARCHS = ("unet", "unet-r34", "unet-scse", "unet-seresnext50", "unet-effb0", "unet-mobilenet", "unet-convnext",
         "unetpp", "deeplab", "deeplabv3", "deeplab-effb3", "fpn", "fpn-effb2", "pspnet", "linknet", "manet", "pan",
         "upernet", "segformer", "segformer-b2", "dpt")
# postprocess.steps: the operations a chain is made of
POSTPROCESS_OPS = ("threshold", "open", "close", "fill_holes", "remove_small", "watershed", "watershed_border",
                   "polygonize", "min_area", "max_area", "min_width", "aspect_ratio", "min_score", "nms", "geofence",
                   "drop_border_touching", "simplify", "buffer_unbuffer", "convex_hull", "min_rotated_rectangle",
                   "regularize", "straighten", "dissolve", "merge_seams", "reproject", "attributes")


def closest(name: str, known) -> str | None:
    """The known name nearest to a misspelt ``name``, if one is close."""
    near = difflib.get_close_matches(name, list(known), n=1)
    return near[0] if near else None


def unknown_arch(name: str) -> str:
    near = closest(name, ARCHS)
    hint = f" Did you mean {near}?" if near else ""
    return f"unknown arch {name!r}.{hint} Known presets: {', '.join(ARCHS)} (geofoundry models)"


def unknown_op(name: str) -> str:
    near = closest(name, POSTPROCESS_OPS)
    hint = f"; did you mean {near!r}?" if near else ""
    return f"unknown operation {name!r}{hint} (`geofoundry postprocess --list` lists them)"
