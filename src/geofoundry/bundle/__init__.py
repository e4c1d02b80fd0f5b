"""The delivered bundle format: its manifest, the verified reader (checksums, paths, no pickles), its ONNX model in an
onnxruntime session, and TensorRT engine builds from it. Needs no training code and no params.yaml."""

from .reader import Bundle, open_bundle

__all__ = ["Bundle", "open_bundle"]
