"""Checkpoints as plain tensors and primitives, so ``torch.load(weights_only=True)`` reads them."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import GeofoundryError
from ..io.atomic import atomic_path
from .outputs import auxiliary
from .registry import PRESETS, build_model

FORMAT = "geofoundry-checkpoint/1"


def save_checkpoint(path: Path, model: torch.nn.Module, *, preset: str, bands: list[str], classes: list[str],
                    extra: dict[str, Any] | None = None) -> None:
    state = {"format": FORMAT, "preset": preset, "bands": list(bands), "classes": list(classes),
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, bands: list[str] | None = None) -> dict[str, Any]:
    """Load and check a checkpoint: known preset and, when given, the same band names."""
    try:
        with warnings.catch_warnings():  # a crafted file's pickle protocol: the refusal below says enough
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GeofoundryError(f"{path}: checkpoint not found (run the train stage)") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad or unsafe file
        raise GeofoundryError(f"{path}: not a readable weights-only checkpoint ({_why(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise GeofoundryError(f"{path}: not a geofoundry checkpoint (expected format {FORMAT})")
    if ckpt["preset"] not in PRESETS:
        raise GeofoundryError(f"{path}: made with unknown preset {ckpt['preset']!r}; this version knows {list(PRESETS)}")
    if bands is not None and list(bands) != ckpt["bands"]:
        raise GeofoundryError(f"{path}: trained on bands {ckpt['bands']} ({len(ckpt['bands'])}), "
                              f"but the input has {list(bands)} ({len(bands)})")
    return ckpt


def _why(err: Exception) -> str:
    """One line for a failed ``torch.load``: the unpickler's own reason when it refused the file's content."""
    refused = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", str(err), re.S)
    if refused:  # its first sentence: the rest tells how to allow what was refused
        reason = re.split(r"(?<=\.)\s", " ".join(refused[1].split()), maxsplit=1)[0]
        return f"it holds more than tensors and plain values, so it was refused unread: {reason}"
    return f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"


def model_from_checkpoint(ckpt: dict[str, Any]) -> torch.nn.Module:
    model = build_model(ckpt["preset"], len(ckpt["bands"]), len(ckpt["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def output_classes(ckpt: dict[str, Any], targets: list[str], path: Path) -> list[str]:
    """The checkpoint's output classes, checked: the chip classes ``targets`` (background first), then the auxiliary
    classes of its training target (``border``, ``contact``)."""
    auxiliary(ckpt["classes"], targets, str(path), ckpt.get("target", "classes"))
    return list(ckpt["classes"])


def ensemble_nets(paths: list[Path], bands: list[str], targets: list[str]) -> tuple[list[torch.nn.Module], list[str]]:
    """The networks of the checkpoints ``paths`` (the best model first, then ensemble members) and the output classes
    they all share (refused where a member's differ)."""
    nets, outputs = [], None
    for path in paths:
        ckpt = load_checkpoint(path, bands)
        classes = output_classes(ckpt, targets, path)
        if outputs is not None and classes != outputs:
            raise GeofoundryError(f"{path}: outputs the classes {classes}, but {paths[0]} outputs {outputs}; "
                                  "ensemble members must output the same classes")
        outputs = classes
        nets.append(model_from_checkpoint(ckpt))
    return nets, outputs
