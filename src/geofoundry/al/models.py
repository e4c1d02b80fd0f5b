"""The model that ranks: the trained checkpoint (with the predict stage's ensemble members and test-time augmentation)
or a delivered bundle's ONNX model."""

from __future__ import annotations

from pathlib import Path

from ..bundle import Bundle
from ..bundle.onnx_session import onnx_session
from ..config import AlConfig, PredictConfig
from ..errors import GeofoundryError
from ..models.checkpoint import ensemble_nets
from ..models.input_spec import InputSpec
from ..models.device import resolve_device
from .score import OnnxProber, TorchProber
from .strategies import STRATEGIES


def checkpoint_prober(model_path: Path, spec: InputSpec, predict: PredictConfig, cfg: AlConfig) -> TorchProber:
    """``model_path`` and ``predict.ensemble``'s members (weighted), under ``predict.tta`` as the predict stage runs
    them; on ``al.device``."""
    members = [(Path(model_path), 1.0)] + [(Path(m.path), m.weight) for m in predict.ensemble]
    nets, outputs = ensemble_nets([path for path, _ in members], spec.bands, spec.classes)
    return TorchProber(nets, outputs, resolve_device(cfg.device, "al.device"), [w for _, w in members], predict.tta, cfg.tta,
                       cfg.mc_samples)


def bundle_prober(bundle: Bundle, cfg: AlConfig, threads: int = 0) -> OnnxProber:
    """The bundle's ONNX model on onnxruntime (CPU), under the bundle's own test-time augmentation; refused for the
    strategies that need the checkpoint's encoder or dropout."""
    strategy = STRATEGIES[cfg.strategy]
    if strategy.diverse or strategy.samples == "dropout":
        raise GeofoundryError(f"al.strategy {cfg.strategy} needs the trained checkpoint (a bundle's ONNX model gives "
                              "probabilities only); rank with models/best.pt, or with entropy, margin, "
                              "tta_disagreement or random")
    spec = bundle.spec
    return OnnxProber(onnx_session(bundle.model, len(spec.bands), threads), bundle.outputs, spec.low, spec.high,
                      bundle.predict.tta, cfg.tta)
