"""Ranks of a ``torchrun`` launch (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): the process group they share (gloo
for a model on the CPU, NCCL for one on a GPU, one device per rank), and the scenes each predicts, balanced by
area: the predict stage's and the archive runs'. Without torchrun there is one rank and torch is never imported."""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Group:
    rank: int
    world: int
    local: int  # LOCAL_RANK: this rank's device on its host
    local_world: int  # LOCAL_WORLD_SIZE: ranks on this host, which share its CPU cores

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        found: list[Any] = [None] * self.world
        dist.all_gather_object(found, value)
        return found


def launched() -> Group:
    """This process's place in the launch (one rank when not launched by torchrun)."""
    env = {k: int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0),
                                                     ("LOCAL_WORLD_SIZE", 1))}
    return Group(env["RANK"], max(env["WORLD_SIZE"], 1), env["LOCAL_RANK"], max(env["LOCAL_WORLD_SIZE"], 1))


def pin(group: Group) -> None:
    """Make ``cuda:LOCAL_RANK`` this rank's current device, where there is CUDA, before a model is loaded (one
    device per rank); nothing for one rank."""
    if group.world == 1:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(group.local % torch.cuda.device_count())


def join(group: Group, gpu: bool) -> bool:
    """Join the process group (``gpu``: NCCL on the rank's device, else gloo) unless the process is in one already;
    whether it joined (nothing for one rank)."""
    if group.world == 1:
        return False
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    dist.init_process_group("nccl" if gpu else "gloo")
    return True


def leave(joined: bool) -> None:
    """Leave the process group that :func:`join` joined (``joined``: what it returned)."""
    if joined:
        import torch.distributed as dist

        dist.destroy_process_group()


def balance(areas: list[float], world: int) -> list[list[int]]:
    """Indexes of ``areas`` per rank: largest first, each to the rank with the least area so far (ties: the lower
    rank), so every rank gets about the same area; each rank's share in the given order."""
    shares: list[list[int]] = [[] for _ in range(world)]
    loads = [(0.0, r) for r in range(world)]
    for i in sorted(range(len(areas)), key=lambda i: (-areas[i], i)):
        load, r = heapq.heappop(loads)
        shares[r].append(i)
        heapq.heappush(loads, (load + areas[i], r))
    return [sorted(s) for s in shares]
