"""``rps.settings``, checked when params.yaml loads: each key names one predict or postprocess parameter, each value
is a list or a range of values for it.

Keys use the dotted paths that ``dvc exp run -S`` takes:

- ``postprocess.steps.<i>.<op>.<param>``: a parameter of the chain's step ``i`` (``op`` must be its operation), or
  ``postprocess.<op>.<param>`` when ``op`` is in the chain once;
- ``predict.tta``, ``predict.overlap``, ``predict.ensemble.<i>.weight``.

Values: a list (``[0.4, 0.5]``, ``[none, d4]``) or a range ``{low, high}`` with an optional ``step`` (values
``low, low + step, ... <= high``) or ``log: true`` (drawn on a log scale).

Every stage's params loader runs these checks, so this module imports no stage package: the keys are checked against
``postprocess.steps`` and the predict config, the values against the predict config. A postprocess parameter's
name, type and bounds are the operation's, checked by :mod:`.space` (``op_check``) when the rps stage starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..choices import RPS_EXHAUSTIVE
from ..config import EnsembleMember, PredictConfig, RpsConfig

PREDICT_KEYS = ("predict.tta", "predict.overlap", "predict.ensemble.<i>.weight")
RANGE_KEYS = {"low", "high", "step", "log"}
SCALARS = (bool, int, float, str, type(None))
DIGITS = 12  # stepped values are rounded to this many significant digits (0.1 + 0.2 is 0.3)
MAX_VALUES = 10_000  # values of one stepped range: far more than a search tries, few enough to check each
Where = tuple[str | int, ...]
Check = Callable[[Any], Any]  # a value as the parameter takes it; ValueError when it does not
OpCheck = Callable[[Where, dict], tuple[Check, bool]]  # (path, the step's parameters) -> (check, whole numbers)


class SettingsError(ValueError):
    """Problems of the ``rps`` section, each ``(where, message)``; ``where`` is a path under ``rps``."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]):
        self.problems = problems
        super().__init__("; ".join(f"rps.{'.'.join(loc)}: {msg}" for loc, msg in problems))

    def lines(self) -> list[str]:
        """One ``  rps.<key>: <message>`` line per problem, as the params loader lists bad keys."""
        return [f"  rps.{'.'.join(loc)}: {msg}" for loc, msg in self.problems]


@dataclass(frozen=True)
class Setting:
    """One varied parameter: where it lives in params.yaml and the values it may take."""

    key: str  # as written in rps.settings
    path: Where  # e.g. ("postprocess", "steps", 0, "threshold", "value")
    choices: tuple | None = None  # a list of values, or
    low: float | None = None  # a range
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def override(self) -> str:
        """The key as ``dvc exp run -S`` takes it."""
        return ".".join(map(str, self.path))

    @property
    def order(self) -> tuple[int, int]:
        """Predict settings first, then postprocess steps in chain order: a grid varies the last ones fastest, so
        consecutive points share the longest work (probability maps, then chain prefixes)."""
        return (0, 0) if self.path[0] == "predict" else (1, int(self.path[2]))

    @property
    def categorical(self) -> bool:
        return self.choices is not None

    def count(self) -> int | None:
        """Number of values of a list or a stepped range; None for a continuous range."""
        if self.choices is not None:
            return len(self.choices)
        if self.step is None:
            return None
        return math.floor((self.high - self.low) / self.step * (1 + 1e-12) + 1e-9) + 1

    def values(self) -> list | None:
        """Every value of a list or a stepped range; None for a continuous range."""
        if self.choices is not None:
            return list(self.choices)
        n = self.count()
        return None if n is None else [_clean(self.low + k * self.step, self.integer) for k in range(n)]


def _clean(x: float, integer: bool) -> float | int:
    return int(round(x)) if integer else float(f"{x:.{DIGITS}g}")


