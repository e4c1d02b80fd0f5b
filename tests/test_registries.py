"""Each registry chosen by name in params.yaml holds exactly the names that config accepts when params load."""

from __future__ import annotations

import inspect
import typing

import pytest
import torch
from pydantic import ValidationError

from geofoundry.choices import (ARCHS, BORDER, CLASS_WEIGHTED_LOSSES, CONTACT, POSTPROCESS_OPS, RPS_EXHAUSTIVE,
                                RPS_SEARCHES, TARGETS, TTA)
from geofoundry.config import OptimizerConfig, PredictConfig, PretrainConfig, RpsConfig, TrainConfig
from geofoundry.errors import GeofoundryError
from geofoundry.models.registry import PRESETS
from geofoundry.pipeline.params import load_params
from geofoundry.postprocess import OPS
from geofoundry.predict.combine import with_tta
from geofoundry.pretrain.methods import METHODS
from geofoundry.rps.objectives import OBJECTIVES
from geofoundry.rps.samplers import SAMPLERS
from geofoundry.train.losses import LOSSES
from geofoundry.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_scheduler

from .project import ROOT
from .test_params import write


def literal(model, key: str) -> set[str]:
    """The names a Literal field of a config model accepts."""
    return set(typing.get_args(model.model_fields[key].annotation))


def optimizer_names() -> set[str]:
    members = typing.get_args(typing.get_args(OptimizerConfig)[0])
    return {name for m in members for name in typing.get_args(m.model_fields["name"].annotation)}


@pytest.mark.parametrize("accepted, registry", [
    (literal(TrainConfig, "schedule"), SCHEDULES),
    (literal(TrainConfig, "target"), TARGETS),
    (literal(PredictConfig, "tta"), TTA),
    (optimizer_names(), OPTIMIZERS),
    (literal(RpsConfig, "search"), SAMPLERS),
    (literal(RpsConfig, "objective"), OBJECTIVES),
    (literal(PretrainConfig, "method"), METHODS),
], ids=["schedule", "target", "tta", "optimizer", "rps.search", "rps.objective", "pretrain.method"])
def test_config_accepts_the_registered_names(accepted, registry):
    assert accepted == set(registry)


def test_exhaustive_searches_are_searches():
    assert set(RPS_EXHAUSTIVE) <= set(RPS_SEARCHES)


def test_losses_are_the_registered_ones():
    for name in LOSSES:
        TrainConfig(loss={name: 1.0})
    with pytest.raises(ValidationError, match="choose from " + str(list(LOSSES)).replace("[", r"\[")):
        TrainConfig(loss={"hinge": 1.0})
    takes_weights = {n for n, build in LOSSES.items() if "class_weights" in inspect.signature(build).parameters}
    assert takes_weights == set(CLASS_WEIGHTED_LOSSES)


@pytest.mark.parametrize("key, value, names", [
    ("schedule", "poly", SCHEDULES),
    ("target", "edges", TARGETS),
    ("optimizer", "rmsprop", OPTIMIZERS),
])
def test_an_unknown_name_fails_when_params_load_with_the_names(tmp_path, key, value, names):
    with pytest.raises(GeofoundryError) as err:
        load_params(write(tmp_path, lambda p: p["train"].update({key: value})))
    assert f"train.{key}" in str(err.value) and all(repr(n) in str(err.value) for n in names)


def test_an_unknown_tta_fails_when_params_load(tmp_path):
    with pytest.raises(GeofoundryError, match=r"predict.tta[\s\S]*'none', 'flips' or 'd4'"):
        load_params(write(tmp_path, lambda p: p["predict"].update(tta="d8")))


def test_targets_name_known_auxiliary_classes_border_first():
    """``Target`` reads a target's entry: its auxiliary classes must be ones it knows, the border first."""
    for name, auxiliary in TARGETS.items():
        assert set(auxiliary) <= {BORDER, CONTACT} and len(set(auxiliary)) == len(auxiliary), name
        assert BORDER not in auxiliary or auxiliary[0] == BORDER, name


def test_tta_entries_are_d4_elements():
    for name, elements in TTA.items():
        assert elements[0] == (0, False) and len(set(elements)) == len(elements), name
        assert all(k in range(4) and isinstance(flip, bool) for k, flip in elements), name
    assert with_tta(abs, "none", torch) is abs  # one element: the function itself


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd", {"name": "sgd", "momentum": 0.5, "nesterov": True},
                                       {"name": "adam", "betas": [0.8, 0.99], "eps": 1e-6}])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_every_optimiser_and_schedule_steps(optimizer, schedule):
    cfg = TrainConfig(optimizer=optimizer, schedule=schedule, lr=0.01, weight_decay=0.001)
    weight = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer(cfg, [weight])
    assert type(opt) is OPTIMIZERS[cfg.optimizer.name]
    group = opt.param_groups[0]
    assert group["weight_decay"] == 0.001
    for key, value in cfg.optimizer.model_dump(exclude={"name"}).items():
        assert group[key] == value, key
    sched = make_scheduler(cfg, opt, 10)
    for _ in range(3):
        (weight ** 2).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    assert not torch.equal(weight.detach(), torch.ones(3))


def test_the_default_optimiser_is_torchs_adamw_as_is():
    """params.yaml's ``adamw`` passes torch's own defaults: the recipe trains as with a bare ``AdamW(lr, wd)``."""
    cfg = load_params(ROOT / "params.yaml").train
    ours = make_optimizer(cfg, [torch.nn.Parameter(torch.ones(1))]).param_groups[0]
    torchs = torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))], lr=cfg.lr, weight_decay=cfg.weight_decay)
    assert {k: v for k, v in ours.items() if k != "params"} == \
        {k: v for k, v in torchs.param_groups[0].items() if k != "params"}


def test_optimiser_settings_are_checked_when_params_load(tmp_path):
    cases = [({"name": "sgd", "betas": [0.9, 0.99]}, "train.optimizer.sgd.betas: unknown key"),
             ({"name": "adamw", "betas": [0.9, 1.5]}, "betas must be in [0, 1)"),
             ({"name": "sgd", "momentum": 0, "nesterov": True}, "nesterov needs momentum > 0")]
    for value, expected in cases:
        with pytest.raises(GeofoundryError) as err:
            load_params(write(tmp_path, lambda p, v=value: p["train"].update(optimizer=v)))
        assert expected in str(err.value)


def test_arch_and_postprocess_names_are_the_registered_ones():
    assert ARCHS == tuple(PRESETS) and POSTPROCESS_OPS == tuple(OPS)
