"""The train stage: epochs of seeded, oversampled chips; validation; dvclive; best and resumable checkpoints.

One process on CPU or a GPU, or one process per GPU under ``torchrun`` (DDP): ranks share each epoch's chips,
rank 0 validates and writes checkpoints and dvclive files.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from ..config import TrainConfig
from ..cpu_numerics import cpu_kernels
from ..errors import GeofoundryError
from ..io.atomic import write_json
from ..models.checkpoint import save_checkpoint
from ..models.input_spec import InputSpec
from ..models.registry import build_model, get_preset
from ..progress import task
from . import resident
from .augment import build_augment
from .data import ChipDataset, ChipSampler, loader
from .device import Runtime, all_sum, from_main, setup, teardown
from .init_apply import apply as start_from
from .init_source import read_source
from .loop import train_epoch, validate
from .losses import WeightedLoss
from .optim import make_optimizer, make_scheduler
from .preview import preview_image
from .state import fingerprint, resume, seed_epoch, training_state
from .targets import Target
from .tracking import log_epoch, open_live

log = logging.getLogger(__name__)

INIT_REPORT = "init.json"


def load_spec(chips_dir: Path, arch: str) -> InputSpec:
    """The chips' input spec, checked against the preset's smallest input."""
    if not (chips_dir / "stats.json").is_file():
        raise GeofoundryError(f"{chips_dir}: no chips (run the preprocess stage)")
    spec = InputSpec.load(chips_dir / "stats.json")
    size = ChipDataset.size(chips_dir / "train")
    if size < get_preset(arch).min_size:
        raise GeofoundryError(f"arch {arch!r} needs inputs of at least {get_preset(arch).min_size} px; "
                              f"the chips are {size} px (preprocess.chip.size)")
    return spec


@dataclass
class Job:
    """Everything a run trains with; ``net`` is ``model`` wrapped for DDP and compiled when asked."""

    spec: InputSpec
    target: Target
    sampler: ChipSampler
    batches: Iterable  # the sampler's batches: a DataLoader, or ResidentBatches
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: torch.nn.Module
    init: dict | None = None  # what ``train.init_from`` gave (None: random weights)


def prepare(cfg: TrainConfig, arch: str, chips_dir: Path, rt: Runtime, root: Path = Path(".")) -> Job:
    """Train dataset, sampler and loader, model (started from ``root / train.init_from`` when set), optimiser,
    scheduler and loss of a run (also used by bench/)."""
    spec = load_spec(chips_dir, arch)
    target = Target(len(spec.classes), cfg.target, cfg.border_px, cfg.contact_px)
    train_set = ChipDataset(chips_dir / "train", target, spec.ignore_index,
                            build_augment(cfg.augment, spec.ignore_index) if cfg.augment else None,
                            cfg.device_augment)
    sampler = ChipSampler(train_set.positive(), cfg.samples_per_epoch, cfg.positive_fraction, cfg.seed,
                          cfg.batch_size, rt.rank, rt.world)
    if resident.wanted(cfg, rt, resident.held_bytes(train_set)):
        batches = resident.ResidentBatches(train_set, sampler, rt.device, cfg.num_workers, cfg.prefetch)
    else:
        batches = loader(train_set, sampler, workers=cfg.num_workers, prefetch=cfg.prefetch, pin=rt.cuda)
    seed_epoch(cfg.seed, -1, 0)  # the same initial weights on every rank
    names = target.names(spec.classes)
    model = build_model(arch, len(spec.bands), len(names))
    init = None if cfg.init_from is None else start_from(
        model, read_source(root / cfg.init_from), arch, cfg.init_parts, spec.bands, names, spec.gsd_m)
    model = model.to(rt.device, memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = make_scheduler(cfg, optimizer, cfg.epochs * math.ceil(sampler.steps / cfg.grad_accum))
    return Job(spec, target, sampler, batches, model, wrap(model, cfg, rt), optimizer, scheduler,
               WeightedLoss(cfg.loss, spec.ignore_index, class_weights(cfg.class_weights, names)).to(rt.device), init)


def wrap(model: torch.nn.Module, cfg: TrainConfig, rt: Runtime) -> torch.nn.Module:
    """``model`` as it trains: under DDP (which reduces the gradients of the parameters that needed one when it was
    wrapped), compiled when asked."""
    net = model if rt.world == 1 else DistributedDataParallel(
        model, device_ids=[rt.device.index] if rt.cuda else None, gradient_as_bucket_view=True)
    return torch.compile(net) if cfg.compile else net


def freeze_encoder(job: Job, frozen: bool, cfg: TrainConfig, rt: Runtime) -> None:
    """``train.freeze_encoder_epochs``: the encoder's parameters need no gradient while ``frozen``, so the
    optimiser leaves them as they are (no gradient: no step, no weight decay, no moment); DDP is wrapped again, as
    it reduces only the parameters that needed a gradient when it was wrapped."""
    for p in job.model.encoder.parameters():
        p.requires_grad_(not frozen)
    if rt.world > 1:
        job.net = wrap(job.model, cfg, rt)


def weight_average(model: torch.nn.Module, decay: float) -> ModelEmaV3:
    """timm's moving average of ``model``'s weights and buffers. Updated with the optimiser step count (the
    scheduler's, restored by a resume), its decay warms up as 1 - (1 + step)^(-3/4) to at most ``decay``, so the
    first steps' weights fade out within a short run."""
    return ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=3 / 4)


