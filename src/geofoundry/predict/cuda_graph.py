"""A CUDA model forward captured once per batch shape and replayed: one launch instead of one per kernel.

Streaming prediction drives the GPU from one Python thread while reading and writing threads share the GIL; a
replayed graph needs the GIL for a few calls per batch instead of hundreds of kernel launches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)
WARMUP = 3  # eager runs before the capture (cuDNN autotuning, allocator)


def graphed(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward`` (CUDA tensors in and out, no host synchronisation inside) replayed from a CUDA graph per input
    shape, dtype and layout. Outputs are copies: they outlive the next replay. A shape that cannot be captured
    runs eagerly (logged once)."""
    graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor] | None] = {}

    def capture(batch: torch.Tensor):
        static = batch.clone(memory_format=torch.preserve_format)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                forward(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = forward(static)
        return graph, static, out

    def run(batch: torch.Tensor) -> torch.Tensor:
        key = (tuple(batch.shape), batch.dtype, batch.stride())
        if key not in graphs:
            try:
                graphs[key] = capture(batch)
            except RuntimeError as e:
                log.warning("CUDA graph capture failed for batches %s (%s); running eagerly", key[0], e)
                graphs[key] = None
        entry = graphs[key]
        if entry is None:
            return forward(batch)
        graph, static, out = entry
        static.copy_(batch)
        graph.replay()
        return out.clone()

    return run
