"""``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (``predict.device``, ``train.device``) as a torch device of this
machine: an absent CUDA device is refused by name, and a chosen one becomes the current device, so that CUDA calls
without a device (streams, graphs, memory queries) go to it too."""

from __future__ import annotations

import os

import torch

from ..errors import GeofoundryError


def resolve_device(device: str, key: str = "device") -> torch.device:
    """The torch device ``device`` names (``key``: the setting, for errors)."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else (torch.cuda.current_device() if count else 0)
    if index >= count:
        raise GeofoundryError(f"{key}: {device}, but this machine has {count} CUDA device(s)"
                              + (f" (CUDA_VISIBLE_DEVICES={v})" if (v := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None else ""))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
