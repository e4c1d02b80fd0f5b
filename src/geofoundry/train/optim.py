"""The optimiser and its learning-rate schedule, by name: the registries of ``train.optimizer`` and ``train.schedule``.

An optimiser is a torch class taking ``lr``, ``weight_decay`` and its settings in ``train.optimizer`` (validated by
``config.OptimizerConfig``); a schedule is ``build(optimizer, lr, steps)``, stepped once per optimiser step. Their
names are declared below the stage packages (:mod:`geofoundry.choices`, ``config.OptimizerConfig``), so params.yaml
is checked when it loads; ``tests/test_registries.py`` holds these registries equal to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import lr_scheduler

from ..config import TrainConfig

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def onecycle(optimizer: torch.optim.Optimizer, lr: float, steps: int) -> lr_scheduler.LRScheduler:
    """Warm up to ``lr`` over the first 15 % of the steps, then anneal (cosine); cycles the momentum (SGD's, or
    Adam's first beta) between 0.95 and 0.85 the other way."""
    return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)


def cosine(optimizer: torch.optim.Optimizer, lr: float, steps: int) -> lr_scheduler.LRScheduler:
    """Cosine annealing from ``lr`` to 0 over the run."""
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def constant(optimizer: torch.optim.Optimizer, lr: float, steps: int) -> lr_scheduler.LRScheduler:
    """``lr`` throughout."""
    return lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, float, int], lr_scheduler.LRScheduler]] = {
    "onecycle": onecycle, "cosine": cosine, "constant": constant}


def make_optimizer(cfg: TrainConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``train.optimizer`` over ``parameters``, with ``train.lr`` and ``train.weight_decay``."""
    settings = cfg.optimizer.model_dump(exclude={"name"})
    return OPTIMIZERS[cfg.optimizer.name](parameters, lr=cfg.lr, weight_decay=cfg.weight_decay, **settings)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps: int) -> lr_scheduler.LRScheduler:
    """``train.schedule`` over ``steps`` optimiser steps."""
    return SCHEDULES[cfg.schedule](optimizer, cfg.lr, steps)
