"""The trained PyTorch model(s) as a tile model on their device: ensemble members, TTA, bf16 on CUDA, run eagerly or
compiled (``predict.engine``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import Device, PredictConfig
from ..errors import GeofoundryError
from ..models.checkpoint import ensemble_nets
from ..models.deployed import DeployedModel
from ..models.device import resolve_device
from ..models.engines import stage_engine
from ..models.input_spec import InputSpec
from .arrays import TileModel
from .combine import ensemble, with_tta
from .cuda_graph import graphed
from .pinned import PinnedPool

log = logging.getLogger(__name__)


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


def torch_model_fn(model: DeployedModel, device: Device, cuda_graphs: bool = True) -> TileModel:
    """The deployed torch model on its device (CUDA: bf16 autocast, channels_last, cuDNN autotuning and, with
    ``cuda_graphs``, the forward replayed from a CUDA graph per batch shape)."""
    arrays = TorchArrays(resolve_device(device, "predict.device"))
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


def engine_model_fn(model: DeployedModel, cfg: PredictConfig, cache: Path | None = None,
                    name: str = "model") -> TileModel:
    """The deployed model on ``cfg.device`` run by the engine ``cfg.engine`` picks there (see
    :mod:`geofoundry.models.engines`). The compiled engine's package is compiled once per model and machine into
    ``cache`` (:func:`~geofoundry.models.compiled.cached_package`) and checked on the first batch against the float32
    eager model; under ``auto`` a package that cannot be compiled or fails that check leaves the eager model
    running, with a warning. The tile model's ``engines`` says what runs ``name`` and why."""
    eager = torch_model_fn(model, cfg.device, cfg.cuda_graphs)
    arrays = eager.arrays
    engine = stage_engine(cfg.engine, arrays.cuda)
    report = {"model": name, "requested": cfg.engine, "engine": engine, "device": arrays.device.type}
    if engine == "eager":
        return TileModel(eager.fn, arrays, [report])
    from ..models.compiled import cached_package
    from .compiled import checked, package_fn

    try:
        path, record = cached_package(model, cfg.tile, cfg.batch_size, arrays.device.type, cache)
        compiled = package_fn(path, arrays.cuda, arrays.cuda and cfg.cuda_graphs, report)
    except Exception as e:  # noqa: BLE001 - compiling and loading raise many types; each means no compiled engine
        message = f"{name}: could not compile or load it for {arrays.device.type} ({type(e).__name__}: {e})"
        if cfg.engine == "compiled":
            raise GeofoundryError(f"predict.engine: compiled: {message}") from e
        log.warning("%s; running it eagerly", message)
        return TileModel(eager.fn, arrays, [{**report, "engine": "eager", "reason": message}])
    report["package"] = {**record, "path": str(path)}

    @torch.inference_mode()
    def reference(batch: torch.Tensor) -> torch.Tensor:
        return model(batch)  # float32, no autocast

    fn = checked(compiled, reference, eager.fn, cfg.compiled_atol, report, strict=cfg.engine == "compiled",
                 names=("float32 eager model", "eager"), setting="predict.compiled_atol")
    return TileModel(fn, arrays, [report])


def build_model_fn(cfg: PredictConfig, spec: InputSpec, model_path: Path,
                   cache: Path | None = None) -> tuple[TileModel, list[str]]:
    """The best model, averaged with the ensemble members, under test-time augmentation; and its output classes
    (the chip classes, then any auxiliary ones), which every member must share. ``cache``: where compiled packages
    are kept (:func:`engine_model_fn`)."""
    members = [(model_path, 1.0)] + [(Path(m.path), m.weight) for m in cfg.ensemble]
    nets, outputs = ensemble_nets([path for path, _ in members], spec.bands, spec.classes)
    models = [engine_model_fn(DeployedModel(net, spec.low, spec.high), cfg, cache, str(path))
              for net, (path, _) in zip(nets, members)]
    arrays = models[0].arrays
    fn = with_tta(ensemble([m.fn for m in models], [w for _, w in members]), cfg.tta, arrays.xp)
    return TileModel(fn, arrays, [r for m in models for r in m.engines]), outputs
