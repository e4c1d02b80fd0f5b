"""Delivered bundles, read side: verification (checksums, paths, no pickles), CPU prediction with onnxruntime and
TensorRT engine builds. Needs no training code and no params.yaml."""

from .reader import Bundle, open_bundle

__all__ = ["Bundle", "open_bundle"]
