"""Named model presets (segmentation_models_pytorch + timm encoders) and checkpoints."""

from .checkpoint import load_checkpoint, save_checkpoint
from .registry import PRESETS, Preset, build_model, get_preset

__all__ = ["PRESETS", "Preset", "build_model", "get_preset", "load_checkpoint", "save_checkpoint"]
