"""Each registry chosen by name in params.yaml holds exactly the names that config accepts when params load."""

from __future__ import annotations

import inspect
import typing

import pytest
import torch
from pydantic import ValidationError

from geofoundry.choices import BORDER, CLASS_WEIGHTED_LOSSES, CONTACT, TARGETS, TTA
from geofoundry.config import PredictConfig, TrainConfig
from geofoundry.errors import GeofoundryError
from geofoundry.pipeline.params import load_params
from geofoundry.predict.combine import with_tta
from geofoundry.train.losses import LOSSES
from geofoundry.train.optim import SCHEDULES

from .test_params import write


def literal(model, key: str) -> set[str]:
    """The names a Literal field of a config model accepts."""
    return set(typing.get_args(model.model_fields[key].annotation))


@pytest.mark.parametrize("accepted, registry", [
    (literal(TrainConfig, "schedule"), SCHEDULES),
    (literal(TrainConfig, "target"), TARGETS),
    (literal(PredictConfig, "tta"), TTA),
], ids=["schedule", "target", "tta"])
def test_config_accepts_the_registered_names(accepted, registry):
    assert accepted == set(registry)


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