def average_step(ema: ModelEmaV3 | None, model: torch.nn.Module, scheduler) -> Callable[[], None] | None:
    """``train_epoch``'s ``on_step``: ``ema`` updated from ``model`` at the scheduler's step count (None without)."""
    return None if ema is None else lambda: ema.update(model, step=scheduler.last_epoch)


def step_reporter(bar, t0: float, world: int) -> Callable[[int, torch.Tensor], None]:
    """``train_epoch``'s ``on_batch``: advance the epoch's bar with the batch's loss and the images per second of
    all ranks (the loss is read from the device only when the bar refreshes)."""
    seen = 0

    def report(samples: int, loss: torch.Tensor) -> None:
        nonlocal seen
        seen += samples * world
        bar.advance(1, lambda: f"loss {float(loss):.4f}, {seen / max(time.perf_counter() - t0, 1e-9):.1f} img/s")

    return report


def class_weights(weights: dict[str, float], names: list[str]) -> list[float] | None:
    """One weight per output class, in ``names``' order (None when none is given); unknown names are refused."""
    if not weights:
        return None
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise GeofoundryError(f"train.class_weights: no output class {unknown}; the outputs are {names}")
    return [float(weights.get(n, 1.0)) for n in names]


def record_init(models_dir: Path, init: dict | None) -> None:
    """``models/init.json``: what ``train.init_from`` gave, tensor by tensor (none without it)."""
    if init is None:
        (models_dir / INIT_REPORT).unlink(missing_ok=True)
    else:
        write_json(models_dir / INIT_REPORT, init)


def run(cfg: TrainConfig, arch: str, chips_dir: Path, models_dir: Path, live_dir: Path | None,
        root: Path = Path(".")) -> dict:
    """Train ``arch`` on ``chips_dir``; write ``models_dir/{best,last}.pt`` and dvclive files into ``live_dir`` (None:
    no tracking, as in the active-learning simulation's many short runs). ``train.init_from`` is relative to
    ``root``."""
    get_preset(arch)
    rt = setup(cfg.device, cfg.threads)
    try:
        return _run(cfg, arch, chips_dir, models_dir, live_dir, rt, root)
    finally:
        teardown(rt)


