"""Device, precision and process-group setup: one CPU process, one GPU, or DDP under torchrun."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import GeofoundryError
from ..models.device import resolve_device


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int
    world: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """bf16 autocast on CUDA; full precision on CPU."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device`` without blocking the host: a CUDA copy goes from pinned memory (a copy from pageable
    memory synchronises the stream); ``pin_memory`` is a no-op on a tensor the DataLoader already pinned."""
    return (t.pin_memory() if device.type == "cuda" and t.device.type == "cpu" else t).to(device, non_blocking=True)


def setup(device: str, threads: int) -> Runtime:
    """Pick the device; join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if threads:
        torch.set_num_threads(threads)
    world, rank, local = (int(os.environ.get(k, "0")) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
    world = max(world, 1)
    if world > 1 and ":" in device:
        raise GeofoundryError(f"train.device: {device} names one device, but torchrun started {world} processes "
                              "(each takes cuda:LOCAL_RANK); use cuda or auto")
    if world > 1 and (device == "cuda" or (device == "auto" and torch.cuda.is_available())):
        device = f"cuda:{local}"  # one device per rank
    chosen = resolve_device(device, "train.device")
    use_cuda = chosen.type == "cuda"
    if use_cuda:
        torch.backends.cudnn.benchmark = True  # fixed chip size: pick the fastest kernels once
        torch.set_float32_matmul_precision("high")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Runtime(chosen, rank, world)


def all_sum(rt: Runtime, *values: float) -> list[float]:
    """Sums of ``values`` over all ranks (the values themselves in one process)."""
    if rt.world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()


def from_main(rt: Runtime, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. its early-stopping decision); also a barrier."""
    if rt.world == 1:
        return flag
    t = torch.tensor([int(flag)], device=rt.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def teardown(rt: Runtime) -> None:
    if rt.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
