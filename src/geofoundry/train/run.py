"""The train stage: epochs of seeded, oversampled chips; validation; dvclive; best and resumable checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from dvclive import Live
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..errors import GeofoundryError
from ..models import build_model, save_checkpoint
from ..models.registry import get_preset
from ..preprocess.stats import InputSpec
from .augment import build_augment
from .data import ChipDataset, epoch_indices
from .device import Runtime, barrier, setup, teardown
from .loop import shard, train_epoch, validate
from .losses import WeightedLoss
from .preview import preview_image

log = logging.getLogger(__name__)


def fingerprint(cfg: TrainConfig, arch: str, chips_dir: Path) -> str:
    """Identity of a training run: a resume checkpoint is only used when this matches."""
    h = hashlib.sha256(json.dumps([cfg.model_dump(mode="json"), arch], sort_keys=True).encode())
    h.update((chips_dir / "stats.json").read_bytes())
    h.update(str((chips_dir / "train" / "labels.npy").stat().st_size).encode())
    return h.hexdigest()[:16]


def make_scheduler(cfg: TrainConfig, optimizer, steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": json.dumps(np.random.get_state()[1].tolist()),
            "python": json.dumps(random.getstate()[1])}


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(cfg: TrainConfig, arch: str, chips_dir: Path, models_dir: Path, live_dir: Path) -> dict:
    """Train ``arch`` on ``chips_dir``; write ``models_dir/{best,last}.pt`` and dvclive files into ``live_dir``."""
    get_preset(arch)
    if not (chips_dir / "stats.json").is_file():
        raise GeofoundryError(f"{chips_dir}: no chips (run the preprocess stage)")
    spec = InputSpec.load(chips_dir / "stats.json")
    rt = setup(cfg.device, cfg.threads)
    seed_all(cfg.seed + rt.rank)
    train_set = ChipDataset(chips_dir / "train", build_augment(cfg.augment, cfg.seed + rt.rank))
    val_set = ChipDataset(chips_dir / "val")
    positive = train_set.positive(spec.ignore_index)
    model = build_model(arch, len(spec.bands), len(spec.classes)).to(rt.device, memory_format=torch.channels_last)
    net = DistributedDataParallel(model) if rt.world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_rank = -(-cfg.samples_per_epoch // rt.world)
    steps_per_epoch = -(-(-(-per_rank // cfg.batch_size)) // cfg.grad_accum)
    scheduler = make_scheduler(cfg, optimizer, cfg.epochs * steps_per_epoch)
    loss_fn = WeightedLoss(cfg.loss, spec.ignore_index)
    meta = {"fingerprint": fingerprint(cfg, arch, chips_dir)}
    start, best, stale = resume(models_dir / "last.pt", meta["fingerprint"], model, optimizer, scheduler)
    key = cfg.monitor.split("/")[1]
    live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=start > 0) if rt.main else None
    result: dict = {}
    try:
        for epoch in range(start, cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            indices = epoch_indices(positive, cfg.samples_per_epoch, cfg.positive_fraction, rng)
            loader = DataLoader(shard(train_set, indices, rt), batch_size=cfg.batch_size,
                                num_workers=cfg.num_workers, pin_memory=rt.cuda,
                                persistent_workers=False, generator=torch.Generator().manual_seed(cfg.seed + epoch))
            t0 = time.perf_counter()
            train_loss = train_epoch(net, loader, loss_fn, optimizer, scheduler, rt, cfg.grad_accum)
            seconds = time.perf_counter() - t0
            barrier(rt)
            if not rt.main:
                continue
            val, preview = validate(model, val_set, loss_fn, rt, cfg.batch_size, spec.ignore_index)
            result = {"train/loss": train_loss, **{f"val/{k}": v for k, v in val.items()},
                      "lr": scheduler.get_last_lr()[0], "epoch_time_s": seconds,
                      "images_per_s": len(indices) / seconds}
            for name, value in result.items():
                live.log_metric(name, value)
            for i, img in enumerate(preview_image(val_set, preview, spec.ignore_index)):
                live.log_image(f"val/{i}.png", img)
            extra = {**meta, "epoch": epoch + 1, "metrics": result}
            improved = val[key] > best
            best, stale = (val[key], 0) if improved else (best, stale + 1)
            if improved:
                save_checkpoint(models_dir / "best.pt", model, preset=arch, bands=spec.bands,
                                classes=spec.classes, extra=extra)
            save_checkpoint(models_dir / "last.pt", model, preset=arch, bands=spec.bands, classes=spec.classes,
                            extra={**extra, "best": best, "stale": stale, "optimizer": optimizer.state_dict(),
                                   "scheduler": scheduler.state_dict(), "rng": rng_state()})
            live.next_step()
            log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, {k: round(v, 4) for k, v in result.items()})
            if cfg.patience and stale >= cfg.patience:
                log.info("early stop: %s did not improve for %d epochs", cfg.monitor, stale)
                break
    finally:
        if live is not None:
            live.end()
        teardown(rt)
    return {"best": {cfg.monitor: best}, "last": result}


def resume(path: Path, fp: str, model, optimizer, scheduler) -> tuple[int, float, int]:
    """Restore a matching interrupted run: (next epoch, best score, epochs without improvement)."""
    if not path.is_file():
        return 0, -1.0, 0
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("fingerprint") != fp or "optimizer" not in ckpt:
        log.info("%s is from another configuration: starting afresh", path)
        return 0, -1.0, 0
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    np.random.set_state(("MT19937", np.array(json.loads(ckpt["rng"]["numpy"]), dtype=np.uint32), 624, 0, 0.0))
    random.setstate((3, tuple(json.loads(ckpt["rng"]["python"])), None))
    log.info("resuming %s at epoch %d", path, ckpt["epoch"] + 1)
    return int(ckpt["epoch"]), float(ckpt["best"]), int(ckpt["stale"])
