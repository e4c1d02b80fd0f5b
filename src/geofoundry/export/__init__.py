"""Export the delivered model: ONNX (stretch and softmax inside), parity with onnxruntime, the delivery bundle."""

from .card import Provenance
from .run import run

__all__ = ["Provenance", "run"]
