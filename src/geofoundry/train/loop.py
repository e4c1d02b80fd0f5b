"""One training epoch and one validation pass."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from .device import Runtime
from .metrics import PixelCounts, object_f1, object_matches


def train_epoch(model, loader: DataLoader, loss_fn, optimizer, scheduler, rt: Runtime, grad_accum: int) -> float:
    """Mean loss over the epoch; steps the optimiser every ``grad_accum`` batches."""
    model.train()
    total, n = 0.0, 0
    optimizer.zero_grad(set_to_none=True)
    for step, (x, y) in enumerate(loader, start=1):
        x = x.to(rt.device, non_blocking=True, memory_format=torch.channels_last)
        y = y.to(rt.device, non_blocking=True)
        with rt.autocast():
            loss = loss_fn(model(x).float(), y)
        (loss / grad_accum).backward()
        if step % grad_accum == 0 or step == len(loader):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        total += float(loss.detach()) * len(x)
        n += len(x)
    return total / max(1, n)


@torch.no_grad()
def validate(model, dataset, loss_fn, rt: Runtime, batch_size: int, ignore_index: int) -> tuple[dict, np.ndarray]:
    """Loss, pixel IoU/F1 and object F1 on the val chips; also returns the predicted classes of the first chips."""
    model.eval()
    counts, tp, n_pred, n_truth, total = PixelCounts(), 0, 0, 0, 0.0
    preview = []
    for x, y in DataLoader(dataset, batch_size=batch_size):
        x = x.to(rt.device, memory_format=torch.channels_last)
        with rt.autocast():
            logits = model(x).float()
        total += float(loss_fn(logits, y.to(rt.device))) * len(x)
        pred = logits.argmax(1).cpu().numpy()
        truth = y.numpy()
        for p, t in zip(pred, truth):
            valid = t != ignore_index
            counts.update(p, t, valid)
            a, b, c = object_matches((p > 0) & valid, (t > 0) & valid)
            tp, n_pred, n_truth = tp + a, n_pred + b, n_truth + c
        if len(preview) < 4:
            preview.extend(pred[: 4 - len(preview)])
    scores = counts.scores()
    metrics = {"loss": total / max(1, len(dataset)), "iou": scores["iou"], "f1": scores["f1"],
               "object_f1": object_f1(tp, n_pred, n_truth)}
    return metrics, np.stack(preview)


def shard(dataset, indices: np.ndarray, rt: Runtime) -> Subset:
    """This rank's share of the epoch's indices (all ranks draw the same seeded indices)."""
    return Subset(dataset, indices[rt.rank::rt.world].tolist())
