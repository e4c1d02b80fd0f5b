"""Start a model from a :class:`~.init_source.Source`: every matching tensor or the encoder's only, the first
convolution adapted to other bands, a new head for other classes; a report of what was loaded, reshaped, skipped.

Rules (docs/TRAINING.md, "Fine-tuning"):

- a tensor loads when the file has one of the same name and shape;
- the first convolution's kernels are matched to the bands by name: a band the file was trained on takes its own
  kernel, any other band the mean of the file's kernels; all are then scaled by (the file's bands) / (the model's
  bands), so the layer's response to inputs of similar level keeps its size (timm's ``adapt_input_conv`` rule);
- when the classes differ (names and order), the segmentation head starts afresh (its tensors are skipped);
- any other difference of shape skips the tensor. Nothing matched is refused.
"""

from __future__ import annotations

import logging
from collections import Counter

import torch

from ..errors import GeofoundryError
from ..models.registry import PRESETS, get_preset
from .init_source import ENCODER, Source

log = logging.getLogger(__name__)

HEAD = "segmentation_head."


def check_fit(source: Source, arch: str, parts: str) -> None:
    """Refuse weights of another encoder, or of another preset when every tensor (``parts: all``) is asked for."""
    preset = get_preset(arch)
    made = f"preset {source.preset!r} ({source.encoder} encoder)" if source.preset else f"a {source.encoder} encoder"
    if source.encoder != preset.encoder:
        fits = [p.name for p in PRESETS.values() if p.encoder == source.encoder]
        fix = f"set arch to {' or '.join(fits)}" if fits else "no preset of this version uses that encoder"
        raise GeofoundryError(f"train.init_from: {source.path} holds {made}, but arch {arch!r} has a "
                              f"{preset.encoder} encoder: {fix}, or start from weights of a {preset.encoder} encoder")
    if parts == "all" and source.preset is not None and source.preset != arch:
        raise GeofoundryError(f"train.init_from: {source.path} holds {made}, but arch is {arch!r} (the same "
                              f"encoder, another decoder): set train.init_parts: encoder to start from its encoder "
                              f"only, or arch: {source.preset}")


def first_conv(model: torch.nn.Module) -> str:
    """The state_dict key of the encoder's first convolution's kernel: the one that sees the bands."""
    for name, module in model.encoder.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            return f"{ENCODER}{name}.weight"
    raise GeofoundryError("the model's encoder has no convolution to take the bands")


def adapt_bands(kernel: torch.Tensor, have: list[str], want: list[str]) -> tuple[torch.Tensor, list[str]]:
    """``kernel`` (out, len(have), k, k) → (out, len(want), k, k) by band name (module docstring); also the bands
    whose kernel was copied."""
    mean = kernel.mean(dim=1)
    copied = [b for b in want if b in have]
    out = torch.stack([kernel[:, have.index(b)] if b in have else mean for b in want], dim=1)
    return out * (len(have) / len(want)), copied


def _kernels_alike(given: torch.Tensor, target: torch.Tensor, bands: list[str]) -> bool:
    """The same kernels but for the bands: one input channel per band of the file."""
    return given.ndim == 4 and given.shape[1] == len(bands) and \
        (given.shape[0], *given.shape[2:]) == (target.shape[0], *target.shape[2:])


def apply(model: torch.nn.Module, source: Source, arch: str, parts: str, bands: list[str], classes: list[str],
          gsd_m: float | None = None) -> dict:
    """Load ``source`` into ``model`` (built for ``bands`` and ``classes``) by the rules above; the report."""
    check_fit(source, arch, parts)
    own = model.state_dict()
    conv = first_conv(model)
    loaded, reshaped, skipped = [], {}, {}
    state = dict(own)
    for key, target in own.items():
        if parts == "encoder" and not key.startswith(ENCODER):
            continue
        given = source.tensors.get(key)
        if given is None:
            skipped[key] = "not in the file"
        elif key.startswith(HEAD) and source.classes is not None and source.classes != classes:
            skipped[key] = f"new head: the file's classes are {source.classes}, the model's {classes}"
        elif key == conv and source.bands != bands and _kernels_alike(given, target, source.bands):
            state[key], copied = adapt_bands(given.to(target.dtype), source.bands, bands)
            others = [b for b in bands if b not in copied]
            reshaped[key] = (f"bands {source.bands} → {bands}: {copied or 'none'} copied by name, {others or 'none'} "
                             f"the mean of the file's kernels, all × {len(source.bands)}/{len(bands)}")
        elif given.shape == target.shape:
            state[key] = given.to(target.dtype)
            loaded.append(key)
        else:
            skipped[key] = f"shape {list(given.shape)} in the file, {list(target.shape)} in the model"
    if not loaded and not reshaped:
        raise GeofoundryError(f"train.init_from: nothing in {source.path} matched the model (arch {arch!r}, "
                              f"train.init_parts: {parts}): none of its {len(source.tensors)} tensors has the name "
                              f"and shape of one of the model's")
    model.load_state_dict(state)
    report = {"from": source.describe(), "parts": parts, "loaded": loaded, "reshaped": reshaped, "skipped": skipped,
              "unused": sorted(set(source.tensors) - set(loaded) - set(reshaped) - set(skipped))}
    if gsd_m is not None and source.gsd_m is not None and abs(source.gsd_m / gsd_m - 1) > 0.1:
        report["note"] = f"the weights were learnt at {source.gsd_m} m GSD, the chips are {gsd_m} m"
        log.warning("train.init_from: %s", report["note"])
    log.info("%s", summary(report))
    return report


def summary(report: dict) -> str:
    """One line: how many tensors were loaded, reshaped, skipped (by reason) and left unused."""
    reasons = Counter(why.split(":")[0] for why in report["skipped"].values())
    skipped = ", ".join(f"{n} {why}" for why, n in reasons.items())
    source = report["from"]
    return (f"init from {source['path']} ({source['kind']}, sha256 {source['sha256'][:12]}, parts: "
            f"{report['parts']}): {len(report['loaded'])} tensors loaded, {len(report['reshaped'])} reshaped, "
            f"{len(report['skipped'])} skipped{f' ({skipped})' if skipped else ''}, "
            f"{len(report['unused'])} of the file's unused")
