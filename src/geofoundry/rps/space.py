"""The search space with the postprocess operations at hand: every postprocess parameter checked against its
operation's own type and bounds (:func:`check_space`), and a point of the space (``{key: value}``) turned into a
predict config and postprocess steps, or into the ``dvc exp run -S`` overrides that set it in params.yaml."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from ..config import PredictConfig, RpsConfig
from ..postprocess import OPS
from .settings import Check, Setting, Where, check_settings, pydantic_message


def op_check(path: Where, current: dict) -> tuple[Check, bool]:
    """(check, whole numbers) of the postprocess parameter at ``path``; ``current``: the step's parameters."""
    _, _, _, op_name, param = path
    op = OPS.get(op_name)
    if op is None:
        raise ValueError(f"{op_name!r} is not a postprocess operation (`geofoundry postprocess --list`)")
    fields = op.params.model_fields
    if param not in fields:
        raise ValueError(f"{op_name!r} has no parameter {param!r} (its parameters: {', '.join(fields) or 'none'})")

    def check(value: Any) -> Any:
        try:
            return getattr(op.params.model_validate({**current, param: value}), param)
        except ValidationError as e:
            raise ValueError(f"{value!r}: {pydantic_message(e)}") from None

    return check, fields[param].annotation is int


def check_space(rps: RpsConfig, steps: Sequence[dict], predict: PredictConfig) -> list[Setting]:
    """``rps.settings`` as :class:`Setting` s, checked as the params loader does and against the operations; raise
    :class:`~.settings.SettingsError`."""
    return check_settings(rps, steps, predict, op_check)


def apply_point(point: dict[str, Any], settings: Sequence[Setting], steps: Sequence[dict],
                predict: PredictConfig) -> tuple[list[dict], PredictConfig]:
    """The postprocess steps and the predict config with the point's values set."""
    steps = copy.deepcopy([dict(item) for item in steps])
    changes: dict[str, Any] = {}
    members = [m.model_dump() for m in predict.ensemble]
    for s in settings:
        value = point[s.key]
        if s.path[0] == "postprocess":
            _, _, i, op, param = s.path
            steps[i][op] = {**(steps[i][op] or {}), param: value}
        elif s.path[1] == "ensemble":
            members[s.path[2]]["weight"] = value
            changes["ensemble"] = members
        else:
            changes[s.path[1]] = value
    return steps, PredictConfig.model_validate({**predict.model_dump(), **changes})


def current_point(settings: Sequence[Setting], steps: Sequence[dict], predict: PredictConfig) -> dict[str, Any]:
    """The values that params.yaml sets now, as the parameters take them (a parameter left out of a step: the op's
    default)."""
    point = {}
    for s in settings:
        if s.path[0] == "postprocess":
            _, _, i, op, param = s.path
            point[s.key] = getattr(OPS[op].params.model_validate(steps[i][op] or {}), param)
        elif s.path[1] == "ensemble":
            point[s.key] = predict.ensemble[s.path[2]].weight
        else:
            point[s.key] = getattr(predict, s.path[1])
    return point


def override_text(setting: Setting, value: Any) -> str:
    """``key=value`` as ``dvc exp run -S`` takes it."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = repr(value) if "e" not in repr(value) else f"{value:.15f}".rstrip("0")
    else:
        text = str(value)
    return f"{setting.override}={text}"