def _finite(x: float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond any float
        return False


def pydantic_message(err: ValidationError) -> str:
    return "; ".join(e["msg"] for e in err.errors())


def _postprocess_path(parts: list[str], steps: Sequence[dict]) -> Where:
    names = [next(iter(item)) for item in steps]
    if len(parts) == 5 and parts[1] == "steps" and parts[2].isdigit():
        i, op_name, param = int(parts[2]), parts[3], parts[4]
        if i >= len(steps):
            raise ValueError(f"postprocess.steps has {len(steps)} steps (0 to {len(steps) - 1}), not {i}")
        if names[i] != op_name:
            raise ValueError(f"postprocess.steps.{i} is {names[i]!r}, not {op_name!r}")
        return ("postprocess", "steps", i, op_name, param)
    if len(parts) != 3:
        raise ValueError("expected postprocess.<op>.<param> or postprocess.steps.<i>.<op>.<param>")
    op_name, param = parts[1], parts[2]
    where = [i for i, n in enumerate(names) if n == op_name]
    if not where:
        raise ValueError(f"postprocess.steps has no {op_name!r} step (its steps: {', '.join(names)})")
    if len(where) > 1:
        raise ValueError(f"{op_name!r} is steps {where} of postprocess.steps: name one as "
                         f"postprocess.steps.<i>.{op_name}.{param}")
    return ("postprocess", "steps", where[0], op_name, param)


def _predict_target(key: str, parts: list[str], predict: PredictConfig) -> tuple[Where, Check, bool]:
    if len(parts) == 4 and parts[1] == "ensemble" and parts[2].isdigit() and parts[3] == "weight":
        i = int(parts[2])
        if i >= len(predict.ensemble):
            raise ValueError(f"predict.ensemble has {len(predict.ensemble)} members, not a member {i}")
        member = predict.ensemble[i].model_dump()

        def weight(value: Any) -> Any:
            try:
                return EnsembleMember.model_validate({**member, "weight": value}).weight
            except ValidationError as e:
                raise ValueError(f"{value!r}: {pydantic_message(e)}") from None

        return ("predict", "ensemble", i, "weight"), weight, False
    if key not in PREDICT_KEYS:
        raise ValueError(f"not a predict setting RPS varies; those are {', '.join(PREDICT_KEYS)}")
    name, current = parts[1], predict.model_dump()

    def check(value: Any) -> Any:
        try:
            return getattr(PredictConfig.model_validate({**current, name: value}), name)
        except ValidationError as e:
            raise ValueError(f"{value!r}: {pydantic_message(e)}") from None

    return ("predict", name), check, name == "overlap"


def _values(key: str, spec: Any, check: Check, integer: bool, path: Where) -> Setting:
    if isinstance(spec, list):
        if not spec:
            raise ValueError("empty list: give at least one value")
        bad = [v for v in spec if not isinstance(v, SCALARS)]
        if bad:
            raise ValueError(f"list values must be numbers, strings, booleans or null, not {bad[0]!r}")
        return Setting(key, path, choices=tuple(dict.fromkeys(check(v) for v in spec)))
    if not isinstance(spec, dict):
        raise ValueError(f"expected a list of values or a range {{low, high[, step][, log]}}, got {spec!r}")
    if set(spec) - RANGE_KEYS or not {"low", "high"} <= set(spec):
        raise ValueError(f"a range needs low and high (and may have step, log); got keys {sorted(spec)}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    numbers = [low, high, *([] if step is None else [step])]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not _finite(v) for v in numbers):
        raise ValueError(f"low, high and step must be finite numbers, got {spec}")
    if not isinstance(log, bool):
        raise ValueError(f"log must be true or false, got {log!r}")
    if low > high:
        raise ValueError(f"empty range: low {low} > high {high}")
    if step is not None and step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if log and (step is not None or low <= 0):
        raise ValueError("log: true needs low > 0 and no step")
    if integer and any(float(v) != int(v) for v in numbers):
        raise ValueError(f"the parameter takes whole numbers: low, high and step must be integers, got {spec}")
    setting = Setting(key, path, low=low, high=high, step=step, log=log, integer=integer)
    if step is not None and not _finite((high - low) / step) or (setting.count() or 0) > MAX_VALUES:
        raise ValueError(f"the range has more than {MAX_VALUES} values: take a larger step")
    for value in setting.values() or [low, high]:
        check(value)
    return setting


def _unchecked(path: Where, params: dict) -> tuple[Check, bool]:
    return (lambda value: value), False


def parse_settings(settings: dict[str, Any], steps: Sequence[dict], predict: PredictConfig,
                   op_check: OpCheck = _unchecked) -> list[Setting]:
    """The settings in search order (see :attr:`Setting.order`); raise :class:`SettingsError` with every problem.
    ``op_check`` checks a postprocess parameter against its operation (none here: see the module docstring)."""
    out, problems = [], []
    for key, spec in settings.items():
        parts = str(key).split(".")
        try:
            if parts[0] == "postprocess":
                path = _postprocess_path(parts, steps)
                check, integer = op_check(path, dict(steps[path[2]][path[3]] or {}))
            elif parts[0] == "predict":
                path, check, integer = _predict_target(key, parts, predict)
            else:
                raise ValueError("not a setting RPS varies: name a postprocess step parameter "
                                 "(postprocess.<op>.<param>) or one of " + ", ".join(PREDICT_KEYS))
            out.append(_values(key, spec, check, integer, path))
        except ValueError as e:
            problems.append((("settings", str(key)), str(e)))
    paths = [s.path for s in out]
    problems += [(("settings", s.key), f"sets {s.override}, as another key does") for s in out
                 if paths.count(s.path) > 1]
    if problems:
        raise SettingsError(problems)
    return sorted(out, key=lambda s: s.order)


def grid_size(settings: Sequence[Setting]) -> int | None:
    """Number of points of the space; None when a range is continuous."""
    counts = [s.count() for s in settings]
    return None if any(n is None for n in counts) else math.prod(counts)


def check_settings(rps: RpsConfig, steps: Sequence[dict], predict: PredictConfig,
                   op_check: OpCheck = _unchecked) -> list[Setting]:
    """Parse ``rps.settings`` and check it against ``rps.search`` and ``rps.trials``; raise :class:`SettingsError`."""
    settings = parse_settings(rps.settings, steps, predict, op_check)
    if rps.search not in RPS_EXHAUSTIVE:
        return settings
    size = grid_size(settings)
    if size is None:
        keys = [s.key for s in settings if s.count() is None]
        raise SettingsError([(("settings", k), f"search {rps.search} needs a list or a range with a step")
                             for k in keys])
    if size > rps.trials:
        raise SettingsError([(("trials",), f"the {rps.search} has {size} points but the budget is {rps.trials}: "
                                           f"raise rps.trials to {size}, narrow rps.settings or use search random "
                                           "or tpe")])
    return settings