def _run(cfg: TrainConfig, arch: str, chips_dir: Path, models_dir: Path, live_dir: Path | None, rt: Runtime,
         root: Path) -> dict:
    job = prepare(cfg, arch, chips_dir, rt, root)
    spec, target, model, optimizer, scheduler = job.spec, job.target, job.model, job.optimizer, job.scheduler
    names = target.names(spec.classes)
    fp = fingerprint(cfg, arch, chips_dir, rt.world, job.init["from"]["sha256"] if job.init else "")
    ema = weight_average(model, cfg.ema) if cfg.ema and rt.main else None
    delivered = model if ema is None else ema.module  # what validation sees and checkpoints hold
    start, best, stale = resume(models_dir / "last.pt", fp, model, optimizer, scheduler, ema) if cfg.resume \
        else (0, -1.0, 0)
    log.info("rank %d/%d: %d of %d chips per epoch, epochs %d..%d, classes %s", rt.rank, rt.world,
             job.sampler.per_rank, job.sampler.per_rank * rt.world, start + 1, cfg.epochs, names)
    live = val_set = val_loader = None
    if rt.main:
        live = open_live(live_dir, start) if live_dir is not None else None
        val_set = ChipDataset(chips_dir / "val", target, spec.ignore_index)
        val_loader = loader(val_set, cfg.batch_size, workers=cfg.num_workers, prefetch=cfg.prefetch, pin=rt.cuda)
        record_init(models_dir, job.init)
    meta = {"fingerprint": fp, "target": cfg.target, "border_px": cfg.border_px, "contact_px": cfg.contact_px,
            "cpu_kernels": cpu_kernels()}
    if job.init is not None:
        meta["init_from"] = {**job.init["from"], "parts": job.init["parts"]}

    def save(name: str, **extra) -> None:
        save_checkpoint(models_dir / name, delivered, preset=arch, bands=spec.bands, classes=names,
                        extra={**meta, **extra})

    key, result = cfg.monitor.split("/")[1], {}
    job.sampler.set_epochs(start, cfg.epochs)
    batches = iter(job.batches)  # one iterator for the run: a DataLoader's workers prefetch across epoch ends
    frozen = False
    try:
        for epoch in range(start, cfg.epochs):
            if (epoch < cfg.freeze_encoder_epochs) != frozen:
                frozen = not frozen
                freeze_encoder(job, frozen, cfg, rt)
                log.info("encoder %s from epoch %d", "frozen" if frozen else "trained", epoch + 1)
            seed_epoch(cfg.seed, epoch, rt.rank)
            t0 = time.perf_counter()
            with task(f"train epoch {epoch + 1}/{cfg.epochs}", job.sampler.steps, enabled=rt.main) as bar:
                loss_sum, n = all_sum(rt, *train_epoch(job.net, batches, job.sampler.steps, job.loss_fn, optimizer,
                                                       scheduler, rt, cfg.grad_accum, cfg.device_augment,
                                                       average_step(ema, model, scheduler),
                                                       step_reporter(bar, t0, rt.world),
                                                       model.encoder if frozen else None))
            seconds = time.perf_counter() - t0
            stop = False
            if rt.main:
                val, pairs = validate(delivered, val_loader, job.loss_fn, rt, target, spec.ignore_index)
                result = {"train/loss": loss_sum / n, **{f"val/{k}": v for k, v in val.items()},
                          "lr": scheduler.get_last_lr()[0], "epoch_time_s": seconds, "images_per_s": n / seconds}
                if live is not None:
                    log_epoch(live, result, preview_image(val_set, pairs, spec.ignore_index))
                improved = val[key] > best
                best, stale = (val[key], 0) if improved else (best, stale + 1)
                stop = bool(cfg.patience and stale >= cfg.patience)
                if improved:
                    save("best.pt", metrics=result, epoch=epoch + 1)
                save("last.pt", metrics=result, **training_state(
                    optimizer, scheduler, epoch=epoch + 1, best=best, stale=stale,
                    done=stop or epoch + 1 == cfg.epochs, trained=None if ema is None else model))
                log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, {k: round(v, 4) for k, v in result.items()})
                if stop:
                    log.info("early stop: %s did not improve for %d epochs", cfg.monitor, stale)
            if from_main(rt, stop):
                break
    finally:
        if live is not None:
            live.end()
    return {"best": {cfg.monitor: best}, "last": result}
