"""The trained PyTorch model(s) as a tile model on their device: ensemble members, TTA, bf16 on CUDA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import Device, PredictConfig
from ..errors import GeofoundryError
from ..models.checkpoint import load_checkpoint, model_from_checkpoint, output_classes
from ..models.deployed import DeployedModel
from ..models.input_spec import InputSpec
from .arrays import TileModel
from .combine import ensemble, with_tta
from .cuda_graph import graphed
from .pinned import PinnedPool


@dataclass(frozen=True)
class TorchArrays:
    """Tiles stacked and blended as torch tensors on ``device``; host copies are page-locked (CUDA: right-sized
    blocks from ``pool``, reused) and asynchronous."""

    device: torch.device
    pool: PinnedPool = field(default_factory=PinnedPool, compare=False, repr=False)
    xp = torch

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def steady_shapes(self) -> bool:
        return self.cuda

    def empty(self, shape: tuple[int, ...], dtype) -> torch.Tensor:
        """A host tensor; page-locked on CUDA."""
        if not self.cuda:
            return torch.from_numpy(np.empty(shape, dtype))
        dtype = np.dtype(dtype)
        return torch.from_numpy(self.pool.array(int(np.prod(shape)) * dtype.itemsize).view(dtype).reshape(shape))

    def put(self, a: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.from_numpy(a) if isinstance(a, np.ndarray) else a
        return t.to(self.device, non_blocking=True).float()

    def zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape, device=self.device)

    def copied(self) -> Callable[[], None]:
        """Wait for the copies queued so far (CPU: ``put`` has copied already)."""
        if not self.cuda:
            return lambda: None
        event = torch.cuda.Event()
        event.record()
        return event.synchronize

    def to_uint8(self, a: torch.Tensor) -> torch.Tensor:
        return a.to(torch.uint8)

    def pack_bits(self, a: torch.Tensor) -> torch.Tensor:
        n, w = a.shape
        bits = torch.zeros((n, -(-w // 8), 8), dtype=torch.uint8, device=a.device)
        bits.view(n, bits.shape[1] * 8)[:, :w] = a != 0
        shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=a.device)
        return (bits << shifts).sum(-1, dtype=torch.uint8)

    @staticmethod
    def windows(a: torch.Tensor, size: int, step: int) -> torch.Tensor:
        return a.unfold(-1, size, step)

    def take(self, parts: list[torch.Tensor]) -> Callable[[], list[np.ndarray]]:
        """Start the copies of uint8 ``parts`` to page-locked host memory (one block for all); the function returned
        waits for them."""
        if not self.cuda:
            return lambda: [p.numpy() for p in parts]
        block, hosts, start = self.pool.array(sum(p.numel() for p in parts)), [], 0
        for p in parts:
            hosts.append(block[start:start + p.numel()].reshape(tuple(p.shape)))
            torch.from_numpy(hosts[-1]).copy_(p, non_blocking=True)
            start += p.numel()
        copied = torch.cuda.Event()
        copied.record()
        return lambda: (copied.synchronize(), hosts)[1]


def resolve_device(device: Device) -> torch.device:
    return torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")


def torch_model_fn(model: DeployedModel, device: Device, cuda_graphs: bool = True) -> TileModel:
    """The deployed torch model on its device (CUDA: bf16 autocast, channels_last, cuDNN autotuning and, with
    ``cuda_graphs``, the forward replayed from a CUDA graph per batch shape)."""
    arrays = TorchArrays(resolve_device(device))
    cuda = arrays.cuda
    model = model.to(arrays.device, memory_format=torch.channels_last if cuda else torch.preserve_format).eval()
    torch.backends.cudnn.benchmark = cuda

    def forward(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda, cache_enabled=False):
            return model(batch).float()

    run = graphed(forward) if cuda and cuda_graphs else forward

    @torch.inference_mode()
    def fn(batch: torch.Tensor) -> torch.Tensor:
        if cuda:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return run(batch)

    return TileModel(fn, arrays)


def build_model_fn(cfg: PredictConfig, spec: InputSpec, model_path: Path) -> tuple[TileModel, list[str]]:
    """The best model, averaged with the ensemble members, under test-time augmentation; and its output classes
    (the chip classes, then any auxiliary ones), which every member must share."""
    members = [(model_path, 1.0)] + [(Path(m.path), m.weight) for m in cfg.ensemble]
    models, outputs = [], None
    for path, _ in members:
        ckpt = load_checkpoint(path, spec.bands)
        classes = output_classes(ckpt, spec.classes, path)
        if outputs is not None and classes != outputs:
            raise GeofoundryError(f"{path}: outputs the classes {classes}, but {model_path} outputs {outputs}; "
                                  "ensemble members must output the same classes")
        outputs = classes
        models.append(torch_model_fn(DeployedModel(model_from_checkpoint(ckpt), spec.low, spec.high), cfg.device,
                                     cfg.cuda_graphs))
    arrays = models[0].arrays
    fn = with_tta(ensemble([m.fn for m in models], [w for _, w in members]), cfg.tta, arrays.xp)
    return TileModel(fn, arrays), outputs
