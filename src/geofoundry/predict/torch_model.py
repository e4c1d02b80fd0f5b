"""The trained PyTorch model(s) as a prediction function: ensemble members, TTA, bf16 on CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import PredictConfig
from ..errors import GeofoundryError
from ..models.checkpoint import load_checkpoint, model_from_checkpoint
from ..models.deployed import DeployedModel
from ..preprocess.stats import InputSpec
from .combine import ensemble, with_tta
from .sliding import ModelFn


def torch_model_fn(model: DeployedModel, device: str) -> ModelFn:
    """Wrap the deployed torch model as a numpy function (bf16 autocast on CUDA)."""
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    model = model.to(dev).eval()

    @torch.inference_mode()
    def fn(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            return model(x).float().cpu().numpy()

    return fn


def build_model_fn(cfg: PredictConfig, spec: InputSpec, model_path: Path) -> ModelFn:
    """The best model, averaged with the ensemble members, under test-time augmentation."""
    members = [(model_path, 1.0)] + [(Path(m.path), m.weight) for m in cfg.ensemble]
    fns = []
    for path, _ in members:
        ckpt = load_checkpoint(path, spec.bands)
        if ckpt["classes"] != spec.classes:
            raise GeofoundryError(f"{path}: predicts classes {ckpt['classes']}, expected {spec.classes}")
        fns.append(torch_model_fn(DeployedModel(model_from_checkpoint(ckpt), spec.low, spec.high), cfg.device))
    return with_tta(ensemble(fns, [w for _, w in members]), cfg.tta)
