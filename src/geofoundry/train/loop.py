"""One training epoch and one validation pass."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import DeviceAugmentConfig
from . import device_augment
from .device import Runtime, upload
from .metrics import PixelCounts, object_f1, object_matches
from .targets import Target


def to_device(x: torch.Tensor, y: torch.Tensor, rt: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 chips → float [0, 1] channels_last on the device (4× less to copy than floats); targets → long."""
    x = upload(x, rt.device).float().div_(255.0).contiguous(memory_format=torch.channels_last)
    return x, upload(y, rt.device).long()


def train_epoch(net, batches: Iterator, steps: int, loss_fn, optimizer, scheduler, rt: Runtime, grad_accum: int,
                augment: DeviceAugmentConfig | None = None,
                on_step: Callable[[], None] | None = None,
                on_batch: Callable[[int, torch.Tensor], None] | None = None,
                frozen: torch.nn.Module | None = None) -> tuple[float, int]:
    """(sum of per-sample losses, samples) of this rank over the next ``steps`` of ``batches``, the run's one
    iterator; steps the optimiser every ``grad_accum`` batches and on the last, then calls ``on_step``;
    ``on_batch(samples, loss)`` after every batch (the loss stays on the device: reading it waits for it).

    Batches are ``(images, targets, device augment parameters)``; ``augment`` (None: none) is applied on the
    device. ``frozen`` (a part of ``net`` whose parameters need no gradient) runs in eval mode: its batch-norm
    statistics stay as they are. The loop never waits for the device (the ``lovasz`` and ``focal`` loss terms do: they index by a mask;
    so do smp's class weights, copied to the device on every call). Under DDP, gradients are only all-reduced on the batch that
    steps (``no_sync`` on the others).
    """
    net.train()
    if frozen is not None:
        frozen.eval()
    total, n = torch.zeros((), device=rt.device), 0
    optimizer.zero_grad(set_to_none=True)
    for step, (x, y, params) in enumerate(itertools.islice(batches, steps), start=1):
        x, y = to_device(x, y, rt)
        if augment is not None:
            x, y = device_augment.apply(x, y, params, augment)
        stepping = step % grad_accum == 0 or step == steps
        sync = contextlib.nullcontext() if stepping or not hasattr(net, "no_sync") else net.no_sync()
        with sync:
            with rt.autocast():
                loss = loss_fn(net(x).float(), y)
            (loss / grad_accum).backward()
        if stepping:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if on_step is not None:
                on_step()
        total += loss.detach() * len(x)  # no host sync per step
        n += len(x)
        if on_batch is not None:
            on_batch(len(x), loss.detach())
    return float(total), n


@torch.no_grad()
def validate(model, loader: DataLoader, loss_fn, rt: Runtime, target: Target, ignore_index: int,
             n_preview: int = 4) -> tuple[dict, list[tuple[np.ndarray, np.ndarray]]]:
    """Loss, footprint IoU/F1 and object F1 on the val chips; also (truth, prediction) of the first chips."""
    model.eval()
    counts, tp, n_pred, n_truth, total, n = PixelCounts(), 0, 0, 0, 0.0, 0
    preview = []
    for x, y, _ in loader:
        x, y = to_device(x, y, rt)
        with rt.autocast():
            logits = model(x).float()
        total += float(loss_fn(logits, y)) * len(x)
        n += len(x)
        for p, t in zip(logits.argmax(1).cpu().numpy(), y.cpu().numpy()):
            valid = t != ignore_index
            counts.update(target.footprint(p), target.footprint(t), valid)
            a, b, c = object_matches(target.instances(p) * valid, target.instances(t))
            tp, n_pred, n_truth = tp + a, n_pred + b, n_truth + c
            if len(preview) < n_preview:
                preview.append((t, p))
    scores = counts.scores()
    metrics = {"loss": total / max(1, n), "iou": scores["iou"], "f1": scores["f1"],
               "object_f1": object_f1(tp, n_pred, n_truth)}
    return metrics, preview
