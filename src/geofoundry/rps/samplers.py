"""Samplers by name (``rps.search``): the order in which points of the space are tried.

- ``grid``: every point of the space (lists and stepped ranges only: ``choices.RPS_EXHAUSTIVE``), predict settings
  varying slowest and the chain's last steps fastest, so that consecutive points share maps and chain prefixes;
- ``random``: independent uniform draws (optuna's ``RandomSampler``), seeded;
- ``tpe``: optuna's Tree-structured Parzen Estimator, seeded: after 10 random points, draws where the objective has
  been high so far.

A sampler's ``ask`` gives the next point (``{key: value}``) or None when it has no more; ``tell`` gives it the
objective of the point it asked last.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..choices import RPS_SEARCHES
from .settings import Setting


class Sampler(Protocol):
    def ask(self) -> dict[str, Any] | None: ...

    def tell(self, value: float) -> None: ...


class GridSampler:
    """Every point of the space, in :attr:`Setting.order` (the last setting varies fastest)."""

    def __init__(self, settings: Sequence[Setting], seed: int):
        self._points: Iterator[tuple] = itertools.product(*(s.values() for s in settings))
        self._keys = [s.key for s in settings]

    def ask(self) -> dict[str, Any] | None:
        values = next(self._points, None)
        return None if values is None else dict(zip(self._keys, values))

    def tell(self, value: float) -> None:
        pass


def distribution(setting: Setting):
    """The optuna distribution of a setting's values."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if setting.choices is not None:
        return CategoricalDistribution(setting.choices)
    high = setting.high if setting.step is None else setting.values()[-1]  # a step that does not divide the range
    if setting.integer:
        return IntDistribution(int(setting.low), int(high), log=setting.log, step=int(setting.step or 1))
    return FloatDistribution(setting.low, high, log=setting.log, step=setting.step)


class OptunaSampler:
    """An optuna sampler driven through an in-memory study (ask and tell), maximising the objective."""

    def __init__(self, settings: Sequence[Setting], seed: int, make: Callable[[int], Any]):
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self._study = optuna.create_study(direction="maximize", sampler=make(seed))
        self._distributions = {s.key: distribution(s) for s in settings}
        self._steps = {s.key: s.values() for s in settings if not s.categorical and s.step is not None}
        self._trial = None

    def ask(self) -> dict[str, Any]:
        """The next point; a stepped value is the range's own (optuna's may carry float noise: 0.30000000000000004)."""
        self._trial = self._study.ask(self._distributions)
        point = dict(self._trial.params)
        for key, values in self._steps.items():
            point[key] = min(values, key=lambda v: abs(v - point[key]))
        return point

    def tell(self, value: float) -> None:
        self._study.tell(self._trial, value)


def _random(seed: int):
    from optuna.samplers import RandomSampler
    return RandomSampler(seed=seed)


def _tpe(seed: int):
    from optuna.samplers import TPESampler
    return TPESampler(seed=seed)


@dataclass(frozen=True)
class SamplerKind:
    name: str
    summary: str
    make: Callable[[Sequence[Setting], int], Sampler]


SAMPLERS: dict[str, SamplerKind] = {
    "grid": SamplerKind("grid", "every point, predict settings slowest", GridSampler),
    "random": SamplerKind("random", "uniform draws (optuna RandomSampler)",
                          lambda settings, seed: OptunaSampler(settings, seed, _random)),
    "tpe": SamplerKind("tpe", "Tree-structured Parzen Estimator (optuna TPESampler)",
                       lambda settings, seed: OptunaSampler(settings, seed, _tpe)),
}
assert tuple(SAMPLERS) == RPS_SEARCHES  # choices.RPS_SEARCHES validates rps.search when params load
