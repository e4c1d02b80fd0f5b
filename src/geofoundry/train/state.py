"""Resumable training state in ``models/last.pt``: identity of the run, epoch seeds, save and restore.

A run is exact after a resume because nothing random carries over between epochs: every epoch reseeds the
global generators from ``(seed, epoch, rank)`` and draws its chips and augmentation seeds from ``(seed, epoch)``
(:class:`~geofoundry.train.data.ChipSampler`). So ``last.pt`` needs the weights (and, with ``train.ema``, the
trained ones beside the average), optimiser, scheduler, best score and epoch; it also records the generator
states of the moment for inspection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import GeofoundryError
from ..models.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

# Settings that change how fast a run goes, not what it computes: a resume may change them.
RUNTIME_KEYS = {"chips_on_device", "num_workers", "prefetch", "device", "compile", "threads", "resume", "patience"}
CODE_DIRS = ("train", "models")


def fingerprint(cfg: TrainConfig, arch: str, chips_dir: Path, world: int, init: str = "") -> str:
    """Identity of a training run (settings, world size, chips, training code, the sha256 ``init`` of the weights
    it started from): a resume needs the same one."""
    settings = cfg.model_dump(mode="json", exclude=RUNTIME_KEYS)
    h = hashlib.sha256(json.dumps([settings, arch, world] + ([init] if init else []), sort_keys=True).encode())
    for name in ("stats.json", "index.parquet"):
        if (chips_dir / name).is_file():
            h.update((chips_dir / name).read_bytes())
    for split in ("train", "val"):
        for f in sorted((chips_dir / split).glob("*.npy")):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    package = Path(__file__).resolve().parents[1]
    for d in CODE_DIRS:
        for f in sorted((package / d).glob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) from ``(seed, epoch, rank)``; epoch -1 = initial weights."""
    s = int(np.random.SeedSequence([seed, epoch + 1, rank]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": json.dumps(np.random.get_state()[1].tolist()),
            "python": json.dumps(random.getstate()[1])}


def training_state(optimizer, scheduler, *, epoch: int, best: float, stale: int, done: bool,
                   trained: torch.nn.Module | None = None) -> dict:
    """The resume fields of ``last.pt`` (beside the weights and metadata). With a weight average, the checkpoint's
    weights are the average's, and the ``trained`` model's are kept beside."""
    state = {"epoch": epoch, "best": best, "stale": stale, "done": done, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": rng_state()}
    if trained is not None:
        state["trained_state_dict"] = {k: v.detach().cpu() for k, v in trained.state_dict().items()}
    return state


def resume(path: Path, fp: str, model, optimizer, scheduler, ema=None) -> tuple[int, float, int]:
    """Restore an interrupted run with the same fingerprint: (next epoch, best score, epochs without improvement).

    A finished run (all epochs, or stopped early) is not resumed: the stage starts afresh.
    """
    if not path.is_file():
        return 0, -1.0, 0
    try:
        ckpt = load_checkpoint(path)
    except GeofoundryError as e:
        raise GeofoundryError(f"{e}; train.resume reads it to continue a run: move it away or set "
                              "train.resume: false") from None
    if ckpt.get("fingerprint") != fp or "optimizer" not in ckpt or ckpt.get("done", False):
        why = "finished" if ckpt.get("done", False) else "from other settings, chips or code"
        log.info("%s is %s: starting afresh", path, why)
        return 0, -1.0, 0
    model.load_state_dict(ckpt.get("trained_state_dict", ckpt["state_dict"]))
    if ema is not None:  # the checkpoint's weights are the average's
        ema.module.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    log.info("resuming %s after epoch %d", path, ckpt["epoch"])
    return int(ckpt["epoch"]), float(ckpt["best"]), int(ckpt["stale"])
