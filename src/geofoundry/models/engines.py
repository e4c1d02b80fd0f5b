"""Which engine runs a model, and whether a compiled package fits this machine (no torch needed to import this).

Engines (``predict.engine``, ``geofoundry predict --bundle --engine``):

* ``eager``: the PyTorch model (CUDA: bf16 autocast, replayed from a CUDA graph) — the predict stage only;
* ``compiled``: an AOTInductor package (``.pt2``) compiled ahead of time for one device kind, compute capability
  and torch version (:mod:`geofoundry.models.compiled`);
* ``onnx``: the bundle's ``model.onnx`` in ONNX Runtime on the CPU — bundles only;
* ``auto``: ``compiled`` on a GPU, else the CPU path of each (eager for the stage, onnx for bundles).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import get_args

from ..config import PredictConfig
from ..errors import GeofoundryError

ENGINES: tuple[str, ...] = get_args(PredictConfig.model_fields["engine"].annotation)
# the keys of a build target that must be equal for a package to run (the GPU's name is informative only: packages
# hold machine code for a compute capability, and run on any GPU of that capability)
MUST_MATCH = {"cuda": ("device", "capability", "torch", "cuda"), "cpu": ("device", "cpu", "torch")}


def machine(device: str) -> dict | None:
    """This machine's build target for ``device`` (``cuda`` or ``cpu``): what a package must have been compiled for.
    None when torch is not installed or the device is absent."""
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda":
        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability()
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(), "capability": f"{major}.{minor}",
                "torch": torch.__version__, "cuda": torch.version.cuda}
    return {"device": "cpu", "cpu": platform.machine(), "torch": torch.__version__}


def describe(target: dict) -> str:
    """``NVIDIA H200 (compute capability 9.0, CUDA 13.0), torch 2.11.0+cu130`` or ``x86_64 CPU, torch …``."""
    if target.get("device") == "cuda":
        where = (f"{target.get('gpu', 'a GPU')} (compute capability {target.get('capability', '?')}, "
                 f"CUDA {target.get('cuda', '?')})")
    else:
        where = f"{target.get('cpu', '?')} CPU"
    return f"{where}, torch {target.get('torch', '?')}"


def mismatch(built: dict, here: dict | None) -> str | None:
    """Why a package compiled for ``built`` cannot run on ``here`` (None: it can)."""
    device = built.get("device")
    if here is None or here["device"] != device:
        return f"it was compiled for {describe(built)}; torch has no {device} device on this machine"
    if any(built.get(k) != here.get(k) for k in MUST_MATCH.get(device, ("device",))):
        return f"it was compiled for {describe(built)}; this machine has {describe(here)}"
    return None


def stage_engine(requested: str, cuda: bool) -> str:
    """The engine the predict stage runs its checkpoint with: ``eager`` or ``compiled`` (built for this device)."""
    if requested == "onnx":
        raise GeofoundryError("predict.engine: onnx runs a delivered bundle's model.onnx (geofoundry predict "
                              "--bundle); the predict stage runs the checkpoint: use auto, eager or compiled")
    if requested == "auto":
        return "compiled" if cuda else "eager"
    return requested


def bundle_engine(requested: str, built: dict | None, pinned: bool,
                  here: Callable[[str], dict | None] = machine) -> tuple[str, str | None]:
    """The engine a bundle runs with (``compiled`` or ``onnx``) and, for ``onnx`` where the bundle has a package,
    why the package is not used.

    ``built``: the build target of the bundle's package (None: it has none); ``pinned``: the bundle was opened with
    its expected sha256. The package holds compiled machine code, so ``auto`` loads it only from a pinned bundle
    and for a GPU; ``compiled`` loads it whenever it fits this machine, and otherwise stops with the reason.
    """
    if requested == "eager":
        raise GeofoundryError("--engine eager: a bundle holds no PyTorch model; use auto, compiled or onnx")
    if requested == "onnx":
        return "onnx", None
    if built is None:
        reason = "the bundle has no compiled package (model.pt2)"
    elif requested == "auto" and not pinned:
        reason = ("its compiled package (model.pt2, machine code) is loaded only from a bundle pinned with --sha256, "
                  "or with --engine compiled")
    elif requested == "auto" and built.get("device") != "cuda":
        reason = f"its compiled package is for {describe(built)} (auto uses GPU packages only)"
    else:
        why = mismatch(built, here(str(built.get("device"))))
        reason = None if why is None else f"its compiled package does not fit this machine: {why}"
    if reason is None:
        return "compiled", None
    if requested == "compiled":
        raise GeofoundryError(f"--engine compiled: {reason}")
    return "onnx", reason
