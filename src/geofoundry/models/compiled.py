"""The deployed model compiled ahead of time: ``torch.export`` + AOTInductor package (``.pt2``), loadable without the
model's code.

The package holds the deployed model (raw bands in, probabilities out) compiled for one device kind, compute
capability and torch version (its build target, :func:`~geofoundry.models.engines.machine`): on CUDA with bf16
weights, on the CPU in float32. Its batch is dynamic (1 to ``max_batch``); its tile is fixed (``tile`` px square),
or, with ``tile=None``, any side that is a multiple of 32 (what the encoders need). On CUDA the convolutions run
channels-last, as the eager forward does (Inductor would keep them channels-first under a dynamic batch).

:func:`cached_package` keeps one package per model, tile, batch and build target in a cache folder, so the predict
stage compiles a model once and the export stage ships the same package.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ..io.atomic import atomic_path, write_json
from .deployed import DeployedModel
from .engines import machine

log = logging.getLogger(__name__)
RECIPE = 1  # how packages are compiled; raise it when that changes, so cached packages are compiled again
PRECISION = {"cuda": torch.bfloat16, "cpu": torch.float32}


class CastNet(nn.Module):
    """A copy of the deployed model with its network in ``dtype`` (e.g. bf16); probabilities stay float32."""

    def __init__(self, model: DeployedModel, dtype: torch.dtype):
        super().__init__()
        self.model = copy.deepcopy(model)
        self.model.net.to(dtype)
        self.dtype = dtype

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = ((raw - self.model.low) * self.model.scale).clamp(0.0, 1.0).to(self.dtype)
        return torch.softmax(self.model.net(x).float(), dim=1)


def n_bands(model: DeployedModel) -> int:
    return int(model.low.shape[1])


def compile_package(model: DeployedModel, path: Path, *, tile: int | None, max_batch: int, device: str,
                    dtype: torch.dtype | None = None, max_side: int = 2048) -> dict:
    """Compile ``model`` for ``device`` into the package ``path`` (written atomically); return its record: the
    build target, precision and input contract."""
    target = machine(device)
    if target is None:
        raise RuntimeError(f"no {device} device for torch on this machine")
    dtype = dtype or PRECISION[device]
    bands, max_batch = n_bands(model), max(2, max_batch)  # a batch dimension of one size would be specialised
    net = CastNet(model.eval(), dtype).to(device).eval()
    side = tile or 256
    example = (torch.rand(2, bands, side, side, device=device) * 255,)
    shapes: dict[int, object] = {0: torch.export.Dim("batch", min=1, max=max_batch)}
    if tile is None:
        shapes.update({k: 32 * torch.export.Dim(f"side{k}", min=1, max=max_side // 32) for k in (2, 3)})
    t0 = time.perf_counter()
    with torch.inference_mode():
        program = torch.export.export(net, example, dynamic_shapes=(shapes,))
    with atomic_path(path) as tmp:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp),
                                                 inductor_configs={"force_layout_optimization": device == "cuda"})
    seconds = time.perf_counter() - t0
    log.info("compiled %s for %s in %.0f s", path, target.get("gpu") or target.get("cpu"), seconds)
    return {**target, "precision": str(dtype).removeprefix("torch."), "bands": bands, "tile": tile,
            "max_batch": max_batch, "recipe": RECIPE, "compile_seconds": round(seconds, 1)}


class PackageLoadError(RuntimeError):
    """A package that could not be loaded in a separate process (see :func:`probe_package`)."""


_PROBE = "import sys, torch; torch._inductor.aoti_load_package(sys.argv[1], run_single_threaded=sys.argv[2] == '1')"
_probed: set[tuple[str, bool]] = set()


def probe_package(path: Path, single_threaded: bool = True) -> None:
    """Load the package in a separate process first, once per package, loader and process: some torch builds end the
    process that loads a package with a segmentation fault, which no caller could catch; a child's end becomes a
    :class:`PackageLoadError` that callers fall back from."""
    key = (str(Path(path).resolve()), single_threaded)
    if key in _probed:
        return
    argv = [sys.executable, "-c", _PROBE, str(path), str(int(single_threaded))]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        rc = proc.returncode
        how = f"signal {-rc} ({signal.strsignal(-rc)})" if rc < 0 else f"exit status {rc}"
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise PackageLoadError(f"loading {path.name} in a separate process ended with {how}: {last}")
    _probed.add(key)


def load_package(path: Path, single_threaded: bool = True):
    """The compiled model as a callable of contiguous float32 batches on its device (after :func:`probe_package`).
    ``single_threaded``: the runner without thread synchronisation (one caller at a time), which never waits for the
    device, so CUDA graphs can capture it; otherwise torch's default, synchronised runner."""
    probe_package(path, single_threaded)
    return torch._inductor.aoti_load_package(str(path), run_single_threaded=single_threaded)


def model_digest(model: nn.Module) -> str:
    """sha256 of a model's state: names, shapes, dtypes and values."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def default_cache() -> Path:
    """``$GEOFOUNDRY_CACHE``, else ``$XDG_CACHE_HOME/geofoundry``, else ``~/.cache/geofoundry``."""
    if os.environ.get("GEOFOUNDRY_CACHE"):
        return Path(os.environ["GEOFOUNDRY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "geofoundry"


def cached_package(model: DeployedModel, tile: int, max_batch: int, device: str,
                   cache: Path | None = None) -> tuple[Path, dict]:
    """The package of ``model`` for this machine's ``device``, compiled once into ``cache/compiled/`` (default
    :func:`default_cache`): its path and record."""
    target = machine(device)
    if target is None:
        raise RuntimeError(f"no {device} device for torch on this machine")
    key = {"model": model_digest(model), "tile": tile, "max_batch": max_batch, "target": target, "recipe": RECIPE}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    folder = (cache or default_cache()) / "compiled"
    path, record_path = folder / f"{digest}.pt2", folder / f"{digest}.json"
    if path.is_file() and record_path.is_file():
        log.info("compiled package %s (cached)", path)
        return path, json.loads(record_path.read_text())
    record = compile_package(model, path, tile=tile, max_batch=max_batch, device=device)
    write_json(record_path, record)
    return path, record
